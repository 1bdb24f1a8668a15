// The one place that talks HTTP to the gateway's REST API (`/api/v1/...`, same origin, the
// session cookie rides along). Errors come back as `ApiError` carrying the API's stable code,
// so pages can say what went wrong.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Called when any request answers 401: the app shows the login page. */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(f: () => void) {
  onUnauthorized = f;
}

async function errorFrom(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body?.error?.code) code = String(body.error.code);
    if (body?.error?.message) message = String(body.error.message);
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(res.status, code, message);
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? { accept: "application/json" } : { "content-type": "application/json", accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network", `The gateway did not answer (${e instanceof Error ? e.message : e})`);
  }
  if (res.status === 401 && path !== "/login") onUnauthorized();
  if (!res.ok) throw await errorFrom(res);
  const text = await res.text();
  return (text ? JSON.parse(text) : {}) as T;
}

export const get = <T>(path: string) => request<T>("GET", path);
export const post = <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {});
export const put = <T>(path: string, body?: unknown) => request<T>("PUT", path, body ?? {});
export const del = <T>(path: string) => request<T>("DELETE", path);

/** A file path as a URL path: every segment percent-encoded, slashes kept. */
export const encodePath = (p: string) =>
  p
    .replace(/^\/+/, "")
    .split("/")
    .map(encodeURIComponent)
    .join("/");

/** Uploads `file` to `/api/v1/files/{path}` with progress (XHR: fetch has no upload progress). */
export function upload(
  path: string,
  file: Blob,
  onProgress: (loaded: number, total: number) => void,
): { done: Promise<unknown>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open("PUT", `/api/v1/files/${encodePath(path)}`);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      if (xhr.status === 401) onUnauthorized();
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText || "{}"));
        } catch {
          resolve({});
        }
      } else {
        let code = `http_${xhr.status}`;
        let message = xhr.statusText || `HTTP ${xhr.status}`;
        try {
          const b = JSON.parse(xhr.responseText);
          code = b?.error?.code ?? code;
          message = b?.error?.message ?? message;
        } catch {
          /* keep status line */
        }
        reject(new ApiError(xhr.status, code, message));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The upload was interrupted"));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload cancelled"));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

export const describe = (e: unknown) =>
  e instanceof ApiError ? `${e.message} (${e.code})` : e instanceof Error ? e.message : String(e);
