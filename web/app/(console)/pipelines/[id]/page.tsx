import type { Metadata } from "next";
import Link from "next/link";
import { randomUUID } from "node:crypto";

import { RunNow } from "./RunNow";
import { Tags, Time, duration, shortId } from "@/components/Format";
import { ProblemPanel } from "@/components/ProblemPanel";
import { StatusBadge } from "@/components/StatusBadge";
import { call } from "@/lib/api/client";
import type { CurrentStreamState, StreamSpec } from "@/lib/api/types";

export const metadata: Metadata = { title: "Pipeline" };

function StateCell({ state }: { state: CurrentStreamState | undefined }) {
  const entry = state?.entry;
  if (!entry) return <span className="muted">no state yet</span>;
  const cursor = entry.state?.cursor;
  return (
    <div>
      {cursor ? (
        <div>
          <code>
            {cursor.field} = {cursor.value}
          </code>
        </div>
      ) : (
        <span className="muted">{entry.kind === "reset" ? "reset" : "no cursor"}</span>
      )}
      <div className="muted" style={{ fontSize: 12 }}>
        {entry.kind} · <Time value={entry.committed_at} />
        {entry.run_id ? (
          <>
            {" "}
            · run <Link href={`/runs/${entry.run_id}`}>{shortId(entry.run_id)}</Link>
          </>
        ) : null}
      </div>
    </div>
  );
}

function StreamRow({ stream, state }: { stream: StreamSpec; state: CurrentStreamState | undefined }) {
  const tagged = Object.entries(stream.column_tags ?? {});
  return (
    <tr data-stream={stream.name}>
      <td>
        <strong>{stream.name}</strong>
        {stream.destination_table ? <div className="muted">→ {stream.destination_table}</div> : null}
      </td>
      <td>
        <span className="tag">{stream.mode ?? "full_refresh_overwrite"}</span>
      </td>
      <td>{stream.cursor_field ? <code>{stream.cursor_field}</code> : <span className="muted">-</span>}</td>
      <td>{stream.primary_key?.length ? <code>{stream.primary_key.join(", ")}</code> : <span className="muted">-</span>}</td>
      <td>
        {stream.columns?.length ? stream.columns.join(", ") : <span className="muted">all</span>}
        {tagged.length ? (
          <div>
            {tagged.map(([col, tags]) => (
              <span key={col} className="tag">
                {col}: {tags.join("+")}
              </span>
            ))}
          </div>
        ) : null}
      </td>
      <td className="num">{stream.transforms?.length ?? 0}</td>
      <td>
        <StateCell state={state} />
      </td>
    </tr>
  );
}

export default async function PipelinePage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const [pipeline, state, runs] = await Promise.all([
    call((api) => api.GET("/api/v1/pipelines/{pipeline_id}", { params: { path: { pipeline_id: id } } })),
    call((api) => api.GET("/api/v1/pipelines/{pipeline_id}/state", { params: { path: { pipeline_id: id } } })),
    call((api) => api.GET("/api/v1/runs", { params: { query: { pipeline_id: id, limit: 10 } } })),
  ]);
  if (pipeline.problem) {
    return (
      <>
        <div className="page-head">
          <div>
            <h1>Pipeline</h1>
            <p className="sub">
              <Link href="/pipelines">← Pipelines</Link>
            </p>
          </div>
        </div>
        <ProblemPanel problem={pipeline.problem} />
      </>
    );
  }
  const p = pipeline.data;
  const states = new Map((state.data ?? []).map((s) => [s.stream, s]));
  return (
    <>
      <div className="page-head">
        <div>
          <p className="sub">
            <Link href="/pipelines">← Pipelines</Link>
          </p>
          <h1 data-testid="pipeline-name">{p.name}</h1>
          <p className="sub mono">{p.id}</p>
        </div>
        <RunNow pipelineId={p.id} idempotencyKey={randomUUID()} />
      </div>
      <section className="panel">
        <dl className="kv">
          <dt>Source</dt>
          <dd>
            {p.source.connection_name} <span className="tag">{p.source.connector}</span>
          </dd>
          <dt>Destination</dt>
          <dd>
            {p.destination.connection_name} <span className="tag">{p.destination.connector}</span>
          </dd>
          <dt>Schedule</dt>
          <dd>{p.schedule ? <code>{p.schedule}</code> : <span className="muted">manual only</span>}</dd>
          <dt>Schema drift</dt>
          <dd>{p.schema_drift}</dd>
          <dt>Batch size</dt>
          <dd>{p.batch_size.toLocaleString("en-US")} rows</dd>
          <dt>Tags</dt>
          <dd>
            <Tags tags={p.tags} />
          </dd>
          <dt>Updated</dt>
          <dd>
            <Time value={p.updated_at} />
          </dd>
        </dl>
      </section>
      <section className="panel">
        <h2>Streams</h2>
        {state.problem ? <ProblemPanel problem={state.problem} context="Stream state" /> : null}
        <div className="table-wrap">
          <table data-testid="streams">
            <thead>
              <tr>
                <th>Stream</th>
                <th>Mode</th>
                <th>Cursor</th>
                <th>Primary key</th>
                <th>Columns</th>
                <th className="num">Transforms</th>
                <th>Current state</th>
              </tr>
            </thead>
            <tbody>
              {p.streams.map((s) => (
                <StreamRow key={s.name} stream={s} state={states.get(s.name)} />
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <section className="panel">
        <h2>Recent runs</h2>
        {runs.problem ? (
          <ProblemPanel problem={runs.problem} />
        ) : runs.data.items.length === 0 ? (
          <p className="muted">No runs yet.</p>
        ) : (
          <div className="table-wrap">
            <table data-testid="pipeline-runs">
              <thead>
                <tr>
                  <th>Run</th>
                  <th>Status</th>
                  <th>Created</th>
                  <th>Duration</th>
                </tr>
              </thead>
              <tbody>
                {runs.data.items.map((r) => (
                  <tr key={r.id}>
                    <td>
                      <Link href={`/runs/${r.id}`} className="mono">
                        {shortId(r.id)}
                      </Link>
                    </td>
                    <td>
                      <StatusBadge status={r.status} />
                    </td>
                    <td>
                      <Time value={r.created_at} />
                    </td>
                    <td>{duration(r.started_at, r.ended_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {runs.data?.next_cursor ? (
          <p style={{ marginTop: 8 }}>
            <Link href={`/runs?pipeline_id=${p.id}`}>All runs of this pipeline →</Link>
          </p>
        ) : null}
      </section>
    </>
  );
}
