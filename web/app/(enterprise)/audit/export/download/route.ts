import type { NextRequest } from "next/server";

import { call } from "@/lib/api/client";
import type { Problem } from "@/lib/api/problem";
import { EXPORT_PAGE, EXPORT_PROBLEM_COOKIE, encodeProblem, utcParam } from "@/lib/export";
import { featureGate } from "@/lib/features";
import { servedOverHttps } from "@/lib/session";

export const dynamic = "force-dynamic";

/** Back to the export page (303), with the filters and - when there is one - the problem. */
async function back(problem: Problem | null, since: string | null, until: string | null): Promise<Response> {
  const q = new URLSearchParams();
  if (since) q.set("since", since);
  if (until) q.set("until", until);
  const headers = new Headers({ "Cache-Control": "no-store" });
  if (problem) {
    q.set("failed", "1");
    const secure = (await servedOverHttps()) ? "; Secure" : "";
    headers.append(
      "Set-Cookie",
      `${EXPORT_PROBLEM_COOKIE}=${encodeProblem(problem)}; Path=${EXPORT_PAGE}; Max-Age=60; HttpOnly; SameSite=Strict${secure}`,
    );
  }
  const query = q.toString();
  headers.set("Location", query ? `${EXPORT_PAGE}?${query}` : EXPORT_PAGE);
  return new Response(null, { status: 303, headers });
}

/**
 * The audit log as an NDJSON download, streamed from `GET /api/v1/audit/export` as it arrives
 * (never held in memory). Gated on the license feature `audit_export` like its page (which then
 * shows the "Enterprise feature" panel); the API enforces it again (403).
 */
export async function GET(request: NextRequest): Promise<Response> {
  const sinceRaw = request.nextUrl.searchParams.get("since");
  const untilRaw = request.nextUrl.searchParams.get("until");
  const gate = await featureGate("audit_export");
  if (!gate.granted) return back(null, sinceRaw, untilRaw);
  const since = utcParam(sinceRaw);
  const until = utcParam(untilRaw);
  const res = await call((api) =>
    api.GET("/api/v1/audit/export", { params: { query: { since, until } }, parseAs: "stream" }),
  );
  if (res.problem) return back(res.problem, sinceRaw, untilRaw);
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const headers = new Headers({
    "Content-Type": "application/x-ndjson; charset=utf-8",
    "Content-Disposition": `attachment; filename="openfuse-audit-${stamp}.ndjson"`,
    "Cache-Control": "no-store",
  });
  for (const name of ["X-OpenFuse-Entries", "X-OpenFuse-Truncated"]) {
    const value = res.headers.get(name);
    if (value) headers.set(name, value);
  }
  return new Response(res.data, { status: 200, headers });
}
