// The landing page: the mesh at a glance (members, queen, storage, stream), the live topology
// with a detail panel for the selected node, membership over time and the latest events.

import { useState } from "preact/hooks";
import { useLive } from "../store";
import { Badge, Card, Empty, ErrorNote, PageHead, Progress, Stat } from "../components/ui";
import { Topology, nodeLabel } from "../components/topology";
import { TimeChart } from "../components/chart";
import { ago, bytes, duration, pct, short } from "../format";
import { EventRow } from "./events";
import type { MeshNode } from "../types";

export function NodeDetail(props: { node: MeshNode }) {
  const n = props.node;
  return (
    <dl class="kv">
      <dt>Name</dt>
      <dd>{n.name || "—"}</dd>
      <dt>Id</dt>
      <dd class="mono" title={n.id}>
        {short(n.id, 20)}
      </dd>
      <dt>Role</dt>
      <dd>
        <Badge value={n.role ?? "none"} tone="accent" />
      </dd>
      <dt>Status</dt>
      <dd>
        <Badge value={n.status} />
      </dd>
      <dt>Addresses</dt>
      <dd class="mono">{n.addresses?.length ? n.addresses.join(", ") : "—"}</dd>
      <dt>Uptime</dt>
      <dd>{duration(n.uptime_s)}</dd>
      <dt>Last seen</dt>
      <dd>{ago(n.last_seen_unix)}</dd>
      <dt>Jitter</dt>
      <dd>{n.jitter_ms === null || n.jitter_ms === undefined ? "—" : `${n.jitter_ms} ms`}</dd>
      <dt>Score</dt>
      <dd>{typeof n.score === "number" ? `${n.score.toFixed(0)} / 100` : <span class="muted">no data</span>}</dd>
    </dl>
  );
}

const roleOrder = (r?: string) => ["queen", "prince", "bee"].indexOf(r ?? "") + 1 || 9;

export function Overview() {
  const live = useLive();
  const [selected, setSelected] = useState<string | null>(null);
  const nodes = live.nodes.data ?? [];
  const members = nodes.filter((n) => n.status !== "left" && n.status !== "revoked" && n.status !== "pending");
  const up = members.filter((n) => n.status === "up").length;
  const pending = nodes.filter((n) => n.status === "pending").length;
  const queenId = live.status.data?.queen ?? nodes.find((n) => n.role === "queen")?.id ?? null;
  const queen = nodes.find((n) => n.id === queenId);
  const s = live.storage.data;
  const sel = nodes.find((n) => n.id === selected) ?? null;
  const h = live.history;

  return (
    <div class="page">
      <PageHead title="Overview" sub={live.status.data?.mesh_id ? <>Mesh <span class="mono">{short(live.status.data.mesh_id, 16)}</span></> : "The mesh at a glance"} />
      <div class="stats">
        <Stat label="Nodes up" value={live.nodes.data ? `${up} / ${members.length}` : "—"} hint={pending ? `${pending} pending admission` : "members of the mesh"} tone={live.nodes.data && up < members.length ? "warn" : "good"} />
        <Stat label="Queen" value={queen ? nodeLabel(queen) : queenId ? short(queenId) : "—"} hint={queen ? `up ${duration(queen.uptime_s)}` : "no queen known"} />
        <Stat
          label="Storage used"
          value={s && typeof s.used_bytes === "number" ? bytes(s.used_bytes) : "—"}
          hint={s && typeof s.capacity_bytes === "number" ? <><Progress value={pct(s.used_bytes ?? 0, s.capacity_bytes)} label="storage used" /> of {bytes(s.capacity_bytes)}</> : live.storage.error ? "storage unavailable" : "no data"}
        />
        <Stat
          label="Redundancy"
          value={s ? (s.under_replicated_chunks ? "Degraded" : typeof s.under_replicated_chunks === "number" ? "Healthy" : "—") : "—"}
          hint={
            s
              ? `${s.under_replicated_chunks ? `${s.under_replicated_chunks} chunks under-replicated · ` : ""}${s.healing?.active ? `healing ${s.healing.done ?? 0} / ${s.healing.total ?? "?"}` : "no repair running"}`
              : live.storage.error
                ? "storage unavailable"
                : "no data"
          }
          tone={s?.under_replicated_chunks ? "warn" : s ? "good" : undefined}
        />
      </div>
      <ErrorNote error={live.nodes.error} what="the nodes" />
      <div class="grid-2-1">
        <Card title="Topology" actions={<span class="muted small">{nodes.length} nodes · click one for details</span>}>
          {nodes.length ? (
            <div class="topo-wrap">
              <Topology nodes={nodes} queen={queenId} selected={selected} onSelect={setSelected} />
              <div class="legend">
                <span><i class="dot-up" /> up</span>
                <span><i class="dot-suspect" /> suspect</span>
                <span><i class="dot-down" /> down</span>
                <span><i class="dot-pending" /> pending</span>
                <span class="muted">Q queen · P prince · B bee</span>
              </div>
            </div>
          ) : (
            <Empty title={live.nodes.error ? "Topology unavailable" : "No nodes yet"}>{live.nodes.error ? "The gateway could not list the mesh's nodes." : "Waiting for the directory…"}</Empty>
          )}
        </Card>
        <Card title={sel ? nodeLabel(sel) : "Members"} actions={sel && <button class="btn ghost small" onClick={() => setSelected(null)}>All nodes</button>} class="side-card">
          {sel ? (
            <NodeDetail node={sel} />
          ) : nodes.length ? (
            <ul class="roster">
              {[...nodes]
                .sort((a, b) => roleOrder(a.role) - roleOrder(b.role) || nodeLabel(a).localeCompare(nodeLabel(b)))
                .map((n) => (
                  <li onClick={() => setSelected(n.id)}>
                    <span class={`role-chip status-${n.status}`}>{n.role === "queen" ? "Q" : n.role === "prince" ? "P" : n.role === "bee" ? "B" : "·"}</span>
                    <span class="grow">
                      <span class="strong">{nodeLabel(n)}</span> <span class="muted small">{n.role}</span>
                    </span>
                    <Badge value={n.status} />
                  </li>
                ))}
            </ul>
          ) : (
            <Empty title="No nodes" />
          )}
        </Card>
      </div>
      <div class="grid-2">
        <Card title="Members up" actions={<span class="muted small">since this page opened</span>}>
          {h.t.length > 2 ? (
            <TimeChart t={h.t} series={[{ label: "up", color: "#10b981", values: h.up, fill: true }, { label: "members", color: "#64748b", values: h.total }]} />
          ) : (
            <Empty title="Collecting samples">A point every 5 seconds while this page is open.</Empty>
          )}
        </Card>
        <Card title="Latest events">
          <ErrorNote error={live.events.error} what="events" />
          {live.events.data?.length ? (
            <ul class="events compact">
              {[...live.events.data].reverse().slice(0, 8).map((e) => (
                <EventRow event={e} nodes={nodes} />
              ))}
            </ul>
          ) : (
            <Empty title="No events">Nothing has happened yet, or events are unavailable.</Empty>
          )}
        </Card>
      </div>
    </div>
  );
}
