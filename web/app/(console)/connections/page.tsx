import type { Metadata } from "next";

import { Time } from "@/components/Format";
import { ListTable } from "@/components/ListTable";
import { Pager } from "@/components/Pager";
import { ProblemPanel } from "@/components/ProblemPanel";
import { call } from "@/lib/api/client";
import { limitParam, param, type SearchParams } from "@/lib/params";

export const metadata: Metadata = { title: "Connections" };

/** A config value as the API gives it: secrets only ever as {"set": true|false}. */
function ConfigValue({ value }: { value: unknown }) {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "set") {
      return (value as { set: unknown }).set === true ? (
        <span className="badge idle">secret set</span>
      ) : (
        <span className="badge warn">secret not set</span>
      );
    }
    return (
      <span>
        {Object.entries(value).map(([k, v]) => (
          <span key={k} style={{ display: "block" }}>
            <span className="muted">{k}:</span> <ConfigValue value={v} />
          </span>
        ))}
      </span>
    );
  }
  if (value === null || value === undefined) return <span className="muted">-</span>;
  return <code>{typeof value === "string" ? value : JSON.stringify(value)}</code>;
}

export default async function ConnectionsPage({ searchParams }: { searchParams: Promise<SearchParams> }) {
  const sp = await searchParams;
  const connector = param(sp, "connector");
  const cursor = param(sp, "cursor");
  const limit = limitParam(sp, 50);
  const res = await call((api) => api.GET("/api/v1/connections", { params: { query: { connector, cursor, limit } } }));
  return (
    <>
      <div className="page-head">
        <div>
          <h1>Connections</h1>
          <p className="sub">Where data comes from and goes to. Secrets are never shown, only whether they are set.</p>
        </div>
      </div>
      <form className="filters" method="get">
        <label>
          Connector
          <input name="connector" defaultValue={connector ?? ""} placeholder="e.g. postgres" />
        </label>
        <button type="submit" className="secondary">
          Filter
        </button>
      </form>
      {res.problem ? (
        <ProblemPanel problem={res.problem} />
      ) : (
        <>
          <ListTable
            testId="connections"
            columns={["Name", "Connector", "Settings", "Created", "Updated"]}
            empty={<>No connections{connector ? ` of connector ${connector}` : ""} yet.</>}
          >
            {res.data.items.map((c) => (
              <tr key={c.id} data-connection={c.name}>
                <td>
                  <strong>{c.name}</strong>
                  <div className="muted mono">{c.id}</div>
                </td>
                <td>
                  <span className="tag">{c.connector}</span>
                </td>
                <td>
                  <ConfigValue value={c.config} />
                </td>
                <td>
                  <Time value={c.created_at} />
                </td>
                <td>
                  <Time value={c.updated_at} />
                </td>
              </tr>
            ))}
          </ListTable>
          <Pager
            path="/connections"
            params={{ connector, limit: sp.limit ? String(limit) : undefined }}
            nextCursor={res.data.next_cursor}
            onFirstPage={!cursor}
          />
        </>
      )}
    </>
  );
}
