// The operator's session: the API key, in an httpOnly, SameSite=Strict cookie that only the
// dashboard's server reads. Browser JavaScript never sees it (httpOnly), other sites never make
// the browser send it (Strict), and it travels only over TLS when the dashboard is served over
// https (Secure).
import "server-only";

import { cookies, headers } from "next/headers";

export const SESSION_COOKIE = "openfuse_session";
const MAX_AGE_SECONDS = 8 * 60 * 60;

/** Printable ASCII without spaces, at most 256 characters: safe to put in a header. */
const KEY_CHARS = /^[\x21-\x7e]{1,256}$/;

/** Whether `value` can be sent as a bearer key at all (the API decides whether it is one). */
export function usableKey(value: string): boolean {
  return KEY_CHARS.test(value);
}

/** The key of this request's session, or null without a usable one. */
export async function sessionKey(): Promise<string | null> {
  const value = (await cookies()).get(SESSION_COOKIE)?.value;
  return value && usableKey(value) ? value : null;
}

/** Whether the browser reached the dashboard over https (directly or through a TLS proxy). */
export async function servedOverHttps(): Promise<boolean> {
  const proto = (await headers()).get("x-forwarded-proto") ?? "";
  return proto.split(",")[0]?.trim().toLowerCase() === "https";
}

/** Start a session with a key the API accepted (server actions and route handlers only). */
export async function storeSession(key: string): Promise<void> {
  (await cookies()).set(SESSION_COOKIE, key, {
    httpOnly: true,
    sameSite: "strict",
    secure: await servedOverHttps(),
    path: "/",
    maxAge: MAX_AGE_SECONDS,
  });
}

/** End the session (server actions and route handlers only). */
export async function clearSession(): Promise<void> {
  (await cookies()).delete({ name: SESSION_COOKIE, path: "/" });
}
