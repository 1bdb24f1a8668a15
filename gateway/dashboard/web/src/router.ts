// A tiny history-API router: the gateway answers every non-API path with index.html, so each
// page has a real URL that survives reloads and can be bookmarked.

import { useEffect, useState } from "preact/hooks";

const listeners = new Set<() => void>();

export function navigate(path: string) {
  if (path === location.pathname) return;
  history.pushState(null, "", path);
  listeners.forEach((l) => l());
}

window.addEventListener("popstate", () => listeners.forEach((l) => l()));

export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const l = () => setPath(location.pathname);
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  return path;
}

/** Click handler for in-app links: no full page load. */
export function linkClick(e: MouseEvent) {
  const a = (e.currentTarget as HTMLAnchorElement | null)?.getAttribute("href");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a);
}
