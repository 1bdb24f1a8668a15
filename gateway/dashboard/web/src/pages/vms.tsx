// VMs: the mesh's replicated VMs (memrep through /api/v1/vms); for those whose primary is this node: where each
// runs and which backups hold its replicas, epoch rate, checkpoint pauses over time, lag, the
// CPU throttle as enforced, and the tail of its serial console.

import { useEffect, useRef, useState } from "preact/hooks";
import { del, describe, get, post } from "../api";
import { TimeChart } from "../components/chart";
import { Badge, Card, Empty, ErrorNote, PageHead, Stat } from "../components/ui";
import { bytes } from "../format";
import { useLive } from "../store";
import { nodeLabel } from "../components/topology";

interface VmStats {
  state: string;
  error?: string | null;
  generation: number;
  epoch: number;
  acknowledged: number;
  pause_last_ms: number;
  pause_p50_ms: number;
  pause_p99_ms: number;
  lag_ms: number;
  lag_max_ms?: number;
  interval_ms: number;
  throttle_pct: number;
  cpu_quota?: { throttle_pct: number; cpu_max: string } | null;
  throttle_cgroup?: string;
  holds?: number;
  stale: boolean;
  tracker: string;
  backups: string[];
  last_epoch_bytes: number;
  /// The VM's disk (0: none); its changed pages travel in the same epochs as the RAM's.
  disk_bytes?: number;
  last_epoch_disk_pages?: number;
}

/// The VM's record in the mesh's VM table (every node lists every VM).
interface VmRecord {
  /// What the VM is made of; `disk` is a local path or mesh:/PATH.
  spec?: { mem_mib?: number; vcpus?: number; disk?: string | null };
  primary: string;
  backups: string[];
  generation: number;
  state: string;
  note?: string | null;
}

interface Vm {
  name: string;
  /// Live figures: only on the node that runs the VM.
  stats: VmStats | null;
  record?: VmRecord | null;
}

type LocalVm = Vm & { stats: VmStats };

/// Samples kept per VM while the page is open (one every 2 s: about 4 minutes).
const KEEP = 120;

interface History {
  t: number[];
  pause: number[];
  lag: number[];
  epoch: number[];
}

const vmTone: Record<string, string> = { running: "good", held: "warn", booting: "info", stopped: "muted", failed: "bad" };

function epochRate(h: History | undefined): number | null {
  if (!h || h.t.length < 2) return null;
  const n = h.t.length - 1;
  const back = Math.max(0, n - 5);
  const dt = h.t[n] - h.t[back];
  return dt > 0 ? (h.epoch[n] - h.epoch[back]) / dt : null;
}

function throttleText(s: VmStats): string {
  if (!s.cpu_quota) return s.throttle_cgroup?.startsWith("unavailable") ? "unavailable" : "—";
  return s.cpu_quota.throttle_pct > 0 ? `${s.cpu_quota.throttle_pct}% taken` : "none";
}

function Console(props: { vm: string }) {
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    let stop = false;
    const load = async () => {
      try {
        const r = await fetch(`/api/v1/vms/${encodeURIComponent(props.vm)}/console`, { credentials: "same-origin" });
        if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
        const all = await r.text();
        if (!stop) {
          setText(all.split("\n").slice(-40).join("\n"));
          setError(null);
        }
      } catch (e) {
        if (!stop) setError(describe(e));
      }
    };
    void load();
    const t = window.setInterval(() => void load(), 3000);
    return () => {
      stop = true;
      window.clearInterval(t);
    };
  }, [props.vm]);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text]);
  return (
    <>
      <ErrorNote error={error} what="console" />
      <pre class="console mono small" ref={pre} data-testid="vm-console">
        {text ?? "…"}
      </pre>
    </>
  );
}

