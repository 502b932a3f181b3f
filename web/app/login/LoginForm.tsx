"use client";

import { useActionState } from "react";

import { login, type LoginState } from "./actions";
import { ProblemPanel } from "@/components/ProblemPanel";

export function LoginForm() {
  const [state, action, pending] = useActionState<LoginState, FormData>(login, {});
  return (
    <form action={action}>
      {state.problem ? <ProblemPanel problem={state.problem} /> : null}
      <label>
        API key
        <input
          name="key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="of_<prefix>_<secret>"
          required
          data-testid="api-key"
        />
      </label>
      <button type="submit" disabled={pending} data-testid="login">
        {pending ? "Checking…" : "Sign in"}
      </button>
    </form>
  );
}
