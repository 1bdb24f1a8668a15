// Nodes: a heatmap of each node's score, load and shares (from the hardware profile in the
// directory; the gateway computes `load` and `score`), coloured teal (good) to rose (bad) on
// fixed scales, and a table of every node. Cells a node does not report say "no data".

import { useState } from "preact/hooks";
import { useLive } from "../store";
import { Badge, Card, Empty, ErrorNote, PageHead } from "../components/ui";
import { nodeLabel } from "../components/topology";
import { ago, duration, short } from "../format";
import { NodeDetail } from "./overview";
import type { MeshNode } from "../types";

/** Numeric leaves of a hardware report, keyed by dotted path ("cpu.load1"). */
export function numericFields(v: unknown, prefix = "", out: Record<string, number> = {}): Record<string, number> {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) numericFields(x, prefix ? `${prefix}.${k}` : k, out);
  } else if (typeof v === "number" && Number.isFinite(v)) {
    out[prefix] = v;
  } else if (typeof v === "boolean") {
    out[prefix] = v ? 1 : 0;
  }
  return out;
}

function heatColor(t: number) {
  // Teal (low) through amber to rose (high), readable in both themes.
  const stops = [
    [20, 184, 166],
    [245, 158, 11],
    [244, 63, 94],
  ];
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((a, j) => Math.round(a + (stops[i + 1][j] - a) * f));
  return `rgb(${c[0]} ${c[1]} ${c[2]} / 0.85)`;
}

