// Names: the mesh's DNS names (name → target), set and delete them, and look one up the way
// the mesh's resolver answers it.

import { useEffect, useState } from "preact/hooks";
import { del, describe, get, put } from "../api";
import { Card, Empty, ErrorNote, PageHead } from "../components/ui";
import type { NameEntry } from "../types";

interface Resolved {
  name: string;
  records: { type: string; value: string }[];
}

export function Names() {
  const [names, setNames] = useState<NameEntry[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [target, setTarget] = useState("");
  const [lookup, setLookup] = useState("");
  const [resolved, setResolved] = useState<Resolved | null>(null);
  const [resolveError, setResolveError] = useState<string | null>(null);

  const load = () =>
    get<{ names: NameEntry[] }>("/names").then(
      (v) => {
        setNames(v.names ?? []);
        setError(null);
      },
      (e) => setError(describe(e)),
    );
  useEffect(() => {
    void load();
    // Writes go through the queen; this node's copy may show them a moment later.
    const t = window.setInterval(() => void load(), 3000);
    return () => window.clearInterval(t);
  }, []);

  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await put(`/names/${encodeURIComponent(name.trim())}`, { target: target.trim() });
      setName("");
      setTarget("");
      await load();
    } catch (err) {
      setError(describe(err));
    }
  };
  const remove = async (n: string) => {
    if (!confirm(`Delete the name ${n}?`)) return;
    try {
      await del(`/names/${encodeURIComponent(n)}`);
      await load();
    } catch (err) {
      setError(describe(err));
    }
  };
  const resolve = async (e: Event) => {
    e.preventDefault();
    setResolved(null);
    setResolveError(null);
    try {
      setResolved(await get<Resolved>(`/resolve/${encodeURIComponent(lookup.trim())}`));
    } catch (err) {
      setResolveError(describe(err));
    }
  };

  return (
    <div class="page">
      <PageHead title="Names" sub="Names the mesh's DNS answers for." />
      <ErrorNote error={error} />
      <div class="grid-2">
        <Card title="Set a name">
          <form class="form-row" onSubmit={save}>
            <label>
              Name
              <input required name="name" placeholder="nas" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
            </label>
            <label>
              Target
              <input required name="target" placeholder="node name, IP or name" value={target} onInput={(e) => setTarget((e.target as HTMLInputElement).value)} />
            </label>
            <button class="btn primary" type="submit">
              Save
            </button>
          </form>
        </Card>
        <Card title="Look up">
          <form class="form-row" onSubmit={resolve}>
            <label>
              Name
              <input required name="lookup" placeholder="nas" value={lookup} onInput={(e) => setLookup((e.target as HTMLInputElement).value)} />
            </label>
            <button class="btn" type="submit">
              Resolve
            </button>
          </form>
          <ErrorNote error={resolveError} what="the name" />
          {resolved &&
            (resolved.records.length ? (
              <ul class="records">
                {resolved.records.map((r) => (
                  <li data-testid="record">
                    <span class="badge tone-info">{r.type}</span> <span class="mono">{r.value}</span>
                  </li>
                ))}
              </ul>
            ) : (
              <p class="muted">No records.</p>
            ))}
        </Card>
      </div>
      <Card title={`Names${names ? ` (${names.length})` : ""}`}>
        {names === null ? (
          <Empty title={error ? "Names unavailable" : "Loading…"} />
        ) : names.length === 0 ? (
          <Empty title="No names yet">Set one above; every node's resolver answers for it.</Empty>
        ) : (
          <div class="table-scroll">
            <table class="table">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Target</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {names.map((n) => (
                  <tr data-testid="name-row" data-name={n.name}>
                    <td class="mono">{n.name}</td>
                    <td class="mono">{n.target}</td>
                    <td class="row-actions">
                      <button class="btn ghost small danger" onClick={() => void remove(n.name)}>
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
    </div>
  );
}
