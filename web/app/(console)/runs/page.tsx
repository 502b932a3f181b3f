import type { Metadata } from "next";
import Link from "next/link";

import { Time, duration, shortId } from "@/components/Format";
import { ListTable } from "@/components/ListTable";
import { Pager } from "@/components/Pager";
import { ProblemPanel } from "@/components/ProblemPanel";
import { StatusBadge } from "@/components/StatusBadge";
import { call } from "@/lib/api/client";
import type { RunStatus } from "@/lib/api/types";
import { limitParam, param, type SearchParams } from "@/lib/params";

export const metadata: Metadata = { title: "Runs" };

const STATUSES: RunStatus[] = ["queued", "starting", "started", "success", "failure", "canceling", "canceled"];

export default async function RunsPage({ searchParams }: { searchParams: Promise<SearchParams> }) {
  const sp = await searchParams;
  const pipelineId = param(sp, "pipeline_id");
  const status = STATUSES.find((s) => s === param(sp, "status"));
  const cursor = param(sp, "cursor");
  const limit = limitParam(sp, 25);
  const res = await call((api) =>
    api.GET("/api/v1/runs", { params: { query: { pipeline_id: pipelineId, status, cursor, limit } } }),
  );
  return (
    <>
      <div className="page-head">
        <div>
          <h1>Runs</h1>
          <p className="sub">Runs launched through the API, newest first, as Dagster reports them.</p>
        </div>
      </div>
      <form className="filters" method="get">
        {pipelineId ? <input type="hidden" name="pipeline_id" value={pipelineId} /> : null}
        <label>
          Status
          <select name="status" defaultValue={status ?? ""}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" className="secondary">
          Filter
        </button>
        {pipelineId ? (
          <span className="muted">
            of pipeline <Link href={`/pipelines/${pipelineId}`}>{shortId(pipelineId)}</Link> (
            <Link href="/runs">all runs</Link>)
          </span>
        ) : null}
      </form>
      {res.problem ? (
        <ProblemPanel problem={res.problem} context="Runs could not be listed" />
      ) : (
        <>
          <ListTable
            testId="runs"
            columns={["Run", "Job", "Status", "Created", "Started", "Duration"]}
            empty={"No runs."}
          >
            {res.data.items.map((r) => (
              <tr key={r.id}>
                <td>
                  <Link href={`/runs/${r.id}`} className="mono">
                    {shortId(r.id)}
                  </Link>
                </td>
                <td>
                  {r.pipeline_id ? <Link href={`/pipelines/${r.pipeline_id}`}>{r.job_name}</Link> : r.job_name}
                </td>
                <td>
                  <StatusBadge status={r.status} />
                </td>
                <td>
                  <Time value={r.created_at} />
                </td>
                <td>
                  <Time value={r.started_at} />
                </td>
                <td>{duration(r.started_at, r.ended_at)}</td>
              </tr>
            ))}
          </ListTable>
          <Pager
            path="/runs"
            params={{ pipeline_id: pipelineId, status, limit: sp.limit ? String(limit) : undefined }}
            nextCursor={res.data.next_cursor}
            onFirstPage={!cursor}
          />
        </>
      )}
    </>
  );
}
