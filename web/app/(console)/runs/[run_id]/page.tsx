import type { Metadata } from "next";
import Link from "next/link";

import { Num, Tags, Time, duration } from "@/components/Format";
import { ProblemPanel } from "@/components/ProblemPanel";
import { StatusBadge } from "@/components/StatusBadge";
import { call } from "@/lib/api/client";

export const metadata: Metadata = { title: "Run" };

const FINISHED = new Set(["success", "failure", "canceled"]);

export default async function RunPage({ params }: { params: Promise<{ run_id: string }> }) {
  const { run_id: runId } = await params;
  const res = await call((api) => api.GET("/api/v1/runs/{run_id}", { params: { path: { run_id: runId } } }));
  return (
    <>
      <div className="page-head">
        <div>
          <p className="sub">
            <Link href="/runs">← Runs</Link>
          </p>
          <h1>
            Run <span className="mono">{runId}</span>
          </h1>
        </div>
        {res.data && !FINISHED.has(res.data.status) ? (
          <Link href={`/runs/${runId}`} className="button secondary">
            Refresh
          </Link>
        ) : null}
      </div>
      {res.problem ? (
        <ProblemPanel problem={res.problem} />
      ) : (
        <>
          <section className="panel">
            <dl className="kv">
              <dt>Status</dt>
              <dd>
                <StatusBadge status={res.data.status} />
              </dd>
              <dt>Job</dt>
              <dd>
                {res.data.pipeline_id ? (
                  <Link href={`/pipelines/${res.data.pipeline_id}`}>{res.data.job_name}</Link>
                ) : (
                  res.data.job_name
                )}
              </dd>
              <dt>Created</dt>
              <dd>
                <Time value={res.data.created_at} />
              </dd>
              <dt>Started</dt>
              <dd>
                <Time value={res.data.started_at} />
              </dd>
              <dt>Ended</dt>
              <dd>
                <Time value={res.data.ended_at} />
              </dd>
              <dt>Duration</dt>
              <dd>{duration(res.data.started_at, res.data.ended_at) || <span className="muted">-</span>}</dd>
              <dt>Streams</dt>
              <dd>{res.data.streams.length ? res.data.streams.join(", ") : <span className="muted">all</span>}</dd>
              <dt>Rows written</dt>
              <dd>
                <Num value={res.data.rows_written} />
              </dd>
              <dt>Tags</dt>
              <dd>
                <Tags tags={res.data.tags} />
              </dd>
            </dl>
          </section>
          <section className="panel">
            <h2>Steps</h2>
            <div className="table-wrap">
              <table data-testid="steps">
                <thead>
                  <tr>
                    <th>Step</th>
                    <th>Stream</th>
                    <th>Status</th>
                    <th className="num">Attempts</th>
                    <th className="num">Rows read</th>
                    <th className="num">Rows written</th>
                    <th className="num">Quarantined</th>
                    <th className="num">Bytes written</th>
                    <th>Duration</th>
                  </tr>
                </thead>
                <tbody>
                  {res.data.steps.length === 0 ? (
                    <tr>
                      <td colSpan={9} className="empty">
                        No step has started yet.
                      </td>
                    </tr>
                  ) : (
                    res.data.steps.map((s) => (
                      <tr key={s.key}>
                        <td className="mono">{s.key}</td>
                        <td>{s.stream ?? <span className="muted">-</span>}</td>
                        <td>
                          <StatusBadge status={s.status} />
                        </td>
                        <td className="num">{s.attempts}</td>
                        <td className="num">
                          <Num value={s.rows_read} />
                        </td>
                        <td className="num">
                          <Num value={s.rows_written} />
                        </td>
                        <td className="num">
                          {s.rows_quarantined ? <span className="badge warn">{s.rows_quarantined.toLocaleString("en-US")}</span> : <Num value={s.rows_quarantined} />}
                        </td>
                        <td className="num">
                          <Num value={s.bytes_written} />
                        </td>
                        <td>{duration(s.started_at, s.ended_at)}</td>
                      </tr>
                    ))
                  )}
                </tbody>
              </table>
            </div>
          </section>
        </>
      )}
    </>
  );
}
