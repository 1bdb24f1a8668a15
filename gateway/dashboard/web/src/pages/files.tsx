// The file browser: folders derived from paths, upload with progress (drop files or pick
// them), download, delete, and a stat panel that shows where each chunk's shards live.

import { useEffect, useRef, useState } from "preact/hooks";
import { del, describe, encodePath, get, upload } from "../api";
import { Badge, Card, Empty, ErrorNote, PageHead, Progress } from "../components/ui";
import { useLive } from "../store";
import { bytes, short, time } from "../format";
import { nodeLabel } from "../labels";
import type { FileEntry, FileStat, MeshNode } from "../types";

interface Upload {
  name: string;
  path: string;
  loaded: number;
  total: number;
  state: "sending" | "done" | "failed";
  error?: string;
  abort?: () => void;
}

const palette = ["#14b8a6", "#6366f1", "#f59e0b", "#ec4899", "#22c55e", "#0ea5e9", "#a855f7", "#ef4444", "#84cc16", "#f97316"];

function StatPanel(props: { path: string; nodes: MeshNode[]; onClose: () => void }) {
  const [stat, setStat] = useState<FileStat | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setStat(null);
    setError(null);
    get<FileStat>(`/stat/${encodePath(props.path)}`).then(setStat, (e) => setError(describe(e)));
  }, [props.path]);
  const nodeIds = [...new Set((stat?.chunks ?? []).flatMap((c) => c.shards.map((s) => s.node)))];
  const color = (id: string) => palette[nodeIds.indexOf(id) % palette.length];
  const name = (id: string) => {
    const n = props.nodes.find((x) => x.id === id);
    return n ? nodeLabel(n) : short(id, 8);
  };
  return (
    <Card title={<span class="mono">{props.path}</span>} actions={<button class="btn ghost" onClick={props.onClose}>Close</button>} class="stat-panel">
      <ErrorNote error={error} what="the file's placement" />
      {!stat && !error && <div class="muted">Loading…</div>}
      {stat && (
        <>
          <dl class="kv">
            <dt>Size</dt>
            <dd>{bytes(stat.size)}</dd>
            <dt>Created</dt>
            <dd>{time(stat.created_unix)}</dd>
            <dt>Coding</dt>
            <dd>{stat.k !== undefined ? `${stat.k} data + ${stat.m} parity shards per chunk` : "—"}</dd>
            <dt>Health</dt>
            <dd>
              <Badge value={stat.health} />
            </dd>
          </dl>
          <h3 class="sub">Shard placement</h3>
          <div class="legend">
            {nodeIds.map((id) => (
              <span>
                <i style={{ background: color(id) }} /> {name(id)}
              </span>
            ))}
            <span>
              <i class="missing" /> missing
            </span>
          </div>
          <div class="chunks">
            {(stat.chunks ?? []).map((c, i) => (
              <div class="chunk">
                <div class="chunk-head">
                  <span>chunk {i}</span>
                  <span class="muted">{bytes(c.size)}</span>
                </div>
                <div class="shards">
                  {c.shards.map((s) => (
                    <span class={`shard ${s.present ? "" : "missing"}`} style={s.present ? { background: color(s.node) } : undefined} title={`shard ${s.index} on ${name(s.node)}${s.present ? "" : " (missing)"}`}>
                      {s.index}
                    </span>
                  ))}
                </div>
              </div>
            ))}
          </div>
        </>
      )}
    </Card>
  );
}

