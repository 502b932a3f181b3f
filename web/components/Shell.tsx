import type { ReactNode } from "react";

import { logout } from "@/app/login/actions";
import { Nav, type NavItem } from "@/components/Nav";
import { getFeatures, getMe } from "@/lib/api/queries";
import type { FeatureName } from "@/lib/api/types";

const COMMUNITY: NavItem[] = [
  { href: "/", label: "Overview" },
  { href: "/connections", label: "Connections" },
  { href: "/pipelines", label: "Pipelines" },
  { href: "/runs", label: "Runs" },
  { href: "/audit", label: "Audit log" },
];

const ENTERPRISE: { href: string; label: string; feature: FeatureName }[] = [
  { href: "/policies", label: "Policies", feature: "abac" },
  { href: "/policies/explain", label: "Explain", feature: "abac" },
  { href: "/audit/export", label: "Audit export", feature: "audit_export" },
];

/** The signed-in frame of every page: sidebar, who is signed in, logout. */
export async function Shell({ children }: { children: ReactNode }) {
  const [me, features] = await Promise.all([getMe(), getFeatures()]);
  const granted = features.data?.features ?? {};
  const enterprise = ENTERPRISE.map((e) => ({ ...e, locked: granted[e.feature] !== true }));
  return (
    <div className="shell">
      <aside className="sidebar">
        <div className="brand">
          OpenFuse
          <small>{features.data ? `${features.data.edition} edition` : "operator dashboard"}</small>
        </div>
        <Nav community={COMMUNITY} enterprise={enterprise} />
      </aside>
      <div className="main">
        <header className="topbar">
          {me.data ? (
            <span className="who" data-testid="whoami">
              <strong>{me.data.name}</strong> in workspace <strong>{me.data.workspace.name}</strong>
            </span>
          ) : null}
          <form action={logout}>
            <button type="submit" className="secondary" data-testid="logout">
              Log out
            </button>
          </form>
        </header>
        <main className="content">{children}</main>
      </div>
    </div>
  );
}
