import { problemSlug, type Problem } from "@/lib/api/problem";

/** What an operator can do about some problem types, beyond the API's own detail. */
const HINTS: Record<string, string> = {
  "dagster-unavailable":
    "Dagster is unreachable: runs cannot be listed or launched until its webserver answers " +
    "(OPENFUSE_DAGSTER_GRAPHQL_URL on the API). The rest of the dashboard keeps working.",
  "dagster-error":
    "Dagster answered with an error: runs cannot be listed or launched right now. The rest of the dashboard keeps working.",
  "feature-not-licensed": "The API refused this because the installed license does not grant the feature.",
  forbidden: "The policies in force do not let your API key do this. An admin can change roles or policies.",
  "dashboard-api-unreachable": "Nothing on this page could be loaded from the API.",
};

/** An API problem shown in place of what could not be loaded or done: title, detail, and the
 * problem's extra facts (field errors, the policy decision's reasons, the error id). */
export function ProblemPanel({ problem, context }: { problem: Problem; context?: string }) {
  const slug = problemSlug(problem);
  const hint = HINTS[slug];
  // Field errors, unless the detail already says all of it (one error, repeated) or Cedar's
  // diagnostics are shown instead (the policy editor lists those).
  const errors = (problem.errors ?? []).filter((e) => `${e.field}: ${e.message}` !== problem.detail);
  const showErrors = errors.length > 0 && !problem.diagnostics?.length;
  return (
    <div className="alert bad" role="alert" data-testid="problem" data-problem-type={slug} data-status={problem.status}>
      <h3>
        {context ? `${context}: ` : ""}
        {problem.title}
      </h3>
      {problem.detail ? <p data-testid="problem-detail">{problem.detail}</p> : null}
      {hint ? <p>{hint}</p> : null}
      {problem.reasons?.length ? (
        <ul>
          {problem.reasons.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      ) : null}
      {showErrors ? (
        <ul>
          {errors.map((e, i) => (
            <li key={i}>
              <code>{e.field}</code>: {e.message}
            </li>
          ))}
        </ul>
      ) : null}
      <div className="meta">
        {problem.status} {slug}
        {problem.error_id ? ` · error id ${problem.error_id}` : ""}
      </div>
    </div>
  );
}
