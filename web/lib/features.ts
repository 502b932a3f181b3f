// Enterprise gating. A route of app/(enterprise)/ asks for its feature before it renders or
// calls anything else; without it the page is the "Enterprise feature" panel and nothing more.
// The check is in each page, server action and route handler (not in a layout: Next renders a
// layout and its page in parallel, so a layout's check cannot keep a page from fetching).
import "server-only";

import type { Problem } from "./api/problem";
import { getFeatures } from "./api/queries";
import type { FeatureName } from "./api/types";

/** What each feature unlocks in the dashboard (the API's descriptions say what it enables). */
export const FEATURE_ROUTES: Record<FeatureName, { label: string; href: string | null; dashboard: string }> = {
  abac: {
    label: "Policies",
    href: "/policies",
    dashboard: "the Policies editor, its version history and the decision explainer",
  },
  masking: {
    label: "Masking",
    href: null,
    dashboard: "policies with obligations (mask, hash or drop tagged columns), applied by the sync steps",
  },
  audit_export: {
    label: "Audit export",
    href: "/audit/export",
    dashboard: "the audit log download as NDJSON",
  },
};

export interface FeatureGate {
  feature: FeatureName;
  granted: boolean;
  /** What the feature enables, as the API describes it. */
  description: string;
  edition: string;
  /** Why the flags could not be read (the gate then stays closed). */
  problem?: Problem;
}

/** Whether the license grants `feature`, from `GET /api/v1/features`; closed when that fails. */
export async function featureGate(feature: FeatureName): Promise<FeatureGate> {
  const res = await getFeatures();
  if (res.problem) {
    return { feature, granted: false, description: FEATURE_ROUTES[feature].dashboard, edition: "unknown", problem: res.problem };
  }
  const { features, descriptions, edition } = res.data;
  return {
    feature,
    granted: features[feature] === true,
    description: descriptions[feature] ?? FEATURE_ROUTES[feature].dashboard,
    edition,
  };
}
