"use server";

import { revalidatePath } from "next/cache";

import { call } from "@/lib/api/client";
import { dashboardProblem, type Problem } from "@/lib/api/problem";
import type { PolicyExplanation } from "@/lib/api/types";
import { featureGate } from "@/lib/features";

async function lockedProblem(): Promise<Problem | null> {
  const gate = await featureGate("abac");
  if (gate.granted) return null;
  return (
    gate.problem ??
    dashboardProblem("feature-locked", 403, "Enterprise feature", `custom policies need the license feature abac (${gate.description})`)
  );
}

export interface SaveState {
  problem?: Problem;
  saved?: { version: number; policyIds: string[] };
}

/** Store a new version of the workspace's custom policies (`PUT /api/v1/policies`). */
export async function savePolicies(_previous: SaveState, form: FormData): Promise<SaveState> {
  const locked = await lockedProblem();
  if (locked) return { problem: locked };
  const text = String(form.get("text") ?? "");
  const comment = String(form.get("comment") ?? "").trim();
  const res = await call((api) => api.PUT("/api/v1/policies", { body: { text, comment } }));
  if (res.problem) return { problem: res.problem };
  revalidatePath("/policies");
  return { saved: { version: res.data.version, policyIds: res.data.policy_ids } };
}

export interface ExplainInput {
  principalId: string;
  roles: string;
  team: string;
  principalExtra: string;
  action: string;
  resourceType: string;
  resourceId: string;
  resourceExtra: string;
}

export interface ExplainState {
  problem?: Problem;
  explanation?: PolicyExplanation;
}

function extraObject(raw: string, field: string): { value: Record<string, unknown>; problem?: undefined } | { problem: Problem } {
  if (!raw.trim()) return { value: {} };
  try {
    const value: unknown = JSON.parse(raw);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) {
      return { value: value as Record<string, unknown> };
    }
  } catch {
    // reported below
  }
  return {
    problem: dashboardProblem("bad-form", 400, "Not a JSON object", `${field} must be a JSON object such as {"tags": ["env=prod"]}`),
  };
}

/** Ask the policy engine why a request would be allowed or denied (`POST /api/v1/policies/explain`). */
export async function explain(input: ExplainInput): Promise<ExplainState> {
  const locked = await lockedProblem();
  if (locked) return { problem: locked };
  const principalExtra = extraObject(input.principalExtra, "More principal attributes");
  if (principalExtra.problem) return { problem: principalExtra.problem };
  const resourceExtra = extraObject(input.resourceExtra, "Resource attributes");
  if (resourceExtra.problem) return { problem: resourceExtra.problem };
  const roles = input.roles
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  const principal: Record<string, unknown> = { ...principalExtra.value, id: input.principalId.trim(), roles };
  if (input.team.trim()) principal.team = input.team.trim();
  const resource: Record<string, unknown> = { ...resourceExtra.value, type: input.resourceType, id: input.resourceId.trim() };
  const res = await call((api) =>
    api.POST("/api/v1/policies/explain", { body: { principal, action: input.action.trim(), resource } }),
  );
  return res.problem ? { problem: res.problem } : { explanation: res.data };
}
