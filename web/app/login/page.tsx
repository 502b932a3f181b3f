import type { Metadata } from "next";

import { LoginForm } from "./LoginForm";
import { param, type SearchParams } from "@/lib/params";

export const metadata: Metadata = { title: "Sign in" };

export default async function LoginPage({ searchParams }: { searchParams: Promise<SearchParams> }) {
  const expired = param(await searchParams, "expired") !== undefined;
  return (
    <div className="login">
      <div className="card">
        <h1>OpenFuse</h1>
        <p className="muted">Operator dashboard. Sign in with an API key.</p>
        {expired ? (
          <div className="alert warn" role="status">
            The API no longer accepts the key of this session (revoked, expired or from another
            installation). Paste a key to continue.
          </div>
        ) : null}
        <LoginForm />
        <p className="muted" style={{ marginTop: 16, fontSize: 12 }}>
          An admin makes keys with <code>openfuse admin create-key</code>. The key stays on the
          dashboard&apos;s server, in an httpOnly cookie; this page&apos;s scripts never see it.
        </p>
      </div>
    </div>
  );
}
