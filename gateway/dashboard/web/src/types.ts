// The shapes of the gateway's REST API (contract B in the project's api-contract), as the
// dashboard reads them. Every field the gateway may leave out is optional here, so pages show
// "no data" instead of breaking.

export type Role = "queen" | "prince" | "bee" | "none" | string;

export interface MeshNode {
  id: string;
  name?: string | null;
  addresses?: string[];
  role?: Role;
  status?: string;
  last_seen_unix?: number | null;
  uptime_s?: number | null;
  jitter_ms?: number | null;
  hardware?: Record<string, unknown> | null;
  score?: number | null;
  /** Fractions (0-1) in use, computed by the gateway from the hardware profile. */
  load?: { cpu?: number | null; ram?: number | null; disk?: number | null } | null;
}

export interface NodesResponse {
  nodes: MeshNode[];
}

export interface ServiceStatus {
  ready?: boolean;
  [k: string]: unknown;
}

export interface Status {
  node?: { id?: string; name?: string | null };
  mesh_id?: string | null;
  queen?: string | null;
  role?: Role | null;
  services?: Record<string, ServiceStatus>;
}

export interface Healing {
  active?: boolean;
  done?: number;
  total?: number;
}

export interface Storage {
  capacity_bytes?: number;
  used_bytes?: number;
  shards?: number;
  under_replicated_chunks?: number;
  healing?: Healing;
  backend?: string;
  nodes?: Record<string, Storage> | Array<Storage & { node?: string; id?: string }>;
  [k: string]: unknown;
}

export interface FileEntry {
  path: string;
  size: number;
  created_unix?: number;
  chunks?: number;
  health?: "healthy" | "degraded" | "lost" | string;
}

export interface Shard {
  index: number;
  id: string;
  node: string;
  present: boolean;
}

export interface FileStat {
  path: string;
  size: number;
  created_unix?: number;
  k?: number;
  m?: number;
  chunks?: { id: string; size: number; shards: Shard[] }[];
  health?: string;
}

export interface NameEntry {
  name: string;
  target: string;
}

export interface MeshEvent {
  [k: string]: unknown;
}

export interface TokenCreated {
  token: string;
  id: string;
  ttl_s: number;
  uses: number;
}
