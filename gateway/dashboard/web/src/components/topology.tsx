// The live topology: every node of the mesh laid out by d3-force. The queen sits in the middle,
// princes (the other Raft voters) and bees around her; a link joins the queen to each member she
// leads (coordinator heartbeats and log replication flow along it). Colour is the node's status.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { forceCenter, forceCollide, forceLink, forceManyBody, forceSimulation, type Simulation, type SimulationLinkDatum, type SimulationNodeDatum } from "d3-force";
import type { MeshNode } from "../types";
import { nodeLabel } from "../labels";

interface SimNode extends SimulationNodeDatum {
  id: string;
  node: MeshNode;
}
type SimLink = SimulationLinkDatum<SimNode> & { status: string };

const radius = (role?: string) => (role === "queen" ? 28 : role === "prince" ? 20 : 15);

/** Whether the screen is phone-sized (the topology then uses a squarer canvas). */
function useNarrow() {
  const q = "(max-width: 600px)";
  const [narrow, setNarrow] = useState(() => matchMedia(q).matches);
  useEffect(() => {
    const m = matchMedia(q);
    const l = () => setNarrow(m.matches);
    m.addEventListener("change", l);
    return () => m.removeEventListener("change", l);
  }, []);
  return narrow;
}

export { nodeLabel };

export function Topology(props: { nodes: MeshNode[]; queen?: string | null; selected?: string | null; onSelect?: (id: string | null) => void; height?: number }) {
  const narrow = useNarrow();
  const W = narrow ? 420 : 800;
  const H = narrow ? 440 : props.height ?? 420;
  const sim = useRef<Simulation<SimNode, SimLink> | null>(null);
  const simNodes = useRef(new Map<string, SimNode>());
  const [, tick] = useState(0);
  const frame = useRef(0);

  const queenId = props.queen ?? props.nodes.find((n) => n.role === "queen")?.id ?? null;
  const shape = useMemo(() => props.nodes.map((n) => `${n.id}:${n.role}:${n.status}`).join(",") + `|${queenId}`, [props.nodes, queenId]);

  const { nodes, links } = useMemo(() => {
    const map = simNodes.current;
    const next = new Map<string, SimNode>();
    const list: SimNode[] = [];
    props.nodes.forEach((n, i) => {
      const prev = map.get(n.id);
      const angle = (i / Math.max(1, props.nodes.length)) * Math.PI * 2;
      const sn: SimNode = prev ?? { id: n.id, node: n, x: W / 2 + Math.cos(angle) * 120, y: H / 2 + Math.sin(angle) * 120 };
      sn.node = n;
      if (n.id === queenId) {
        sn.fx = W / 2;
        sn.fy = H / 2;
      } else {
        sn.fx = null;
        sn.fy = null;
      }
      next.set(n.id, sn);
      list.push(sn);
    });
    simNodes.current = next;
    const ls: SimLink[] = [];
    if (queenId && next.has(queenId)) {
      for (const sn of list) {
        if (sn.id !== queenId && sn.node.status !== "left" && sn.node.status !== "revoked" && sn.node.status !== "pending") {
          ls.push({ source: queenId, target: sn.id, status: sn.node.status ?? "unknown" });
        }
      }
    }
    return { nodes: list, links: ls };
  }, [shape, W]);

  useEffect(() => {
    const s =
      sim.current ??
      forceSimulation<SimNode, SimLink>()
        .force("charge", forceManyBody<SimNode>().strength(-600))

        .force("collide", forceCollide<SimNode>((d) => radius(d.node.role) + 26));
    sim.current = s;
    s.force("center", forceCenter(W / 2, H / 2).strength(0.05));
    s.nodes(nodes);
    s.force(
      "link",
      forceLink<SimNode, SimLink>(links)
        .id((d) => d.id)
        .distance((l) => ((l.target as SimNode).node?.role === "prince" ? 1 : 1.4) * (narrow ? 105 : 135))
        .strength(0.7),
    );
    s.on("tick", () => {
      for (const n of nodes) {
        const r = radius(n.node.role) + 4;
        n.x = Math.max(r + 34, Math.min(W - r - 34, n.x ?? W / 2));
        n.y = Math.max(r + 4, Math.min(H - r - 18, n.y ?? H / 2));
      }
      if (!frame.current) frame.current = requestAnimationFrame(() => {
        frame.current = 0;
        tick((t) => t + 1);
      });
    });
    s.alpha(0.8).restart();
  }, [nodes, links]);

  useEffect(() => () => void sim.current?.stop(), []);

  return (
    <svg class="topology" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Mesh topology: ${props.nodes.length} nodes`} onClick={() => props.onSelect?.(null)}>
      <defs>
        <radialGradient id="queen-glow">
          <stop offset="0%" stop-color="var(--accent)" stop-opacity="0.35" />
          <stop offset="100%" stop-color="var(--accent)" stop-opacity="0" />
        </radialGradient>
      </defs>
      {links.map((l) => {
        const s = l.source as SimNode;
        const t = l.target as SimNode;
        return <line class={`link status-${l.status}`} x1={s.x} y1={s.y} x2={t.x} y2={t.y} />;
      })}
      {nodes.map((sn) => {
        const n = sn.node;
        const r = radius(n.role);
        return (
          <g
            class={`tnode role-${n.role ?? "none"} status-${n.status ?? "unknown"} ${props.selected === n.id ? "selected" : ""}`}
            transform={`translate(${sn.x ?? 0},${sn.y ?? 0})`}
            data-node-id={n.id}
            data-testid="topology-node"
            onClick={(e) => {
              e.stopPropagation();
              props.onSelect?.(n.id);
            }}
          >
            <title>{`${nodeLabel(n)} — ${n.role ?? "none"}, ${n.status ?? "unknown"}`}</title>
            {n.role === "queen" && <circle r={r * 2.6} fill="url(#queen-glow)" />}
            <circle class="ring" r={r + 4} />
            <circle class="dot" r={r} />
            <text class="glyph" dy="0.35em">
              {n.role === "queen" ? "Q" : n.role === "prince" ? "P" : n.role === "bee" ? "B" : "·"}
            </text>
            <text class="label" y={r + 16}>
              {nodeLabel(n)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
