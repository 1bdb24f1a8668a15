// Logs and events: the coordinator's committed membership events (admitted, pending, suspect,
// down, up, revoked, left), newest first, live from the stream, filterable by kind and node.

import { useState } from "preact/hooks";
import { useLive } from "../store";
import { Badge, Card, Empty, ErrorNote, PageHead } from "../components/ui";
import { short, time, ago } from "../format";
import { nodeLabel } from "../labels";
import type { MeshEvent, MeshNode } from "../types";

const kindTone: Record<string, string> = { admitted: "good", up: "good", pending: "info", suspect: "warn", down: "bad", revoked: "bad", left: "muted" };

export function EventRow(props: { event: MeshEvent; nodes: MeshNode[] }) {
  const e = props.event;
  const kind = typeof e.kind === "string" ? e.kind : "event";
  const nodeId = typeof e.node === "string" ? e.node : null;
  const node = props.nodes.find((n) => n.id === nodeId);
  const at = typeof e.at_unix === "number" ? e.at_unix : null;
  const rest = Object.entries(e).filter(([k]) => !["kind", "node", "at_unix"].includes(k));
  return (
    <li class="event" data-testid="event">
      <Badge value={kind} tone={kindTone[kind] ?? "muted"} />
      <span class="event-node" title={nodeId ?? ""}>
        {node ? nodeLabel(node) : short(nodeId, 12)}
      </span>
      {rest.length > 0 && <span class="event-extra mono">{rest.map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")}</span>}
      <time class="event-time" title={time(at)}>
        {ago(at)}
      </time>
    </li>
  );
}

export function Events() {
  const live = useLive();
  const [kind, setKind] = useState("");
  const [q, setQ] = useState("");
  const nodes = live.nodes.data ?? [];
  const all = live.events.data ?? [];
  const kinds = [...new Set(all.map((e) => String(e.kind ?? "")))].filter(Boolean).sort();
  const shown = [...all]
    .reverse()
    .filter((e) => !kind || e.kind === kind)
    .filter((e) => {
      if (!q) return true;
      const n = nodes.find((x) => x.id === e.node);
      return `${e.node ?? ""} ${n?.name ?? ""}`.toLowerCase().includes(q.toLowerCase());
    });
  return (
    <div class="page">
      <PageHead title="Events" sub="Membership changes committed by the coordinator, live." />
      <ErrorNote error={live.events.error} what="events" />
      <Card
        title={`${shown.length} events`}
        actions={
          <div class="filters">
            <select value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value)} aria-label="Kind">
              <option value="">All kinds</option>
              {kinds.map((k) => (
                <option value={k}>{k}</option>
              ))}
            </select>
            <input type="search" placeholder="Filter by node" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} />
          </div>
        }
      >
        {shown.length ? (
          <ul class="events">
            {shown.slice(0, 300).map((e) => (
              <EventRow event={e} nodes={nodes} />
            ))}
          </ul>
        ) : (
          <Empty title="No events">{all.length ? "None match the filter." : "The coordinator has recorded no events yet."}</Empty>
        )}
      </Card>
    </div>
  );
}
