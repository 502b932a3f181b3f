/** A page's query parameters as Next passes them (`searchParams`, awaited). */
export type SearchParams = Record<string, string | string[] | undefined>;

/** One query parameter: its first value, trimmed; undefined when missing or empty. */
export function param(sp: SearchParams, name: string): string | undefined {
  const raw = sp[name];
  const v = (Array.isArray(raw) ? raw[0] : raw)?.trim();
  return v ? v : undefined;
}

/** The `limit` parameter when it is a whole number the API accepts (1-200), else `fallback`. */
export function limitParam(sp: SearchParams, fallback: number): number {
  const v = Number(param(sp, "limit"));
  return Number.isInteger(v) && v >= 1 && v <= 200 ? v : fallback;
}
