// Compute jobs: every job's state and progress; for the selected one its tiles as a grid
// coloured by verification state (which worker computed each; tiles rebuilt from their row's
// parity hatched, and parity jobs' parity tiles as a last column), the per-worker pheromone
// scores, trust and offences, and the throughput. Polled from /api/v1/jobs every 2 s.

import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { describe, get } from "../api";
import { Badge, Card, Empty, ErrorNote, PageHead, Progress, Stat } from "../components/ui";
import { useLive } from "../store";
import { duration, short } from "../format";
import { nodeLabel } from "../labels";
import type { MeshNode } from "../types";

interface TileView {
  state: "pending" | "running" | "done" | "held" | "rebuilt" | "skipped";
  workers?: string[];
}

interface ParityView {
  rows: number;
  verified: number;
  skipped: number;
  rebuilt: number;
  tiles: TileView[];
}

interface WorkerView {
  score: number;
  trust: number;
  offences: number;
  failures: number;
  running: number;
  quarantined: boolean;
  verified: number;
}

interface Job {
  id: string;
  request: { a: string; b: string; out: string; tile?: number | null; verify?: string; parity?: boolean };
  state: string;
  error?: string | null;
  shape: [number, number, number];
  tile: number;
  tiles_total: number;
  tiles_done: number;
  rejected: number;
  failed_calls: number;
  tiles?: TileView[] | null;
  workers: Record<string, WorkerView>;
  coordinator: string;
  elapsed_secs: number;
  submitted_by?: string;
  resumes?: number;
  restored?: number;
  rebuilt?: number;
  parity?: ParityView | null;
}

const stateTone: Record<string, string> = { done: "good", running: "info", queued: "muted", failed: "bad" };
const palette = ["#14b8a6", "#6366f1", "#f59e0b", "#ec4899", "#22c55e", "#0ea5e9", "#a855f7", "#84cc16"];

/** GFLOP/s over the job's whole run (2·m·k·n flops per product). */
function throughput(j: Job): number | null {
  const [m, k, n] = j.shape;
  if (!j.elapsed_secs || !j.tiles_total) return null;
  const done = (2 * m * k * n * j.tiles_done) / j.tiles_total;
  return done / j.elapsed_secs / 1e9;
}

function tileWho(t: TileView, name: (id: string) => string): string {
  const ws = t.workers ?? [];
  if (ws.length) return ws.map(name).join(", ");
  switch (t.state) {
    case "done":
      return "restored from a checkpoint";
    case "rebuilt":
      return "rebuilt from its row's parity tile";
    case "held":
      return "lost with its worker, waiting for its row's rebuild";
    case "skipped":
      return "not needed: its row was complete first";
    default:
      return "nobody yet";
  }
}

function TileCell(props: { t: TileView; label: string; parity?: boolean; name: (id: string) => string; color: (id: string) => string }) {
  const t = props.t;
  const ws = t.workers ?? [];
  const bg = t.state === "done" && ws.length ? props.color(ws[0]) : undefined;
  return (
    <div
      class={`tile ${t.state}${props.parity ? " parity-tile" : ""}`}
      style={bg ? { background: bg } : undefined}
      title={`${props.label}: ${t.state} · ${tileWho(t, props.name)}`}
      data-state={t.state}
      data-parity={props.parity ? "true" : undefined}
    />
  );
}

function TileGrid(props: { job: Job; name: (id: string) => string; color: (id: string) => string }) {
  const j = props.job;
  if (!j.tiles) return <Empty title="Too many tiles to draw">Jobs of more than 256 tiles keep only their counters.</Empty>;
  const cols = Math.max(1, Math.ceil(j.shape[2] / Math.max(1, j.tile)));
  const parity = j.parity?.tiles ?? [];
  const withParity = parity.length > 0 && parity.length * cols === j.tiles.length;
  const cells: JSX.Element[] = [];
  j.tiles.forEach((t, i) => {
    cells.push(<TileCell t={t} label={`tile ${i}`} name={props.name} color={props.color} />);
    const row = Math.floor(i / cols);
    if (withParity && i % cols === cols - 1) {
      cells.push(<TileCell t={parity[row]} label={`parity of row ${row}`} parity name={props.name} color={props.color} />);
    }
  });
  const columns = withParity ? `repeat(${cols}, minmax(12px, 40px)) minmax(12px, 40px)` : `repeat(${cols}, minmax(12px, 40px))`;
  return (
    <div class={`tile-grid${withParity ? " with-parity" : ""}`} style={{ gridTemplateColumns: columns }} data-testid="tile-grid">
      {cells}
    </div>
  );
}