function fmtNum(v: number) {
  if (Math.abs(v) >= 1e9) return `${(v / 2 ** 30).toFixed(1)}G`;
  if (Math.abs(v) >= 1e6) return `${(v / 2 ** 20).toFixed(0)}M`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** One heatmap column: a label, how to read it from a node, how to show it, and whether a high
 * value is good (score, share) or bad (load). */
interface Column {
  key: string;
  label: string;
  title: string;
  get: (n: MeshNode) => number | null | undefined;
  fmt: (v: number) => string;
  higherIsBetter: boolean;
}

const pctOf = (v: number) => `${Math.round(v * 100)}%`;
const hw = (n: MeshNode, a: string, b: string) => {
  const v = (n.hardware as Record<string, Record<string, unknown>> | null | undefined)?.[a]?.[b];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
};

const COLUMNS: Column[] = [
  { key: "score", label: "Score", title: "Headroom for the mesh, 0-100: unused CPU, RAM and disk times the share the node gives", get: (n) => n.score, fmt: (v) => v.toFixed(0), higherIsBetter: true },
  { key: "load.cpu", label: "CPU load", title: "1-minute load average per hardware thread", get: (n) => n.load?.cpu, fmt: pctOf, higherIsBetter: false },
  { key: "load.ram", label: "RAM used", title: "Used RAM over total RAM", get: (n) => n.load?.ram, fmt: pctOf, higherIsBetter: false },
  { key: "load.disk", label: "Disk used", title: "Used over total disk space", get: (n) => n.load?.disk, fmt: pctOf, higherIsBetter: false },
  { key: "share.cpu", label: "CPU share", title: "Share of the CPU given to the mesh", get: (n) => hw(n, "share", "cpu"), fmt: (v) => `${v}%`, higherIsBetter: true },
  { key: "share.ram", label: "RAM share", title: "Share of the RAM given to the mesh", get: (n) => hw(n, "share", "ram"), fmt: (v) => `${v}%`, higherIsBetter: true },
  { key: "share.storage", label: "Disk share", title: "Share of the disks given to the mesh", get: (n) => hw(n, "share", "storage"), fmt: (v) => `${v}%`, higherIsBetter: true },
  { key: "cpu.threads", label: "Threads", title: "Hardware threads", get: (n) => hw(n, "cpu", "threads"), fmt: fmtNum, higherIsBetter: true },
];

export function Heatmap(props: { nodes: MeshNode[] }) {
  const rows = props.nodes.filter((n) => n.status !== "left" && n.status !== "revoked");
  const cols = COLUMNS.filter((c) => rows.some((n) => typeof c.get(n) === "number"));
  if (!cols.length) {
    return (
      <Empty title="No data">
        No node reports a score or hardware profile yet. The heatmap fills in as nodes publish them.
      </Empty>
    );
  }
  return (
    <div class="heatmap-scroll">
      <table class="heatmap">
        <thead>
          <tr>
            <th>Node</th>
            {cols.map((c) => (
              <th title={c.title}>{c.label}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((n) => (
            <tr>
              <th>
                <span class="hide-sm">
                  <Badge value={n.status} />
                </span>{" "}
                {nodeLabel(n)}
              </th>
              {cols.map((c) => {
                const v = c.get(n);
                if (typeof v !== "number") return <td class="nodata">no data</td>;
                // Fixed scales (fractions, percent, score) so a calm mesh looks calm; teal is good.
                const scaled = c.key.startsWith("load.") ? v : c.key === "cpu.threads" ? 0.5 : v / 100;
                const t = c.higherIsBetter ? 1 - scaled : scaled;
                return (
                  <td style={{ background: heatColor(t) }} title={`${c.title}: ${v}`}>
                    {c.fmt(v)}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The services of the node this dashboard is served by, from its gateway's `/status`. */
function Services() {
  const live = useLive();
  const st = live.status.data;
  const services = Object.entries(st?.services ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const self = live.nodes.data?.find((n) => n.id === st?.node?.id);
  return (
    <Card title={`Services on ${self ? nodeLabel(self) : st?.node?.name || short(st?.node?.id, 10)}`} actions={st?.role && <Badge value={st.role} tone="accent" />}>
      <ErrorNote error={live.status.error} what="this node's status" />
      {services.length ? (
        <div class="services">
          {services.map(([name, s]) => (
            <div class="service" data-testid="service">
              <span class="strong">{name}</span>
              <Badge value={s.ready ? "ready" : "not ready"} tone={s.ready ? "good" : "warn"} />
            </div>
          ))}
        </div>
      ) : (
        <Empty title="No services reported">{live.status.error ? null : "Waiting for the node's status…"}</Empty>
      )}
    </Card>
  );
}

export function Nodes() {
  const live = useLive();
  const nodes = live.nodes.data ?? [];
  const [open, setOpen] = useState<string | null>(null);
  const sel = nodes.find((n) => n.id === open);
  return (
    <div class="page">
      <PageHead title="Nodes" sub="Scores, load and hardware across the mesh." />
      <ErrorNote error={live.nodes.error} what="the nodes" />
      <Services />
      <Card title="Heatmap" actions={<span class="muted small">teal: headroom · rose: busy</span>}>
        <Heatmap nodes={nodes} />
      </Card>
      <Card title={`All nodes (${nodes.length})`}>
        {nodes.length ? (
          <div class="table-scroll">
            <table class="table">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Role</th>
                  <th>Status</th>
                  <th class="hide-sm">Address</th>
                  <th class="hide-sm">Uptime</th>
                  <th class="hide-sm">Jitter</th>
                  <th>Seen</th>
                </tr>
              </thead>
              <tbody>
                {nodes.map((n) => (
                  <tr class={`clickable ${open === n.id ? "selected" : ""}`} onClick={() => setOpen(open === n.id ? null : n.id)} data-testid="node-row" data-node-id={n.id}>
                    <td>
                      <div class="strong">{nodeLabel(n)}</div>
                      <div class="mono muted small">{short(n.id, 14)}</div>
                    </td>
                    <td>{n.role ?? "none"}</td>
                    <td>
                      <Badge value={n.status} />
                    </td>
                    <td class="mono hide-sm">{n.addresses?.[0] ?? "—"}</td>
                    <td class="hide-sm">{duration(n.uptime_s)}</td>
                    <td class="hide-sm">{typeof n.jitter_ms === "number" ? `${n.jitter_ms} ms` : "—"}</td>
                    <td class="nowrap">{ago(n.last_seen_unix)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <Empty title="No nodes">{live.nodes.error ? "The directory is unavailable." : "Waiting for the directory…"}</Empty>
        )}
      </Card>
      {sel && (
        <Card title={nodeLabel(sel)} actions={<button class="btn ghost" onClick={() => setOpen(null)}>Close</button>}>
          <NodeDetail node={sel} />
          {sel.hardware && <pre class="json">{JSON.stringify(sel.hardware, null, 2)}</pre>}
        </Card>
      )}
    </div>
  );
}
