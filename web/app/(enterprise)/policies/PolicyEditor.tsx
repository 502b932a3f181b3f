"use client";

import { useActionState, useRef, useState } from "react";

import { savePolicies, type SaveState } from "./actions";
import { ProblemPanel } from "@/components/ProblemPanel";

/** The custom policies' text, saved as a new version; Cedar's diagnostics shown beside it. */
export function PolicyEditor({ initialText, version }: { initialText: string; version: number }) {
  // Controlled, so a refused text stays in the editor to be fixed (a form action resets
  // uncontrolled fields); the comment belongs to one save and is cleared after it.
  const [text, setText] = useState(initialText);
  const [comment, setComment] = useState("");
  const [state, action, pending] = useActionState<SaveState, FormData>(async (previous, form) => {
    const next = await savePolicies(previous, form);
    if (next.saved) setComment("");
    return next;
  }, {});
  const editor = useRef<HTMLTextAreaElement>(null);
  // Select line `line` (1-based) of the editor: where a diagnostic points.
  const showLine = (line: number) => {
    const area = editor.current;
    if (!area) return;
    const lines = area.value.split("\n");
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    area.focus();
    area.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
  };
  const diagnostics = state.problem?.diagnostics ?? [];
  return (
    <form action={action} data-testid="policy-editor">
      <div className="row" style={{ alignItems: "stretch", gap: 16 }}>
        <div style={{ flex: "2 1 480px" }}>
          <label>
            Cedar policies (the whole set; saving stores version {version + 1})
            <textarea
              name="text"
              ref={editor}
              value={text}
              onChange={(e) => setText(e.target.value)}
              spellCheck={false}
              data-testid="policy-text"
              rows={16}
            />
          </label>
          <div className="row" style={{ marginTop: 10 }}>
            <label style={{ flex: 1 }}>
              Comment
              <input
                name="comment"
                value={comment}
                onChange={(e) => setComment(e.target.value)}
                placeholder="why this change"
                data-testid="policy-comment"
              />
            </label>
            <button type="submit" disabled={pending} data-testid="policy-save" style={{ alignSelf: "flex-end" }}>
              {pending ? "Validating…" : "Validate and save"}
            </button>
          </div>
        </div>
        <div style={{ flex: "1 1 320px", minWidth: 0 }}>
          {state.saved ? (
            <div className="alert ok" role="status" data-testid="policy-saved">
              <h3>Stored version {state.saved.version}</h3>
              <p>
                {state.saved.policyIds.length
                  ? `In force now: ${state.saved.policyIds.join(", ")}.`
                  : "No custom policies: only the built-in ones apply."}
              </p>
            </div>
          ) : null}
          {state.problem ? <ProblemPanel problem={state.problem} context="Not saved" /> : null}
          {diagnostics.length ? (
            <div className="table-wrap">
              <table data-testid="diagnostics">
                <thead>
                  <tr>
                    <th className="num">Line</th>
                    <th>Policy</th>
                    <th>Kind</th>
                    <th>Message</th>
                  </tr>
                </thead>
                <tbody>
                  {diagnostics.map((d, i) => (
                    <tr key={i} data-line={d.line ?? ""}>
                      <td className="num">
                        {d.line ? (
                          <button type="button" className="secondary linklike" onClick={() => showLine(d.line ?? 1)} title="Select this line in the editor">
                            {d.line}
                          </button>
                        ) : (
                          "-"
                        )}
                      </td>
                      <td>{d.policy_id ? <code>{d.policy_id}</code> : <span className="muted">-</span>}</td>
                      <td>{d.kind}</td>
                      <td>{d.message}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : null}
          {!state.saved && !state.problem ? (
            <p className="muted">
              The API validates the text against the OpenFuse schema before storing it. An invalid
              text stores nothing; the version in force stays.
            </p>
          ) : null}
        </div>
      </div>
    </form>
  );
}
