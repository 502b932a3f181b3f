import type { ReactNode } from "react";

type Tone = "ok" | "bad" | "warn" | "info" | "idle";

const TONES: Record<string, Tone> = {
  success: "ok",
  failure: "bad",
  denied: "bad",
  canceled: "idle",
  canceling: "warn",
  skipped: "idle",
  queued: "warn",
  not_started: "idle",
  managed: "idle",
  starting: "info",
  started: "info",
  in_progress: "info",
  pending: "idle",
  suspended: "warn",
};

/** A run, step or audit status as a coloured badge (the text is the status itself). */
export function StatusBadge({ status }: { status: string }) {
  return (
    <span className={`badge ${TONES[status] ?? "idle"}`} data-status={status}>
      {status.replace(/_/g, " ")}
    </span>
  );
}

export function Badge({ tone, children }: { tone: Tone; children: ReactNode }) {
  return <span className={`badge ${tone}`}>{children}</span>;
}
