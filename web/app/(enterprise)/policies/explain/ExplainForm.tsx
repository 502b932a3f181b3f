"use client";

import { useState, useTransition } from "react";

import { explain, type ExplainInput, type ExplainState } from "../actions";
import { ProblemPanel } from "@/components/ProblemPanel";
import { Badge } from "@/components/StatusBadge";

const RESOURCE_TYPES = ["Pipeline", "Connection", "Dataset", "Stream", "Run", "Workspace", "Principal"];

export function ExplainForm({ defaults }: { defaults: ExplainInput }) {
  const [input, setInput] = useState<ExplainInput>(defaults);
  const [state, setState] = useState<ExplainState>({});
  const [pending, startTransition] = useTransition();
  const field = (name: keyof ExplainInput) => ({
    value: input[name],
    onChange: (e: { target: { value: string } }) => setInput({ ...input, [name]: e.target.value }),
  });
  const ex = state.explanation;
  return (
    <>
      <form
        className="panel"
        data-testid="explain-form"
        onSubmit={(e) => {
          e.preventDefault();
          startTransition(async () => setState(await explain(input)));
        }}
      >
        <h2>Request</h2>
        <div className="row" style={{ alignItems: "flex-end" }}>
          <label style={{ flex: "1 1 300px" }}>
            Principal id
            <input {...field("principalId")} required className="mono" />
          </label>
          <label>
            Roles (comma separated)
            <input {...field("roles")} placeholder="admin, editor" />
          </label>
          <label>
            Team
            <input {...field("team")} placeholder="analytics" />
          </label>
          <label style={{ flex: "1 1 240px" }}>
            More principal attributes (JSON)
            <input {...field("principalExtra")} placeholder='{"clearance": ["pii"]}' className="mono" />
          </label>
        </div>
        <div className="row" style={{ alignItems: "flex-end", marginTop: 12 }}>
          <label>
            Action
            <input {...field("action")} required placeholder="dataset:read" className="mono" data-testid="explain-action" />
          </label>
          <label>
            Resource type
            <select {...field("resourceType")} data-testid="explain-resource-type">
              {RESOURCE_TYPES.map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
          </label>
          <label>
            Resource id
            <input {...field("resourceId")} placeholder="public.orders" className="mono" data-testid="explain-resource-id" />
          </label>
          <label style={{ flex: "1 1 240px" }}>
            Resource attributes (JSON)
            <input
              {...field("resourceExtra")}
              placeholder='{"column_tags": ["pii"]}'
              className="mono"
              data-testid="explain-resource-extra"
            />
          </label>
          <button type="submit" disabled={pending} data-testid="explain-submit">
            {pending ? "Explaining…" : "Explain"}
          </button>
        </div>
      </form>
      {state.problem ? <ProblemPanel problem={state.problem} /> : null}
      {ex ? (
        <section className="panel" data-testid="explanation" data-allowed={String(ex.allowed)}>
          <div className="row">
            <h2 style={{ margin: 0 }}>Decision</h2>
            {ex.allowed ? <Badge tone="ok">allowed</Badge> : <Badge tone="bad">denied</Badge>}
            <span className="muted">
              {ex.reason} · {ex.considered.length} of {ex.total} policies considered · decision{" "}
              <span className="mono">{ex.decision_id}</span>
            </span>
          </div>
          <dl className="kv" style={{ marginTop: 12 }}>
            <dt>Determining policies</dt>
            <dd>
              {ex.determining.length ? (
                ex.determining.map((id) => (
                  <code key={id} className="tag">
                    {id}
                  </code>
                ))
              ) : (
                <span className="muted">none (default deny)</span>
              )}
            </dd>
            <dt>Obligations</dt>
            <dd>
              {ex.obligations.length ? (
                ex.obligations.map((o) => (
                  <code key={o} className="tag">
                    {o}
                  </code>
                ))
              ) : (
                <span className="muted">none</span>
              )}
            </dd>
            {ex.errors.length ? (
              <>
                <dt>Errors</dt>
                <dd>{ex.errors.join("; ")}</dd>
              </>
            ) : null}
          </dl>
          <h3>Explanation</h3>
          <pre className="panel" style={{ background: "#fafbfc", marginBottom: 0 }}>
            {ex.text}
          </pre>
        </section>
      ) : null}
    </>
  );
}
