// Display names for nodes: a node's name, with the start of its id added when several nodes
// share that name (machines installed from one image are often all called the same).

import type { MeshNode } from "./types";

let shared = new Set<string>();

/** Called with every new node list, so labels know which names are ambiguous. */
export function learnNodes(nodes: MeshNode[]) {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const n of nodes) {
    if (!n.name) continue;
    if (seen.has(n.name)) dup.add(n.name);
    seen.add(n.name);
  }
  shared = dup;
}

export function nodeLabel(n: MeshNode): string {
  if (!n.name) return n.id.length > 8 ? `${n.id.slice(0, 8)}…` : n.id;
  return shared.has(n.name) ? `${n.name}·${n.id.slice(0, 4)}` : n.name;
}
