// The login page: the node's admin password buys a session cookie.

import { useState } from "preact/hooks";
import { ApiError, post } from "../api";
import { Logo } from "../components/icons";

export function Login(props: { onLogin: () => void }) {
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await post("/login", { password });
      props.onLogin();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setError("Wrong password.");
      else if (err instanceof ApiError && err.status === 429) setError("Too many attempts. Wait a moment and try again.");
      else setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="login">
      <form class="login-card" onSubmit={submit}>
        <div class="login-brand">
          <Logo />
          <div>
            <div class="brand-name">Hyphae</div>
            <div class="muted small">Mesh dashboard</div>
          </div>
        </div>
        <label>
          Admin password
          <input type="password" name="password" autoComplete="current-password" required autoFocus value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
        </label>
        {error && (
          <div class="error-note" role="alert">
            {error}
          </div>
        )}
        <button class="btn primary wide" type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p class="muted small">
          Set or change it on any node with <span class="mono">hyphae passwd</span>.
        </p>
      </form>
    </div>
  );
}