function VmCard(props: { vm: LocalVm; host: string; history?: History; onChange: () => void }) {
  const s = props.vm.stats;
  const h = props.history;
  const rate = epochRate(h);
  const [error, setError] = useState<string | null>(null);
  const act = async (what: "stop" | "delete") => {
    if (!confirm(`${what === "stop" ? "Stop" : "Delete"} the VM ${props.vm.name}?`)) return;
    try {
      if (what === "stop") await post(`/vms/${encodeURIComponent(props.vm.name)}/stop`);
      else await del(`/vms/${encodeURIComponent(props.vm.name)}`);
      props.onChange();
    } catch (e) {
      setError(describe(e));
    }
  };
  return (
    <Card
      title={
        <span>
          {props.vm.name} <Badge value={s.state} tone={vmTone[s.state]} />
          {s.stale && <Badge value="stale" tone="warn" />}
        </span>
      }
      actions={
        <>
          {(s.state === "running" || s.state === "held") && (
            <button class="btn ghost small" onClick={() => void act("stop")}>
              Stop
            </button>
          )}
          <button class="btn ghost small" onClick={() => void act("delete")}>
            Delete
          </button>
        </>
      }
    >
      <ErrorNote error={error} />
      {s.error && <ErrorNote error={s.error} what="the VM" />}
      <div class="stats vm-stats" data-testid="vm-stats">
        <Stat label="Host" value={props.host} hint={`generation ${s.generation}`} />
        <Stat label="Replicas" value={s.backups.length} hint={s.backups.join(", ") || "no backup"} tone={s.backups.length ? undefined : "warn"} />
        <Stat label="Epoch rate" value={rate === null ? "—" : `${rate.toFixed(1)}/s`} hint={`epoch ${s.epoch}, acked ${s.acknowledged}`} />
        <Stat label="Pause" value={`${s.pause_p50_ms.toFixed(0)} ms`} hint={`p99 ${s.pause_p99_ms.toFixed(0)} ms`} />
        <Stat label="Lag" value={`${s.lag_ms.toFixed(0)} ms`} hint={`interval ${s.interval_ms.toFixed(0)} ms`} tone={s.lag_ms > 2000 ? "bad" : s.lag_ms > 400 ? "warn" : undefined} />
        <Stat label="Throttle" value={throttleText(s)} hint={s.throttle_cgroup ?? ""} tone={s.cpu_quota && s.cpu_quota.throttle_pct > 0 ? "warn" : undefined} />
        <Stat
          label="Disk"
          value={s.disk_bytes ? bytes(s.disk_bytes) : "none"}
          hint={s.disk_bytes ? `${s.last_epoch_disk_pages ?? 0} pages last epoch · ${props.vm.record?.spec?.disk ?? ""}` : "RAM only"}
        />
      </div>
      {h && h.t.length > 2 ? (
        <TimeChart
          t={h.t}
          height={150}
          format={(v) => `${v.toFixed(0)} ms`}
          series={[
            { label: "pause", color: "#6366f1", values: h.pause },
            { label: "lag", color: "#f59e0b", values: h.lag },
          ]}
        />
      ) : (
        <Empty title="Collecting samples">Pause and lag every 2 seconds while this page is open.</Empty>
      )}
      <h3 class="small muted">Console</h3>
      <Console vm={props.vm.name} />
    </Card>
  );
}

export function Vms() {
  const live = useLive();
  const [vms, setVms] = useState<Vm[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const hist = useRef<Map<string, History>>(new Map());
  const load = () =>
    get<{ vms: Vm[] }>("/vms").then(
      (v) => {
        const now = Date.now() / 1000;
        for (const vm of v.vms ?? []) {
          if (!vm.stats) continue;
          const h = hist.current.get(vm.name) ?? { t: [], pause: [], lag: [], epoch: [] };
          h.t.push(now);
          h.pause.push(vm.stats.pause_last_ms);
          h.lag.push(vm.stats.lag_ms);
          h.epoch.push(vm.stats.epoch);
          if (h.t.length > KEEP) for (const k of ["t", "pause", "lag", "epoch"] as const) h[k].shift();
          hist.current.set(vm.name, h);
        }
        setVms([...(v.vms ?? [])].sort((a, b) => a.name.localeCompare(b.name)));
        setError(null);
      },
      (e) => setError(describe(e)),
    );
  useEffect(() => {
    void load();
    const t = window.setInterval(() => void load(), 2000);
    return () => window.clearInterval(t);
  }, []);
  const self = live.nodes.data?.find((n) => n.id === live.status.data?.node?.id);
  const host = self ? nodeLabel(self) : live.status.data?.node?.name ?? "this node";
  return (
    <div class="page" data-testid="vms-page">
      <PageHead title="VMs" sub="Replicated VMs: live replication figures for those running on this node, and every other VM in the mesh." />
      <ErrorNote error={error} what="VMs" />
      {vms === null ? (
        <Empty title="Loading…" />
      ) : vms.length === 0 ? (
        <Empty title="No VMs in the mesh">
          Start one with <span class="mono">hyphae vm create NAME --disk IMAGE --replicas 2</span> or <span class="mono">POST /api/v1/vms</span>.
        </Empty>
      ) : (
        <>
          {vms
            .filter((vm): vm is LocalVm => vm.stats !== null)
            .map((vm) => (
              <VmCard vm={vm} host={host} history={hist.current.get(vm.name)} onChange={() => void load()} />
            ))}
          {vms.some((vm) => vm.stats === null) && (
            <Card title="Elsewhere in the mesh">
              <table class="table small" data-testid="vms-elsewhere">
                <thead>
                  <tr>
                    <th>VM</th>
                    <th>State</th>
                    <th>Primary</th>
                    <th>Backups</th>
                    <th>Generation</th>
                  </tr>
                </thead>
                <tbody>
                  {vms
                    .filter((vm) => vm.stats === null)
                    .map((vm) => {
                      const n = live.nodes.data?.find((x) => x.id === vm.record?.primary);
                      return (
                        <tr>
                          <td class="mono">{vm.name}</td>
                          <td>
                            <Badge value={vm.record?.state ?? "unknown"} tone={vmTone[vm.record?.state ?? ""]} />
                          </td>
                          <td>{n ? nodeLabel(n) : vm.record?.primary ?? "—"}</td>
                          <td>{vm.record?.backups.length ?? 0}</td>
                          <td>{vm.record?.generation ?? "—"}</td>
                        </tr>
                      );
                    })}
                </tbody>
              </table>
            </Card>
          )}
        </>
      )}
    </div>
  );
}