function JobDetail(props: { job: Job; nodes: MeshNode[] }) {
  const j = props.job;
  const ids = Object.keys(j.workers ?? {});
  const color = (id: string) => palette[Math.max(0, ids.indexOf(id)) % palette.length];
  const name = (id: string) => {
    const n = props.nodes.find((x) => x.id === id);
    return n ? nodeLabel(n) : short(id, 8);
  };
  const tp = throughput(j);
  return (
    <>
      <div class="stats">
        <Stat label="Tiles" value={`${j.tiles_done} / ${j.tiles_total}`} hint={`${j.tile}×${j.tile} each`} />
        <Stat label="Throughput" value={tp === null ? "—" : `${tp.toFixed(2)} GFLOP/s`} hint={`${duration(j.elapsed_secs)} elapsed`} />
        <Stat label="Rejected" value={j.rejected} hint={j.request.verify === "quorum" ? "outvoted by the quorum" : "failed Freivalds' check"} tone={j.rejected ? "warn" : "good"} />
        <Stat label="Coordinator" value={j.coordinator ? name(j.coordinator) : "queued"} hint={j.resumes ? `taken over ${j.resumes}× (${j.restored ?? 0} tiles restored)` : "the queen"} />
        {j.parity && (
          <Stat
            label="Rebuilt from parity"
            value={j.rebuilt ?? 0}
            hint={`${j.parity.verified} of ${j.parity.rows} parity tiles verified${j.parity.skipped ? `, ${j.parity.skipped} skipped` : ""}`}
            tone={j.rebuilt ? "warn" : "good"}
          />
        )}
      </div>
      <Card title="Tiles" actions={<span class="muted small">colour = the worker that computed it</span>}>
        <div class="legend">
          {ids.map((id) => (
            <span>
              <i style={{ background: color(id) }} /> {name(id)}
            </span>
          ))}
          <span>
            <i class="tile running" /> running
          </span>
          <span>
            <i class="tile pending" /> pending
          </span>
          {j.parity && (
            <>
              <span>
                <i class="tile rebuilt" /> rebuilt from parity
              </span>
              <span>
                <i class="tile held" /> lost, awaiting rebuild
              </span>
              <span>
                <i class="tile done parity-tile" /> parity tile (last column)
              </span>
            </>
          )}
        </div>
        <TileGrid job={j} name={name} color={color} />
      </Card>
      <Card title="Workers">
        <div class="table-scroll">
          <table class="table" data-testid="job-workers">
            <thead>
              <tr>
                <th>Worker</th>
                <th>Score (GFLOP/s)</th>
                <th>Trust</th>
                <th>Verified</th>
                <th>Offences</th>
                <th>State</th>
              </tr>
            </thead>
            <tbody>
              {ids.map((id) => {
                const w = j.workers[id];
                return (
                  <tr>
                    <td>
                      <i class="swatch" style={{ background: color(id) }} /> {name(id)}
                    </td>
                    <td>{w.score.toFixed(2)}</td>
                    <td>{w.trust.toFixed(2)}</td>
                    <td>{w.verified}</td>
                    <td>{w.offences}</td>
                    <td>{w.quarantined ? <Badge value="quarantined" tone="bad" /> : w.failures >= 3 ? <Badge value="dropped" tone="warn" /> : <Badge value="ok" tone="good" />}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </Card>
    </>
  );
}

export function Jobs() {
  const live = useLive();
  const nodes = live.nodes.data ?? [];
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  useEffect(() => {
    let alive = true;
    const load = () =>
      get<{ jobs: Job[] }>("/jobs").then(
        (r) => {
          if (!alive) return;
          setJobs(r.jobs ?? []);
          setError(null);
        },
        (e) => alive && setError(describe(e)),
      );
    load();
    const t = setInterval(load, 2000);
    return () => {
      alive = false;
      clearInterval(t);
    };
  }, []);
  const list = [...(jobs ?? [])].sort((a, b) => (a.state === "running" ? -1 : 0) - (b.state === "running" ? -1 : 0));
  const current = list.find((j) => j.id === selected) ?? list[0];
  return (
    <div class="page">
      <PageHead title="Jobs" sub="Matrix products split into verified tiles and run by the queen on the mesh's workers." />
      <ErrorNote error={error} what="jobs" />
      <Card title={jobs ? `${list.length} jobs` : "Jobs"}>
        {!jobs ? (
          <Empty title={error ? "Jobs unavailable" : "Loading…"} />
        ) : list.length === 0 ? (
          <Empty title="No jobs yet">Submit one with `hyphae job submit A B OUT` or POST /api/v1/jobs.</Empty>
        ) : (
          <div class="table-scroll">
            <table class="table" data-testid="jobs-table">
              <thead>
                <tr>
                  <th>Job</th>
                  <th>State</th>
                  <th>Shape</th>
                  <th>Verify</th>
                  <th>Progress</th>
                  <th>Output</th>
                </tr>
              </thead>
              <tbody>
                {list.map((j) => (
                  <tr class={j.id === current?.id ? "selected" : ""} onClick={() => setSelected(j.id)} data-testid="job-row">
                    <td class="mono">{short(j.id, 10)}</td>
                    <td>
                      <Badge value={j.state} tone={stateTone[j.state] ?? "muted"} />
                      {j.error && <div class="small muted">{j.error}</div>}
                    </td>
                    <td class="mono">{`${j.shape[0]}×${j.shape[1]} · ${j.shape[1]}×${j.shape[2]}`}</td>
                    <td>{j.request.verify ?? "freivalds"}</td>
                    <td>
                      <Progress value={j.tiles_total ? (100 * j.tiles_done) / j.tiles_total : 0} tone={j.state === "failed" ? "bad" : "accent"} label="tiles done" />
                    </td>
                    <td class="mono">{j.request.out}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
      {current && <JobDetail job={current} nodes={nodes} />}
    </div>
  );
}
