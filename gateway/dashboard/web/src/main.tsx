// The dashboard's shell: session check, login, the navigation (a sidebar on wide screens, a
// drawer behind a menu button on phones), the theme switch and the page for the current path.

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./styles.css";
import { get, post, setUnauthorizedHandler } from "./api";
import { linkClick, navigate, usePath } from "./router";
import { startLive, stopLive, useLive } from "./store";
import { Icon, Logo } from "./components/icons";
import { Overview } from "./pages/overview";
import { Nodes } from "./pages/nodes";
import { Storage } from "./pages/storage";
import { Files } from "./pages/files";
import { Admission } from "./pages/admission";
import { Names } from "./pages/names";
import { Events } from "./pages/events";
import { Vms } from "./pages/vms";
import { Jobs } from "./pages/jobs";
import { Login } from "./pages/login";
import { nodeLabel } from "./components/topology";

const pages = [
  { path: "/", label: "Overview", icon: "overview", view: Overview },
  { path: "/nodes", label: "Nodes", icon: "nodes", view: Nodes },
  { path: "/storage", label: "Storage", icon: "storage", view: Storage },
  { path: "/files", label: "Files", icon: "files", view: Files },
  { path: "/admission", label: "Admission", icon: "admission", view: Admission },
  { path: "/names", label: "Names", icon: "names", view: Names },
  { path: "/events", label: "Events", icon: "events", view: Events },
  { path: "/vms", label: "VMs", icon: "vms", view: Vms },
  { path: "/jobs", label: "Jobs", icon: "jobs", view: Jobs },
];

type Theme = "auto" | "light" | "dark";
function applyTheme(t: Theme) {
  if (t === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
}
const savedTheme = (localStorage.getItem("hyphae-theme") as Theme | null) ?? "auto";
applyTheme(savedTheme);

function effectiveDark(t: Theme) {
  return t === "dark" || (t === "auto" && matchMedia("(prefers-color-scheme: dark)").matches);
}

function Shell(props: { onLogout: () => void }) {
  const path = usePath();
  const live = useLive();
  const [open, setOpen] = useState(false);
  const [theme, setTheme] = useState<Theme>(savedTheme);
  const page = pages.find((p) => p.path === path) ?? (path === "/login" ? pages[0] : null);
  const self = live.nodes.data?.find((n) => n.id === live.status.data?.node?.id);
  const pending = (live.nodes.data ?? []).filter((n) => n.status === "pending").length;

  useEffect(() => {
    setOpen(false);
    window.scrollTo(0, 0);
  }, [path]);
  useEffect(() => {
    if (path === "/login") history.replaceState(null, "", "/");
  }, [path]);
  useEffect(() => {
    document.title = `${page?.label ?? "Not found"} · Hyphae`;
  }, [page]);

  const toggleTheme = () => {
    const next: Theme = effectiveDark(theme) ? "light" : "dark";
    setTheme(next);
    localStorage.setItem("hyphae-theme", next);
    applyTheme(next);
  };

  const View = page?.view;
  return (
    <div class={`shell ${open ? "nav-open" : ""}`}>
      <header class="topbar">
        <button class="icon-btn" aria-label="Menu" aria-expanded={open} onClick={() => setOpen(!open)} data-testid="menu">
          <Icon name={open ? "close" : "menu"} />
        </button>
        <div class="brand">
          <Logo />
          <span class="brand-name">Hyphae</span>
        </div>
        <span class={`stream-dot stream-${live.stream}`} title={`Live updates: ${live.stream}`} />
      </header>
      <aside class="sidebar">
        <div class="brand side-brand">
          <Logo />
          <div>
            <div class="brand-name">Hyphae</div>
            <div class="muted small">{self ? `on ${nodeLabel(self)}` : live.status.data?.node?.name ?? "mesh dashboard"}</div>
          </div>
        </div>
        <nav class="nav" aria-label="Pages">
          {pages.map((p) => (
            <a href={p.path} onClick={linkClick} class={p.path === path ? "active" : ""} aria-current={p.path === path ? "page" : undefined} data-testid={`nav-${p.label.toLowerCase()}`}>
              <Icon name={p.icon} />
              <span>{p.label}</span>
              {p.path === "/admission" && pending > 0 && <span class="count">{pending}</span>}
            </a>
          ))}
        </nav>
        <div class="side-foot">
          <div class={`live live-${live.stream}`}>
            <span class={`stream-dot stream-${live.stream}`} />
            {live.stream === "live" ? "Live" : live.stream === "off" ? "Offline" : live.stream === "connecting" ? "Connecting…" : "Reconnecting…"}
          </div>
          <div class="side-actions">
            <button class="icon-btn" onClick={toggleTheme} aria-label="Switch theme" title="Switch light/dark">
              <Icon name={effectiveDark(theme) ? "sun" : "moon"} />
            </button>
            <button class="icon-btn" onClick={props.onLogout} aria-label="Sign out" title="Sign out" data-testid="logout">
              <Icon name="logout" />
            </button>
          </div>
        </div>
      </aside>
      <div class="scrim" onClick={() => setOpen(false)} />
      <main class="main">
        {View ? (
          <View />
        ) : (
          <div class="page">
            <h1>Not found</h1>
            <p>
              No page at <span class="mono">{path}</span>.{" "}
              <a href="/" onClick={linkClick}>
                Go to the overview
              </a>
              .
            </p>
          </div>
        )}
      </main>
    </div>
  );
}

function App() {
  const [session, setSession] = useState<"checking" | "in" | "out">("checking");
  useEffect(() => {
    setUnauthorizedHandler(() => {
      stopLive();
      setSession("out");
    });
    get<{ authenticated?: boolean }>("/session").then(
      (s) => setSession(s.authenticated ? "in" : "out"),
      () => setSession("out"),
    );
  }, []);
  useEffect(() => {
    if (session === "in") startLive();
  }, [session]);
  if (session === "checking") return <div class="boot" />;
  if (session === "out") return <Login onLogin={() => setSession("in")} />;
  return (
    <Shell
      onLogout={() => {
        void post("/logout").finally(() => {
          stopLive();
          setSession("out");
          navigate("/");
        });
      }}
    />
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
