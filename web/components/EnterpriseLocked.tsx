import Link from "next/link";

import { LockIcon } from "@/components/LockIcon";
import { ProblemPanel } from "@/components/ProblemPanel";
import { FEATURE_ROUTES, type FeatureGate } from "@/lib/features";

/** What a locked enterprise route renders instead of its content. */
export function EnterpriseLocked({ gate, title }: { gate: FeatureGate; title: string }) {
  const route = FEATURE_ROUTES[gate.feature];
  return (
    <>
      <div className="page-head">
        <div>
          <h1>{title}</h1>
        </div>
      </div>
      {gate.problem ? <ProblemPanel problem={gate.problem} context="The license's features could not be read" /> : null}
      <section className="locked" data-testid="enterprise-locked" data-feature={gate.feature}>
        <h2 className="row">
          <LockIcon size={18} /> Enterprise feature
        </h2>
        <p>
          This page needs the license feature <code>{gate.feature}</code>: {gate.description}.
        </p>
        <p>In this dashboard it enables {route.dashboard}.</p>
        <p className="muted">
          {gate.edition === "community"
            ? "This installation runs the community edition."
            : gate.edition === "unknown"
              ? "The license could not be read, so the feature stays locked."
              : `The installed ${gate.edition} license does not grant it.`}{" "}
          An enterprise license that grants <code>{gate.feature}</code> unlocks it; the Overview shows
          the license in force and why.
        </p>
        <p>
          <Link href="/">See the license on the Overview →</Link>
        </p>
      </section>
    </>
  );
}
