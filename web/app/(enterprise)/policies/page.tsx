import type { Metadata } from "next";
import Link from "next/link";

import { PolicyEditor } from "./PolicyEditor";
import { EnterpriseLocked } from "@/components/EnterpriseLocked";
import { Time, shortId } from "@/components/Format";
import { ProblemPanel } from "@/components/ProblemPanel";
import { Badge } from "@/components/StatusBadge";
import { call } from "@/lib/api/client";
import { featureGate } from "@/lib/features";

export const metadata: Metadata = { title: "Policies" };

export default async function PoliciesPage() {
  // The gate comes first: without `abac` nothing below runs (no policy is fetched).
  const gate = await featureGate("abac");
  if (!gate.granted) return <EnterpriseLocked gate={gate} title="Policies" />;
  const [current, versions] = await Promise.all([
    call((api) => api.GET("/api/v1/policies")),
    call((api) => api.GET("/api/v1/policies/versions", { params: { query: { limit: 50 } } })),
  ]);
  return (
    <>
      <div className="page-head">
        <div>
          <h1>Policies</h1>
          <p className="sub">
            The workspace&apos;s custom Cedar policies, in force beside the built-in roles.{" "}
            <Link href="/policies/explain">Explain a decision →</Link>
          </p>
        </div>
      </div>
      {current.problem ? (
        <ProblemPanel problem={current.problem} />
      ) : (
        <>
          <section className="panel" data-testid="policies-in-force" data-version={current.data.version}>
            <div className="row" style={{ justifyContent: "space-between" }}>
              <h2 style={{ margin: 0 }}>
                In force: {current.data.version === 0 ? "no custom policies yet" : `version ${current.data.version}`}
              </h2>
              {current.data.active ? (
                <Badge tone="ok">active</Badge>
              ) : (
                <Badge tone="warn">permits not in force (license lacks abac)</Badge>
              )}
            </div>
            <dl className="kv" style={{ marginTop: 12 }}>
              <dt>Custom policies</dt>
              <dd>
                {current.data.policy_ids.length ? (
                  current.data.policy_ids.map((id) => (
                    <code key={id} className="tag">
                      {id}
                    </code>
                  ))
                ) : (
                  <span className="muted">none</span>
                )}
              </dd>
              <dt>Built-in policies</dt>
              <dd>
                {current.data.builtin_policy_ids.map((id) => (
                  <code key={id} className="tag">
                    {id}
                  </code>
                ))}
              </dd>
              {current.data.version ? (
                <>
                  <dt>Stored</dt>
                  <dd>
                    <Time value={current.data.created_at} />
                    {current.data.comment ? ` · ${current.data.comment}` : ""}
                  </dd>
                </>
              ) : null}
            </dl>
          </section>
          <section className="panel">
            <h2>Edit</h2>
            <PolicyEditor initialText={current.data.text} version={current.data.version} />
          </section>
        </>
      )}
      <section className="panel">
        <h2>Version history</h2>
        {versions.problem ? (
          <ProblemPanel problem={versions.problem} />
        ) : versions.data.items.length === 0 ? (
          <p className="muted">No version stored yet.</p>
        ) : (
          <div className="table-wrap">
            <table data-testid="policy-versions">
              <thead>
                <tr>
                  <th className="num">Version</th>
                  <th>Stored</th>
                  <th>By</th>
                  <th>Comment</th>
                  <th>Policies</th>
                  <th>Text</th>
                </tr>
              </thead>
              <tbody>
                {versions.data.items.map((v) => (
                  <tr key={v.version} data-version={v.version}>
                    <td className="num">{v.version}</td>
                    <td>
                      <Time value={v.created_at} />
                    </td>
                    <td className="mono">{v.created_by ? shortId(v.created_by) : "-"}</td>
                    <td>{v.comment || <span className="muted">-</span>}</td>
                    <td>
                      {v.policy_ids.length ? (
                        v.policy_ids.map((id) => (
                          <code key={id} className="tag">
                            {id}
                          </code>
                        ))
                      ) : (
                        <span className="muted">none</span>
                      )}
                    </td>
                    <td style={{ maxWidth: 420 }}>
                      <details>
                        <summary className="muted">{v.text.split("\n").length} lines</summary>
                        <pre>{v.text}</pre>
                      </details>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {versions.data?.next_cursor ? <p className="muted">Showing the newest 50 versions.</p> : null}
      </section>
    </>
  );
}