export function Files() {
  const live = useLive();
  const [prefix, setPrefix] = useState("");
  const [files, setFiles] = useState<FileEntry[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [statPath, setStatPath] = useState<string | null>(null);
  const [drag, setDrag] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  const reload = () =>
    get<{ files: FileEntry[] }>(`/files?prefix=${encodeURIComponent(prefix)}`).then(
      (v) => {
        setFiles(v.files ?? []);
        setError(null);
      },
      (e) => setError(describe(e)),
    );
  useEffect(() => {
    void reload();
    const t = window.setInterval(() => void reload(), 5000);
    return () => window.clearInterval(t);
  }, [prefix]);

  const send = (list: FileList | File[]) => {
    for (const f of Array.from(list)) {
      const path = `${prefix}${f.name}`;
      const u: Upload = { name: f.name, path, loaded: 0, total: f.size, state: "sending" };
      const up = upload(path, f, (loaded, total) => {
        u.loaded = loaded;
        u.total = total;
        setUploads((l) => [...l]);
      });
      u.abort = up.abort;
      setUploads((l) => [u, ...l].slice(0, 8));
      up.done.then(
        () => {
          u.state = "done";
          u.loaded = u.total;
          setUploads((l) => [...l]);
          void reload();
        },
        (e) => {
          u.state = "failed";
          u.error = describe(e);
          setUploads((l) => [...l]);
        },
      );
    }
  };

  const remove = async (path: string) => {
    if (!confirm(`Delete ${path}? This cannot be undone.`)) return;
    try {
      await del(`/files/${encodePath(path)}`);
      if (statPath === path) setStatPath(null);
      await reload();
    } catch (e) {
      setError(describe(e));
    }
  };

  // Folders one level below the prefix, then the files directly in it.
  const folders = new Set<string>();
  const here: FileEntry[] = [];
  for (const f of files ?? []) {
    const rest = f.path.slice(prefix.length);
    const slash = rest.indexOf("/");
    if (slash >= 0) folders.add(rest.slice(0, slash + 1));
    else here.push(f);
  }
  const crumbs = prefix.split("/").filter(Boolean);

  return (
    <div class="page">
      <PageHead
        title="Files"
        sub="Encrypted, erasure-coded files stored across the mesh."
        actions={
          <>
            <input ref={input} type="file" multiple hidden onChange={(e) => send((e.target as HTMLInputElement).files ?? [])} data-testid="upload-input" />
            <button class="btn primary" onClick={() => input.current?.click()}>
              Upload files
            </button>
          </>
        }
      />
      <div
        class={`dropzone ${drag ? "over" : ""}`}
        onDragOver={(e) => {
          e.preventDefault();
          setDrag(true);
        }}
        onDragLeave={() => setDrag(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDrag(false);
          if (e.dataTransfer?.files) send(e.dataTransfer.files);
        }}
      >
        Drop files here to upload them to <span class="mono">/{prefix}</span>
      </div>
      {uploads.length > 0 && (
        <Card title="Uploads">
          <ul class="uploads">
            {uploads.map((u) => (
              <li data-testid="upload" data-state={u.state}>
                <div class="upload-line">
                  <span class="mono">{u.path}</span>
                  <span class="muted small">
                    {u.state === "failed" ? u.error : `${bytes(u.loaded)} / ${bytes(u.total)}`}
                  </span>
                  {u.state === "sending" && (
                    <button class="btn ghost small" onClick={() => u.abort?.()}>
                      Cancel
                    </button>
                  )}
                  {u.state === "done" && <Badge value="stored" tone="good" />}
                </div>
                <Progress value={u.total ? (u.loaded / u.total) * 100 : 100} tone={u.state === "failed" ? "bad" : u.state === "done" ? "good" : "accent"} />
              </li>
            ))}
          </ul>
        </Card>
      )}
      <ErrorNote error={error} what="files" />
      <Card
        title={
          <nav class="crumbs" aria-label="Folder">
            <a href="#" onClick={(e) => (e.preventDefault(), setPrefix(""))}>
              All files
            </a>
            {crumbs.map((c, i) => (
              <>
                <span class="muted">/</span>
                <a href="#" onClick={(e) => (e.preventDefault(), setPrefix(crumbs.slice(0, i + 1).join("/") + "/"))}>
                  {c}
                </a>
              </>
            ))}
          </nav>
        }
        actions={<button class="btn ghost" onClick={() => void reload()}>Refresh</button>}
      >
        {files === null && !error && <div class="muted">Loading…</div>}
        {files !== null && folders.size === 0 && here.length === 0 && <Empty title="No files here">Upload a file to store it across the mesh.</Empty>}
        {files === null && error && <Empty title="Files unavailable">The gateway could not list files.</Empty>}
        {(folders.size > 0 || here.length > 0) && (
          <div class="table-scroll">
            <table class="table files">
              <thead>
                <tr>
                  <th>Name</th>
                  <th class="hide-sm">Size</th>
                  <th class="hide-sm">Chunks</th>
                  <th class="hide-sm">Created</th>
                  <th class="hide-sm">Health</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {[...folders].sort().map((f) => (
                  <tr class="clickable" onClick={() => setPrefix(prefix + f)}>
                    <td colSpan={6}>
                      <span class="folder-icon" aria-hidden="true" /> {f}
                    </td>
                  </tr>
                ))}
                {here.map((f) => (
                  <tr data-testid="file-row" data-path={f.path} class={statPath === f.path ? "selected" : ""}>
                    <td>
                      <button class="linklike" onClick={() => setStatPath(f.path)} title="Show placement">
                        {f.path.slice(prefix.length)}
                      </button>
                      <div class="show-sm muted small">
                        {bytes(f.size)} · <Badge value={f.health ?? "unknown"} />
                      </div>
                    </td>
                    <td class="hide-sm">{bytes(f.size)}</td>
                    <td class="hide-sm">{f.chunks ?? "—"}</td>
                    <td class="hide-sm">{time(f.created_unix)}</td>
                    <td class="hide-sm">
                      <Badge value={f.health ?? "unknown"} />
                    </td>
                    <td class="row-actions">
                      <a class="btn ghost small" href={`/api/v1/files/${encodePath(f.path)}`} download={f.path.split("/").pop()} data-testid="download">
                        Download
                      </a>
                      <button class="btn ghost small danger" onClick={() => void remove(f.path)}>
                        Delete
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
      {statPath && <StatPanel path={statPath} nodes={live.nodes.data ?? []} onClose={() => setStatPath(null)} />}
    </div>
  );
}
