"use client";

import { useActionState } from "react";

import { runNow, type RunNowState } from "./actions";
import { ProblemPanel } from "@/components/ProblemPanel";

export function RunNow({ pipelineId, idempotencyKey }: { pipelineId: string; idempotencyKey: string }) {
  const [state, action, pending] = useActionState<RunNowState, FormData>(runNow, {});
  return (
    <div>
      <form action={action} className="row" style={{ justifyContent: "flex-end" }}>
        <input type="hidden" name="pipeline_id" value={pipelineId} />
        <input type="hidden" name="idempotency_key" value={idempotencyKey} />
        <label style={{ flexDirection: "row", alignItems: "center", fontWeight: 400 }}>
          <input type="checkbox" name="full_refresh" /> full refresh
        </label>
        <button type="submit" disabled={pending} data-testid="run-now">
          {pending ? "Launching…" : "Run now"}
        </button>
      </form>
      {state.problem ? (
        <div style={{ marginTop: 12 }} data-testid="run-now-problem">
          <ProblemPanel problem={state.problem} context="The run was not launched" />
        </div>
      ) : null}
    </div>
  );
}
