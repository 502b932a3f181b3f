// The audit export's error round trip. The download route handler cannot render a page, so on a
// problem it sends the browser back to /audit/export with the problem (type, title, status,
// detail - never the key) in a short-lived httpOnly cookie that only that page reads. A cookie,
// not the URL: nobody can hand an operator a link that shows a made-up error.
import { dashboardProblem, type Problem } from "./api/problem";

export const EXPORT_PROBLEM_COOKIE = "openfuse_export_problem";
export const EXPORT_PAGE = "/audit/export";

export function encodeProblem(p: Problem): string {
  const { type, title, status, detail } = p;
  return Buffer.from(JSON.stringify({ type, title, status, detail }), "utf8").toString("base64url");
}

export function decodeProblem(raw: string | undefined): Problem | undefined {
  if (!raw) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
    if (typeof v === "object" && v !== null) {
      const o = v as Record<string, unknown>;
      if (typeof o.title === "string" && typeof o.status === "number" && typeof o.type === "string") {
        return { type: o.type, title: o.title, status: o.status, detail: typeof o.detail === "string" ? o.detail : null };
      }
    }
  } catch {
    // fall through
  }
  return dashboardProblem("export-failed", 500, "The export failed", "the download did not start; try again");
}

/** `2026-11-27T10:00` from a datetime-local input, as UTC for the API; undefined when empty. */
export function utcParam(value: string | null): string | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(v)) return `${v}:00Z`;
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/.test(v)) return `${v}Z`;
  return v; // anything else goes to the API as typed; it says what is wrong with it
}
