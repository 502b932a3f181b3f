import type { Metadata } from "next";
import Link from "next/link";

import { Tags, Time } from "@/components/Format";
import { ListTable } from "@/components/ListTable";
import { Pager } from "@/components/Pager";
import { ProblemPanel } from "@/components/ProblemPanel";
import { call } from "@/lib/api/client";
import { limitParam, param, type SearchParams } from "@/lib/params";

export const metadata: Metadata = { title: "Pipelines" };

export default async function PipelinesPage({ searchParams }: { searchParams: Promise<SearchParams> }) {
  const sp = await searchParams;
  const tag = param(sp, "tag");
  const cursor = param(sp, "cursor");
  const limit = limitParam(sp, 25);
  const res = await call((api) => api.GET("/api/v1/pipelines", { params: { query: { tag, cursor, limit } } }));
  return (
    <>
      <div className="page-head">
        <div>
          <h1>Pipelines</h1>
          <p className="sub">Source → destination, per stream. Open one for its streams, state and runs.</p>
        </div>
      </div>
      <form className="filters" method="get">
        <label>
          Tag
          <input name="tag" defaultValue={tag ?? ""} placeholder="key or key=value" data-testid="tag-filter" />
        </label>
        {sp.limit ? <input type="hidden" name="limit" value={String(limit)} /> : null}
        <button type="submit" className="secondary">
          Filter
        </button>
        {tag ? (
          <Link href="/pipelines" className="button secondary">
            Clear
          </Link>
        ) : null}
      </form>
      {res.problem ? (
        <ProblemPanel problem={res.problem} />
      ) : (
        <>
          <ListTable
            testId="pipelines"
            columns={["Name", "Source", "Destination", { label: "Streams", num: true }, "Schedule", "Tags", "Updated"]}
            empty={<>No pipelines{tag ? ` tagged ${tag}` : ""}.</>}
          >
            {res.data.items.map((p) => (
              <tr key={p.id} data-pipeline={p.name}>
                <td>
                  <Link href={`/pipelines/${p.id}`}>
                    <strong>{p.name}</strong>
                  </Link>
                </td>
                <td>
                  {p.source.connection_name} <span className="tag">{p.source.connector}</span>
                </td>
                <td>
                  {p.destination.connection_name} <span className="tag">{p.destination.connector}</span>
                </td>
                <td className="num">{p.streams.length}</td>
                <td>{p.schedule ? <code>{p.schedule}</code> : <span className="muted">manual</span>}</td>
                <td>
                  <Tags tags={p.tags} />
                </td>
                <td>
                  <Time value={p.updated_at} />
                </td>
              </tr>
            ))}
          </ListTable>
          <Pager
            path="/pipelines"
            params={{ tag, limit: sp.limit ? String(limit) : undefined }}
            nextCursor={res.data.next_cursor}
            onFirstPage={!cursor}
          />
        </>
      )}
    </>
  );
}
