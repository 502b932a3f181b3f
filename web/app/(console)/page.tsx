import type { Metadata } from "next";
import Link from "next/link";
import { Fragment } from "react";

import { Time, formatTime } from "@/components/Format";
import { LockIcon } from "@/components/LockIcon";
import { ProblemPanel } from "@/components/ProblemPanel";
import { Badge } from "@/components/StatusBadge";
import { getFeatures, getLicense, getMe } from "@/lib/api/queries";
import type { FeatureName, License } from "@/lib/api/types";
import { FEATURE_ROUTES } from "@/lib/features";

export const metadata: Metadata = { title: "Overview" };

function attributeValue(v: unknown): string {
  return Array.isArray(v) ? v.join(", ") : typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
}

function LicensePanel({ license }: { license: License }) {
  const community = license.edition === "community";
  return (
    <section className="panel" data-testid="license" data-edition={license.edition}>
      <h2>License</h2>
      <p className="big" data-testid="edition">
        {community ? "Community edition" : `${license.edition[0]?.toUpperCase()}${license.edition.slice(1)} edition`}
      </p>
      {community ? (
        <p className="muted" data-testid="license-reason">
          {license.reason ?? "no license applies"}
          {license.reason_code ? ` (${license.reason_code})` : ""}
        </p>
      ) : null}
      <dl className="kv">
        {license.customer ? (
          <>
            <dt>Customer</dt>
            <dd data-testid="customer">{license.customer}</dd>
          </>
        ) : null}
        {license.seats !== null && license.seats !== undefined ? (
          <>
            <dt>Seats</dt>
            <dd>{license.seats}</dd>
          </>
        ) : null}
        {license.expires ? (
          <>
            <dt>Expires</dt>
            <dd>{formatTime(license.expires)}</dd>
          </>
        ) : null}
        {license.license_id ? (
          <>
            <dt>License id</dt>
            <dd className="mono">{license.license_id}</dd>
          </>
        ) : null}
        {license.issuer ? (
          <>
            <dt>Issuer</dt>
            <dd>{license.issuer}</dd>
          </>
        ) : null}
      </dl>
    </section>
  );
}

export default async function OverviewPage() {
  const [me, license, features] = await Promise.all([getMe(), getLicense(), getFeatures()]);
  const warnings = [
    ...(license.data?.in_grace ? ["The license has expired and applies only during its grace period: renew it now."] : []),
    ...(license.data?.warnings ?? []),
  ];
  return (
    <>
      <div className="page-head">
        <div>
          <h1>Overview</h1>
          <p className="sub">Who you are, the workspace, and what this installation is licensed for.</p>
        </div>
      </div>
      {warnings.length ? (
        <div className="alert warn" role="status" data-testid="license-warning">
          <h3>License warning</h3>
          <ul>
            {warnings.map((w) => (
              <li key={w}>{w}</li>
            ))}
          </ul>
        </div>
      ) : null}
      <div className="grid">
        {me.data ? (
          <section className="panel" data-testid="me">
            <h2>Workspace</h2>
            <p className="big" data-testid="workspace">
              {me.data.workspace.name}
            </p>
            <dl className="kv">
              <dt>Principal</dt>
              <dd data-testid="principal">{me.data.name}</dd>
              {Object.entries(me.data.attributes).map(([k, v]) => (
                <Fragment key={k}>
                  <dt>{k === "roles" ? "Roles" : k}</dt>
                  <dd data-testid={k === "roles" ? "roles" : undefined}>{attributeValue(v) || <span className="muted">none</span>}</dd>
                </Fragment>
              ))}
              <dt>Workspace id</dt>
              <dd className="mono">{me.data.workspace.id}</dd>
              <dt>Principal id</dt>
              <dd className="mono">{me.data.id}</dd>
            </dl>
          </section>
        ) : (
          <ProblemPanel problem={me.problem} context="Who am I" />
        )}
        {license.data ? <LicensePanel license={license.data} /> : <ProblemPanel problem={license.problem} context="License" />}
      </div>
      <section className="panel" data-testid="features">
        <h2>Licensed features</h2>
        {features.data ? (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Feature</th>
                  <th>Status</th>
                  <th>What it enables</th>
                  <th>In the dashboard</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(features.data.features).map(([name, granted]) => {
                  const route = FEATURE_ROUTES[name as FeatureName];
                  return (
                    <tr key={name} data-feature={name} data-granted={String(granted)}>
                      <td>
                        <code>{name}</code>
                      </td>
                      <td>{granted ? <Badge tone="ok">licensed</Badge> : <Badge tone="warn">
                          <LockIcon size={11} /> not licensed
                        </Badge>}</td>
                      <td>{features.data.descriptions[name] ?? ""}</td>
                      <td>
                        {route ? (
                          route.href ? (
                            <Link href={route.href}>{route.dashboard}</Link>
                          ) : (
                            route.dashboard
                          )
                        ) : (
                          <span className="muted">-</span>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        ) : (
          <ProblemPanel problem={features.problem} />
        )}
        <p className="muted" style={{ marginTop: 10 }}>
          Whatever the dashboard shows, the API enforces these features itself: a request for an
          unlicensed one is refused with <code>403</code>.
        </p>
      </section>
      {license.data?.issued_at ? (
        <p className="muted">
          License issued <Time value={license.data.issued_at} />
        </p>
      ) : null}
    </>
  );
}
