import type { Metadata } from "next";
import Link from "next/link";

import { Time } from "@/components/Format";
import { ListTable } from "@/components/ListTable";
import { Pager } from "@/components/Pager";
import { ProblemPanel } from "@/components/ProblemPanel";
import { StatusBadge } from "@/components/StatusBadge";
import { call } from "@/lib/api/client";
import type { Outcome } from "@/lib/api/types";
import { limitParam, param, type SearchParams } from "@/lib/params";

export const metadata: Metadata = { title: "Audit log" };

const OUTCOMES: Outcome[] = ["success", "denied", "failure"];

export default async function AuditPage({ searchParams }: { searchParams: Promise<SearchParams> }) {
  const sp = await searchParams;
  const actor = param(sp, "actor");
  const action = param(sp, "action");
  const resourceType = param(sp, "resource_type");
  const outcome = OUTCOMES.find((o) => o === param(sp, "outcome"));
  const cursor = param(sp, "cursor");
  const limit = limitParam(sp, 50);
  const res = await call((api) =>
    api.GET("/api/v1/audit", {
      params: { query: { actor, action, resource_type: resourceType, outcome, cursor, limit } },
    }),
  );
  const filtered = Boolean(actor || action || resourceType || outcome);
  return (
    <>
      <div className="page-head">
        <div>
          <h1>Audit log</h1>
          <p className="sub">Every write, every denial and the data plane&apos;s policy decisions, newest first.</p>
        </div>
        <Link href="/audit/export" className="button secondary">
          Export…
        </Link>
      </div>
      <form className="filters" method="get" data-testid="audit-filters">
        <label>
          Actor
          <input name="actor" defaultValue={actor ?? ""} placeholder="name or id" />
        </label>
        <label>
          Action
          <input name="action" defaultValue={action ?? ""} placeholder="e.g. policy:update" />
        </label>
        <label>
          Resource type
          <input name="resource_type" defaultValue={resourceType ?? ""} placeholder="e.g. pipeline" />
        </label>
        <label>
          Outcome
          <select name="outcome" defaultValue={outcome ?? ""}>
            <option value="">any</option>
            {OUTCOMES.map((o) => (
              <option key={o} value={o}>
                {o}
              </option>
            ))}
          </select>
        </label>
        {sp.limit ? <input type="hidden" name="limit" value={String(limit)} /> : null}
        <button type="submit" className="secondary">
          Filter
        </button>
        {filtered ? (
          <Link href="/audit" className="button secondary">
            Clear
          </Link>
        ) : null}
      </form>
      {res.problem ? (
        <ProblemPanel problem={res.problem} />
      ) : (
        <>
          <ListTable
            testId="audit"
            columns={[{ label: "#", num: true }, "When", "Actor", "Action", "Resource", "Outcome", "Detail"]}
            empty={<>No entries{filtered ? " match these filters" : ""}.</>}
          >
            {res.data.items.map((e) => (
              <tr key={e.id} data-action={e.action} data-outcome={e.outcome}>
                <td className="num">{e.id}</td>
                <td>
                  <Time value={e.at} />
                </td>
                <td>{e.actor_name}</td>
                <td>
                  <code>{e.action}</code>
                </td>
                <td>
                  {e.resource_type}
                  {e.resource_id ? <div className="muted mono">{e.resource_id}</div> : null}
                </td>
                <td>
                  <StatusBadge status={e.outcome} />
                </td>
                <td style={{ maxWidth: 380 }}>
                  {Object.keys(e.detail).length ? (
                    <details>
                      <summary className="muted">{Object.keys(e.detail).join(", ")}</summary>
                      <pre>{JSON.stringify(e.detail, null, 2)}</pre>
                    </details>
                  ) : (
                    <span className="muted">-</span>
                  )}
                </td>
              </tr>
            ))}
          </ListTable>
          <Pager
            path="/audit"
            params={{ actor, action, resource_type: resourceType, outcome, limit: sp.limit ? String(limit) : undefined }}
            nextCursor={res.data.next_cursor}
            onFirstPage={!cursor}
          />
        </>
      )}
    </>
  );
}
