// Small presentational helpers. Times are rendered on the server in UTC, so what the page shows
// does not depend on the server's or the browser's time zone.

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

export function Time({ value }: { value: string | null | undefined }) {
  if (!value) return <span className="muted">-</span>;
  return <time dateTime={value}>{formatTime(value)}</time>;
}

export function duration(start: string | null | undefined, end: string | null | undefined): string {
  if (!start) return "";
  const ms = (end ? new Date(end) : new Date()).getTime() - new Date(start).getTime();
  if (!Number.isFinite(ms) || ms < 0) return "";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function Num({ value }: { value: number | null | undefined }) {
  return value === null || value === undefined ? <span className="muted">-</span> : <>{value.toLocaleString("en-US")}</>;
}

export function Tags({ tags }: { tags: Record<string, unknown> | string[] }) {
  const items = Array.isArray(tags) ? tags : Object.entries(tags).map(([k, v]) => (v === "" ? k : `${k}=${String(v)}`));
  if (!items.length) return <span className="muted">-</span>;
  return (
    <>
      {items.map((t) => (
        <span className="tag" key={t}>
          {t}
        </span>
      ))}
    </>
  );
}

export function shortId(id: string): string {
  return id.length > 12 ? id.slice(0, 8) : id;
}

/** A compact, single-line JSON rendering (for details and small objects). */
export function Json({ value }: { value: unknown }) {
  return <code>{JSON.stringify(value)}</code>;
}
