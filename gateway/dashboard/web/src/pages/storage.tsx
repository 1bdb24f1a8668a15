// Storage: capacity and use, redundancy health (chunks below their redundancy), healing
// progress, and use over time; per node when the gateway reports it.

import { useLive } from "../store";
import { Badge, Card, Empty, ErrorNote, PageHead, Progress, Stat } from "../components/ui";
import { TimeChart } from "../components/chart";
import { bytes, pct, short } from "../format";
import { nodeLabel } from "../labels";
import type { Storage as StorageT } from "../types";

function perNode(s: StorageT): { node: string; s: StorageT }[] {
  const n = s.nodes;
  if (!n) return [];
  if (Array.isArray(n)) return n.map((x) => ({ node: String(x.node ?? x.id ?? "?"), s: x }));
  return Object.entries(n).map(([node, x]) => ({ node, s: x }));
}

export function Storage() {
  const live = useLive();
  const s = live.storage.data;
  const h = live.history;
  const nodes = live.nodes.data ?? [];
  const cap = s?.capacity_bytes;
  const used = s?.used_bytes;
  const heal = s?.healing;
  const healPct = heal && heal.total ? pct(heal.done ?? 0, heal.total) : heal?.active ? 0 : 100;
  const rows = s ? perNode(s) : [];
  return (
    <div class="page">
      <PageHead title="Storage" sub="Capacity, redundancy and self-healing of the mesh's erasure-coded store." />
      <ErrorNote error={live.storage.error} what="storage" />
      {!s ? (
        <Card>
          <Empty title={live.storage.error ? "Storage unavailable" : "Loading…"}>{live.storage.error ? "The gateway could not reach the chunkstore. Files and storage figures appear once it answers." : null}</Empty>
        </Card>
      ) : (
        <>
          <div class="stats">
            <Stat label="Used" value={bytes(used)} hint={typeof cap === "number" ? `${pct(used ?? 0, cap).toFixed(1)}% of ${bytes(cap)}` : "capacity unknown"} />
            <Stat label="Free" value={typeof cap === "number" && typeof used === "number" ? bytes(cap - used) : "—"} hint={s.backend ? `I/O backend ${s.backend}` : undefined} />
            <Stat label="Shards" value={typeof s.shards === "number" ? s.shards.toLocaleString() : "—"} hint="stored on this mesh" />
            <Stat
              label="Under-replicated"
              value={typeof s.under_replicated_chunks === "number" ? s.under_replicated_chunks.toLocaleString() : "—"}
              hint={s.under_replicated_chunks ? "chunks below their redundancy" : "every chunk at full redundancy"}
              tone={s.under_replicated_chunks ? "warn" : "good"}
            />
          </div>
          <div class="grid-2">
            <Card title="Capacity">
              {typeof cap === "number" ? (
                <>
                  <div class="big-bar">
                    <Progress value={pct(used ?? 0, cap)} tone={pct(used ?? 0, cap) > 85 ? "bad" : "accent"} label="capacity used" />
                    <div class="big-bar-legend">
                      <span>{bytes(used)} used</span>
                      <span>{bytes(cap)} total</span>
                    </div>
                  </div>
                </>
              ) : (
                <Empty title="No data">The store does not report its capacity.</Empty>
              )}
            </Card>
            <Card title="Healing" actions={<Badge value={heal?.active ? "healing" : "idle"} tone={heal?.active ? "warn" : "good"} />}>
              {heal ? (
                <div class="big-bar">
                  <Progress value={healPct} tone={heal.active ? "warn" : "good"} label="healing progress" />
                  <div class="big-bar-legend">
                    <span>{heal.active ? `${heal.done ?? 0} of ${heal.total ?? "?"} chunks rebuilt` : "Nothing to repair"}</span>
                    <span>{heal.total ? `${healPct.toFixed(0)}%` : ""}</span>
                  </div>
                </div>
              ) : (
                <Empty title="No data">The store does not report healing progress.</Empty>
              )}
            </Card>
          </div>
          <Card title="Use over time" actions={<span class="muted small">since this page opened</span>}>
            {h.t.length > 2 && h.used.some((v) => v !== null) ? (
              <TimeChart t={h.t} format={(v) => bytes(v)} series={[{ label: "used", color: "#14b8a6", values: h.used, fill: true }, { label: "capacity", color: "#64748b", values: h.capacity }]} />
            ) : (
              <Empty title="Collecting samples">A point every 5 seconds while this page is open.</Empty>
            )}
          </Card>
          {rows.length > 0 && (
            <Card title="Per node">
              <div class="table-scroll">
                <table class="table">
                  <thead>
                    <tr>
                      <th>Node</th>
                      <th>Used</th>
                      <th>Capacity</th>
                      <th>Shards</th>
                    </tr>
                  </thead>
                  <tbody>
                    {rows.map((r) => {
                      const n = nodes.find((x) => x.id === r.node);
                      return (
                        <tr>
                          <td>{n ? nodeLabel(n) : short(r.node, 12)}</td>
                          <td>
                            {bytes(r.s.used_bytes)}
                            {typeof r.s.capacity_bytes === "number" && <Progress value={pct(r.s.used_bytes ?? 0, r.s.capacity_bytes)} />}
                          </td>
                          <td>{bytes(r.s.capacity_bytes)}</td>
                          <td>{r.s.shards ?? "—"}</td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
            </Card>
          )}
        </>
      )}
    </div>
  );
}
