// Admission: nodes waiting to join (admit them), join tokens (create one for a new machine),
// and the members (revoke one that must leave for good).

import { useEffect, useState } from "preact/hooks";
import { describe, get, post } from "../api";
import { Badge, Card, Empty, ErrorNote, PageHead } from "../components/ui";
import { nodeLabel } from "../components/topology";
import { refresh, useLive } from "../store";
import { ago, short } from "../format";
import type { MeshNode, TokenCreated } from "../types";

export function Admission() {
  const live = useLive();
  const [pending, setPending] = useState<MeshNode[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [ttl, setTtl] = useState("1h");
  const [uses, setUses] = useState(1);
  const [token, setToken] = useState<TokenCreated | null>(null);
  const [copied, setCopied] = useState(false);

  const load = () =>
    get<{ nodes: MeshNode[] }>("/admission/pending").then(
      (v) => {
        setPending(v.nodes ?? []);
        setError(null);
      },
      (e) => setError(describe(e)),
    );
  // Pending nodes also show up in the live directory; reload when it changes.
  const pendingLive = (live.nodes.data ?? []).filter((n) => n.status === "pending").map((n) => n.id).join(",");
  useEffect(() => {
    void load();
  }, [pendingLive]);

  const act = async (id: string, what: () => Promise<unknown>) => {
    setBusy(id);
    try {
      await what();
      setError(null);
      await Promise.all([load(), refresh()]);
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(null);
    }
  };

  const admit = (n: MeshNode) => act(n.id, () => post(`/admission/${encodeURIComponent(n.id)}/admit`));
  const revoke = (n: MeshNode) => {
    const reason = prompt(`Revoke ${nodeLabel(n)}? Its certificate stops being accepted by the mesh.\n\nReason:`, "decommissioned");
    if (reason === null) return;
    void act(n.id, () => post(`/nodes/${encodeURIComponent(n.id)}/revoke`, { reason }));
  };
  const create = async (e: Event) => {
    e.preventDefault();
    setBusy("token");
    setCopied(false);
    try {
      setToken(await post<TokenCreated>("/tokens", { ttl, uses }));
      setError(null);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(null);
    }
  };

  const members = (live.nodes.data ?? []).filter((n) => n.status !== "pending" && n.status !== "left" && n.status !== "revoked");

  return (
    <div class="page">
      <PageHead title="Admission" sub="Who may join the mesh." />
      <ErrorNote error={error} />
      <div class="grid-2">
        <Card title={`Pending nodes${pending ? ` (${pending.length})` : ""}`}>
          {pending === null ? (
            <div class="muted">{error ? "Unavailable." : "Loading…"}</div>
          ) : pending.length === 0 ? (
            <Empty title="Nobody is waiting">A machine that asks to join without a token appears here for you to admit.</Empty>
          ) : (
            <ul class="list">
              {pending.map((n) => (
                <li data-testid="pending-node" data-node-id={n.id}>
                  <div>
                    <div class="strong">{nodeLabel(n)}</div>
                    <div class="mono muted small">
                      {short(n.id, 18)} · {n.addresses?.join(", ") || "no address"}
                    </div>
                  </div>
                  <button class="btn primary" disabled={busy === n.id} onClick={() => void admit(n)}>
                    {busy === n.id ? "Admitting…" : "Admit"}
                  </button>
                </li>
              ))}
            </ul>
          )}
        </Card>
        <Card title="Join token">
          <form class="form-row" onSubmit={create}>
            <label>
              Valid for
              <select value={ttl} onChange={(e) => setTtl((e.target as HTMLSelectElement).value)}>
                <option value="15m">15 minutes</option>
                <option value="1h">1 hour</option>
                <option value="24h">1 day</option>
                <option value="7d">7 days</option>
              </select>
            </label>
            <label>
              Uses
              <input type="number" min={1} max={1000} value={uses} onInput={(e) => setUses(Math.max(1, Number((e.target as HTMLInputElement).value) || 1))} />
            </label>
            <button class="btn primary" type="submit" disabled={busy === "token"}>
              Create token
            </button>
          </form>
          {token ? (
            <div class="token">
              <code data-testid="token">{token.token}</code>
              <button
                class="btn ghost small"
                onClick={() => navigator.clipboard?.writeText(token.token).then(() => setCopied(true), () => setCopied(false))}
              >
                {copied ? "Copied" : "Copy"}
              </button>
              <div class="muted small">
                Admits {token.uses} node{token.uses === 1 ? "" : "s"}, expires in {Math.round(token.ttl_s / 60)} min. Put it in the new machine's <span class="mono">hyphae.toml</span> as <span class="mono">[mesh] join_token</span>. It is shown only once.
              </div>
            </div>
          ) : (
            <p class="muted small">A token lets a new machine join without waiting for you to admit it.</p>
          )}
        </Card>
      </div>
      <Card title={`Members (${members.length})`}>
        {members.length ? (
          <ul class="list">
            {members.map((n) => (
              <li>
                <div>
                  <div class="strong">
                    {nodeLabel(n)} <Badge value={n.status} /> <span class="muted small">{n.role}</span>
                  </div>
                  <div class="mono muted small">
                    {short(n.id, 18)} · seen {ago(n.last_seen_unix)}
                  </div>
                </div>
                <button class="btn ghost danger" disabled={busy === n.id} onClick={() => revoke(n)}>
                  Revoke
                </button>
              </li>
            ))}
          </ul>
        ) : (
          <Empty title="No members">{live.nodes.error ?? "Waiting for the directory…"}</Empty>
        )}
      </Card>
    </div>
  );
}
