"use server";

import { redirect } from "next/navigation";

import { call } from "@/lib/api/client";
import { dashboardProblem, type Problem } from "@/lib/api/problem";
import { clearSession, storeSession, usableKey } from "@/lib/session";

export interface LoginState {
  problem?: Problem;
}

/** Check the pasted key with `GET /api/v1/me`; keep it in the session cookie when the API accepts it. */
export async function login(_previous: LoginState, form: FormData): Promise<LoginState> {
  const key = String(form.get("key") ?? "").trim();
  if (!key) {
    return { problem: dashboardProblem("api-key-missing", 400, "No API key", "paste an API key: of_<prefix>_<secret>") };
  }
  if (!usableKey(key)) {
    return {
      problem: dashboardProblem(
        "api-key-malformed",
        400,
        "Not an API key",
        "an API key is printable ASCII without spaces, at most 256 characters: of_<prefix>_<secret>",
      ),
    };
  }
  const me = await call((api) => api.GET("/api/v1/me"), { key, unauthenticated: "problem" });
  if (me.problem) return { problem: me.problem };
  await storeSession(key);
  redirect("/");
}

/** End the session and go back to the login page. */
export async function logout(): Promise<void> {
  await clearSession();
  redirect("/login");
}
