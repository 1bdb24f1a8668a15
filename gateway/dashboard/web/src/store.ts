// The live state of the mesh as the dashboard knows it: first read over REST, then kept up to
// date by the gateway's Server-Sent Events stream (`/api/v1/stream`). Each part keeps its own
// error, so one failing API (say the chunkstore is not running) does not blank the others.

import { useEffect, useState } from "preact/hooks";
import { describe, get } from "./api";
import { learnNodes } from "./labels";
import type { MeshEvent, MeshNode, NodesResponse, Status, Storage } from "./types";

export type StreamState = "off" | "connecting" | "live" | "reconnecting";

export interface Part<T> {
  data: T | null;
  error: string | null;
  at: number | null;
}

/** Samples taken as updates arrive, for the charts (this browser session only). */
export interface History {
  t: number[];
  up: number[];
  total: number[];
  used: (number | null)[];
  capacity: (number | null)[];
}

export interface LiveState {
  status: Part<Status>;
  nodes: Part<MeshNode[]>;
  storage: Part<Storage>;
  events: Part<MeshEvent[]>;
  stream: StreamState;
  history: History;
}

const empty = <T>(): Part<T> => ({ data: null, error: null, at: null });
const HISTORY_MAX = 720;

let state: LiveState = {
  status: empty(),
  nodes: empty(),
  storage: empty(),
  events: empty(),
  stream: "off",
  history: { t: [], up: [], total: [], used: [], capacity: [] },
};
const listeners = new Set<() => void>();
let source: EventSource | null = null;
let sampleTimer: number | undefined;

function set(patch: Partial<LiveState>) {
  if (patch.nodes?.data) learnNodes(patch.nodes.data);
  state = { ...state, ...patch };
  listeners.forEach((l) => l());
}

/** Samples unless the last sample is under 4 s old (updates and the timer both call it). */
function maybeSample() {
  const last = state.history.t[state.history.t.length - 1];
  if (last === undefined || Date.now() / 1000 - last >= 4) sample();
}

function sample() {
  const h = state.history;
  const nodes = state.nodes.data;
  const s = state.storage.data;
  const push = <T>(a: T[], v: T) => {
    a.push(v);
    if (a.length > HISTORY_MAX) a.shift();
  };
  const next: History = { t: [...h.t], up: [...h.up], total: [...h.total], used: [...h.used], capacity: [...h.capacity] };
  push(next.t, Date.now() / 1000);
  push(next.up, nodes ? nodes.filter((n) => n.status === "up").length : 0);
  push(next.total, nodes ? nodes.filter((n) => !["pending", "left", "revoked"].includes(n.status ?? "")).length : 0);
  push(next.used, typeof s?.used_bytes === "number" ? s.used_bytes : null);
  push(next.capacity, typeof s?.capacity_bytes === "number" ? s.capacity_bytes : null);
  set({ history: next });
}

const ok = <T>(data: T): Part<T> => ({ data, error: null, at: Date.now() });
const failed = <T>(prev: Part<T>, e: unknown): Part<T> => ({ ...prev, error: describe(e) });

async function load<T>(key: "status" | "nodes" | "storage" | "events", path: string, pick: (v: any) => T) {
  try {
    const v = pick(await get<unknown>(path));
    if (v === null || v === undefined) throw new Error("the service reports no data");
    set({ [key]: ok(v) } as Partial<LiveState>);
  } catch (e) {
    set({ [key]: failed(state[key] as Part<T>, e) } as Partial<LiveState>);
  }
}

/** Reads everything once over REST (also the way to refresh after an action). */
export function refresh(): Promise<unknown> {
  return Promise.all([
    load("status", "/status", (v) => v as Status),
    load("nodes", "/nodes", (v) => (v as NodesResponse).nodes ?? []),
    load("storage", "/storage", (v) => v as Storage),
    load("events", "/events", (v) => ((v as { events?: MeshEvent[] }).events ?? []).slice(-500)),
  ]);
}

function parse(e: MessageEvent): unknown {
  try {
    return JSON.parse(e.data);
  } catch {
    return null;
  }
}

/** Starts the REST read and the SSE stream (idempotent). */
export function startLive() {
  if (source) return;
  void refresh().then(maybeSample);
  set({ stream: "connecting" });
  const es = new EventSource("/api/v1/stream", { withCredentials: true });
  source = es;
  es.onopen = () => set({ stream: "live" });
  es.onerror = () => {
    set({ stream: "reconnecting" });
    // EventSource hides the status code: ask whether the session is still good.
    get("/session").catch(() => {});
  };
  es.addEventListener("nodes", (e) => {
    const v = parse(e as MessageEvent) as NodesResponse | null;
    if (v && Array.isArray(v.nodes)) {
      set({ nodes: ok(v.nodes), stream: "live" });
      maybeSample();
    }
  });
  es.addEventListener("status", (e) => {
    const v = parse(e as MessageEvent) as Status | null;
    if (v) set({ status: ok(v), stream: "live" });
  });
  es.addEventListener("storage", (e) => {
    const v = parse(e as MessageEvent) as Storage | null;
    if (v) set({ storage: ok(v), stream: "live" });
  });
  es.addEventListener("event", (e) => {
    const v = parse(e as MessageEvent) as MeshEvent | null;
    if (v) set({ events: ok([...(state.events.data ?? []), v].slice(-500)), stream: "live" });
  });
  sampleTimer = window.setInterval(maybeSample, 5000);
}

/** Stops the stream (on logout). */
export function stopLive() {
  source?.close();
  source = null;
  window.clearInterval(sampleTimer);
  set({ stream: "off", status: empty(), nodes: empty(), storage: empty(), events: empty() });
}

/** The live state; re-renders the calling component on every change. */
export function useLive(): LiveState {
  const [, force] = useState(0);
  useEffect(() => {
    const l = () => force((n) => n + 1);
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  return state;
}
