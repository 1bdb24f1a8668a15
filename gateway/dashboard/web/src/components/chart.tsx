// A time-series chart drawn by uPlot, resized with its container and recoloured with the theme.

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  label: string;
  color: string;
  values: (number | null)[];
  fill?: boolean;
}

function cssVar(name: string) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export function TimeChart(props: { t: number[]; series: Series[]; height?: number; format?: (v: number) => string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const key = props.series.map((s) => s.label).join("|");

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const axis = {
      stroke: cssVar("--muted"),
      grid: { stroke: cssVar("--line"), width: 1 },
      ticks: { stroke: cssVar("--line"), width: 1 },
    };
    const fmt = props.format;
    const opts: uPlot.Options = {
      width: el.clientWidth || 300,
      height: props.height ?? 180,
      cursor: { drag: { x: false, y: false } },
      legend: { show: true, live: false },
      scales: { y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.15 : 1] } },
      axes: [axis, { ...axis, size: 64, values: fmt ? (_u, vals) => vals.map((v) => fmt(v)) : undefined }],
      series: [
        {},
        ...props.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: s.fill ? `${s.color}22` : undefined,
          value: fmt ? (_u: uPlot, v: number | null) => (v === null ? "—" : fmt(v)) : undefined,
        })),
      ],
    };
    const u = new uPlot(opts, [props.t, ...props.series.map((s) => s.values)] as uPlot.AlignedData, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: el.clientWidth, height: props.height ?? 180 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [key]);

  useEffect(() => {
    plot.current?.setData([props.t, ...props.series.map((s) => s.values)] as uPlot.AlignedData);
  }, [props.t, props.series]);

  return <div class="chart" ref={box} />;
}
