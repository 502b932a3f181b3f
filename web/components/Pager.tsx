import Link from "next/link";

/**
 * Cursor pagination for the API's lists (`next_cursor`): a link to the next page that keeps the
 * filters, and one back to the first page. Keyset cursors only go forward.
 */
export function Pager({
  path,
  params,
  nextCursor,
  onFirstPage,
}: {
  path: string;
  params: Record<string, string | undefined>;
  nextCursor: string | null | undefined;
  onFirstPage: boolean;
}) {
  const href = (cursor?: string) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
    if (cursor) q.set("cursor", cursor);
    const s = q.toString();
    return s ? `${path}?${s}` : path;
  };
  if (onFirstPage && !nextCursor) return null;
  return (
    <nav className="pager" aria-label="Pages">
      {!onFirstPage ? (
        <Link href={href()} className="button secondary">
          ← First page
        </Link>
      ) : null}
      {nextCursor ? (
        <Link href={href(nextCursor)} className="button secondary" data-testid="next-page">
          Next page →
        </Link>
      ) : (
        <span className="muted">Last page</span>
      )}
    </nav>
  );
}
