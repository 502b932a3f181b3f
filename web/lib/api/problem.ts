// API errors as the dashboard shows them: RFC 9457 problem documents (`application/problem+json`).
// Shared by server and client components, so nothing here may touch the session.
import type { FieldError, PolicyDiagnostic } from "./types";

/** One Cedar diagnostic of a `422 policy-invalid` (a member of that problem document). */
export type { PolicyDiagnostic };

/** A problem document: the API's (`ProblemPublic`, read defensively: a proxy may answer instead),
 * or one the dashboard makes when the API gave none. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string | null;
  errors?: FieldError[] | null;
  reasons?: string[];
  diagnostics?: PolicyDiagnostic[];
  error_id?: string;
}

const PROBLEMS = "https://openfuse.dev/problems/";

/** The slug of a problem type (`dagster-unavailable` for `https://openfuse.dev/problems/dagster-unavailable`). */
export function problemSlug(p: Pick<Problem, "type">): string {
  return p.type.startsWith(PROBLEMS) ? p.type.slice(PROBLEMS.length) : p.type;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function strings(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : undefined;
}

function diagnostics(v: unknown): PolicyDiagnostic[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v.filter(isRecord).map((d) => ({
    line: typeof d.line === "number" ? d.line : null,
    policy_id: typeof d.policy_id === "string" ? d.policy_id : null,
    kind: typeof d.kind === "string" ? d.kind : "error",
    message: typeof d.message === "string" ? d.message : String(d.message ?? ""),
  }));
}

function fieldErrors(v: unknown): FieldError[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v
    .filter(isRecord)
    .map((e) => ({ field: String(e.field ?? ""), message: String(e.message ?? ""), value: e.value }));
}

/**
 * The problem an error response carries, copied field by field (only the fields the dashboard
 * shows, as plain data that can cross to client components); a made-up one naming the status
 * when the body was not a problem document (a proxy's HTML error page, say).
 */
export function toProblem(status: number, body: unknown): Problem {
  if (isRecord(body) && typeof body.title === "string") {
    return {
      type: typeof body.type === "string" ? body.type : "about:blank",
      title: body.title,
      status: typeof body.status === "number" ? body.status : status,
      detail: typeof body.detail === "string" ? body.detail : null,
      errors: fieldErrors(body.errors) ?? null,
      reasons: strings(body.reasons),
      diagnostics: diagnostics(body.diagnostics),
      error_id: typeof body.error_id === "string" ? body.error_id : undefined,
    };
  }
  return {
    type: "about:blank",
    title: `The API answered ${status}`,
    status,
    detail: "the answer was not a problem document (is OPENFUSE_API_URL the OpenFuse API, not a proxy or another service?)",
  };
}

/** A problem made by the dashboard itself (`https://openfuse.dev/problems/dashboard-<slug>`). */
export function dashboardProblem(slug: string, status: number, title: string, detail: string): Problem {
  return { type: `${PROBLEMS}dashboard-${slug}`, title, status, detail };
}
