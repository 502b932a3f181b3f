import type { Metadata } from "next";
import { cookies } from "next/headers";
import Link from "next/link";

import { EnterpriseLocked } from "@/components/EnterpriseLocked";
import { ProblemPanel } from "@/components/ProblemPanel";
import { EXPORT_PROBLEM_COOKIE, decodeProblem } from "@/lib/export";
import { featureGate } from "@/lib/features";
import { param, type SearchParams } from "@/lib/params";

export const metadata: Metadata = { title: "Audit export" };

export default async function AuditExportPage({ searchParams }: { searchParams: Promise<SearchParams> }) {
  const gate = await featureGate("audit_export");
  if (!gate.granted) return <EnterpriseLocked gate={gate} title="Audit export" />;
  const sp = await searchParams;
  // Set by the download route when the API refused the export (see lib/export.ts).
  const problem = param(sp, "failed") ? decodeProblem((await cookies()).get(EXPORT_PROBLEM_COOKIE)?.value) : undefined;
  return (
    <>
      <div className="page-head">
        <div>
          <p className="sub">
            <Link href="/audit">← Audit log</Link>
          </p>
          <h1>Audit export</h1>
          <p className="sub">
            The workspace&apos;s audit log as JSON Lines (one entry per line, oldest first, at most
            100,000 entries), for a SIEM or an archive.
          </p>
        </div>
      </div>
      {problem ? <ProblemPanel problem={problem} context="The export did not start" /> : null}
      <form className="panel filters" method="get" action="/audit/export/download" data-testid="export-form">
        <label>
          Since (UTC)
          <input type="datetime-local" name="since" defaultValue={param(sp, "since") ?? ""} />
        </label>
        <label>
          Until (UTC)
          <input type="datetime-local" name="until" defaultValue={param(sp, "until") ?? ""} />
        </label>
        <button type="submit" data-testid="export-download">
          Download .ndjson
        </button>
      </form>
      <p className="muted">Every export is itself recorded in the audit log (action <code>audit:export</code>).</p>
    </>
  );
}
