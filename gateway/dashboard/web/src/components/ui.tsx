// Small building blocks every page uses: cards, badges, honest empty and error states.

import type { ComponentChildren } from "preact";

export function Card(props: { title?: ComponentChildren; actions?: ComponentChildren; class?: string; children: ComponentChildren }) {
  return (
    <section class={`card ${props.class ?? ""}`}>
      {(props.title || props.actions) && (
        <header class="card-head">
          <h2>{props.title}</h2>
          {props.actions && <div class="card-actions">{props.actions}</div>}
        </header>
      )}
      {props.children}
    </section>
  );
}

export function Stat(props: { label: string; value: ComponentChildren; hint?: ComponentChildren; tone?: string }) {
  return (
    <div class={`stat ${props.tone ? `tone-${props.tone}` : ""}`}>
      <div class="stat-label">{props.label}</div>
      <div class="stat-value">{props.value}</div>
      {props.hint && <div class="stat-hint">{props.hint}</div>}
    </div>
  );
}

const tones: Record<string, string> = {
  up: "good",
  healthy: "good",
  live: "good",
  ready: "good",
  suspect: "warn",
  degraded: "warn",
  pending: "info",
  reconnecting: "warn",
  connecting: "info",
  down: "bad",
  lost: "bad",
  revoked: "bad",
  left: "muted",
  off: "muted",
};

export function Badge(props: { value: string | null | undefined; tone?: string }) {
  const v = props.value ?? "unknown";
  return <span class={`badge tone-${props.tone ?? tones[v] ?? "muted"}`}>{v}</span>;
}

export function Empty(props: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <div class="empty-title">{props.title}</div>
      {props.children && <div class="empty-body">{props.children}</div>}
    </div>
  );
}

export function ErrorNote(props: { error: string | null | undefined; what?: string }) {
  if (!props.error) return null;
  return (
    <div class="error-note" role="alert">
      <strong>{props.what ? `Could not load ${props.what}` : "Error"}:</strong> {props.error}
    </div>
  );
}

export function Progress(props: { value: number; tone?: string; label?: string }) {
  return (
    <div class={`progress tone-${props.tone ?? "accent"}`} role="progressbar" aria-valuenow={Math.round(props.value)} aria-valuemin={0} aria-valuemax={100} aria-label={props.label}>
      <div class="progress-bar" style={{ width: `${Math.max(0, Math.min(100, props.value))}%` }} />
    </div>
  );
}

export function PageHead(props: { title: string; sub?: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <div class="page-head">
      <div>
        <h1>{props.title}</h1>
        {props.sub && <p class="page-sub">{props.sub}</p>}
      </div>
      {props.actions && <div class="page-actions">{props.actions}</div>}
    </div>
  );
}
