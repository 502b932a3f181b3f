"use server";

import { redirect } from "next/navigation";

import { call } from "@/lib/api/client";
import { dashboardProblem, type Problem } from "@/lib/api/problem";

export interface RunNowState {
  problem?: Problem;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Launch a run of every stream (`POST /pipelines/{id}/runs`). The Idempotency-Key comes with the
 * form, made once per page view: a double click or a resubmitted form is the same run, not two.
 * A launch that fails frees the key on the API's side, so "try again" works with the same form.
 */
export async function runNow(_previous: RunNowState, form: FormData): Promise<RunNowState> {
  const pipelineId = String(form.get("pipeline_id") ?? "");
  const idempotencyKey = String(form.get("idempotency_key") ?? "");
  if (!UUID.test(pipelineId) || !UUID.test(idempotencyKey)) {
    return { problem: dashboardProblem("bad-form", 400, "Bad form", "pipeline_id and idempotency_key must be UUIDs; reload the page") };
  }
  const fullRefresh = form.get("full_refresh") === "on";
  const res = await call((api) =>
    api.POST("/api/v1/pipelines/{pipeline_id}/runs", {
      params: { path: { pipeline_id: pipelineId }, header: { "Idempotency-Key": idempotencyKey } },
      body: { full_refresh: fullRefresh },
    }),
  );
  if (res.problem) return { problem: res.problem };
  redirect(`/runs/${encodeURIComponent(res.data.id)}`);
}
