import type { Metadata } from "next";
import Link from "next/link";

import { ExplainForm } from "./ExplainForm";
import { EnterpriseLocked } from "@/components/EnterpriseLocked";
import { getMe } from "@/lib/api/queries";
import { featureGate } from "@/lib/features";

export const metadata: Metadata = { title: "Explain a decision" };

export default async function ExplainPage() {
  const gate = await featureGate("abac");
  if (!gate.granted) return <EnterpriseLocked gate={gate} title="Explain a decision" />;
  const me = await getMe();
  const roles = me.data?.attributes.roles;
  return (
    <>
      <div className="page-head">
        <div>
          <p className="sub">
            <Link href="/policies">← Policies</Link>
          </p>
          <h1>Explain a decision</h1>
          <p className="sub">
            Would this principal be allowed this action on this resource under the policies in force, and why?
          </p>
        </div>
      </div>
      <ExplainForm
        defaults={{
          principalId: me.data?.id ?? "",
          roles: Array.isArray(roles) ? roles.join(", ") : "",
          team: typeof me.data?.attributes.team === "string" ? me.data.attributes.team : "",
          principalExtra: "",
          action: "dataset:read",
          resourceType: "Dataset",
          resourceId: "public.orders",
          resourceExtra: '{"column_tags": ["pii"]}',
        }}
      />
    </>
  );
}
