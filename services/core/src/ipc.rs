//! The local API: HTTP/1.1 on a Unix socket, one per service (`<run>/<service>.sock`).
//!
//! The gateway and the CLI talk to a node's services this way; so can an operator:
//! `curl --unix-socket /run/hyphae/node.sock http://x/status`. Filesystem permissions on the
//! socket are the access control (root and the `hyphae` group), so no TLS is needed here.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::metrics::MetricsRegistry;

/// HTTP methods for [`request`], re-exported so callers need not depend on axum.
pub use axum::http::Method;

/// Why the local API could not be served or reached.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// Creating, binding or connecting to the socket failed.
    #[error("{path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another live process already serves this socket.
    #[error("{0} is already served by a running process (is this node already running?)")]
    InUse(PathBuf),
    /// The HTTP exchange failed.
    #[error("{path}: HTTP: {message}")]
    Http { path: PathBuf, message: String },
}

/// The routes every service answers: `/status` (JSON from `status`) and `/metrics`.
pub fn base_router<F>(status: F, metrics: MetricsRegistry) -> axum::Router
where
    F: Fn() -> serde_json::Value + Clone + Send + Sync + 'static,
{
    axum::Router::new()
        .route("/status", get(move || async move { axum::Json(status()) }))
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
                    .into_response()
            }),
        )
}

/// Binds the socket (replacing a stale one left by a crash) and serves `router` on it until
/// `shutdown` fires. Returns once bound, with the serving task running.
pub async fn serve(
    path: &Path,
    router: axum::Router,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, IpcError> {
    let err = |source| IpcError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(IpcError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    let owned = path.to_path_buf();
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(socket = %owned.display(), error = %e, "local API stopped");
        }
        let _ = std::fs::remove_file(&owned);
    }))
}

/// One local API request: method, path and optional JSON body; returns status and body.
pub async fn request(
    socket: &Path,
    method: axum::http::Method,
    uri: &str,
    body: Option<Vec<u8>>,
) -> Result<(axum::http::StatusCode, Bytes), IpcError> {
    let http = |message: String| IpcError::Http {
        path: socket.to_path_buf(),
        message,
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| IpcError::Socket {
            path: socket.to_path_buf(),
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header(axum::http::header::HOST, "localhost");
    if body.is_some() {
        req = req.header(axum::http::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| http(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| http(e.to_string()))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| http(e.to_string()))?
        .to_bytes();
    Ok((status, bytes))
}

/// `GET` a JSON document from a local socket.
pub async fn get_json(socket: &Path, uri: &str) -> Result<serde_json::Value, IpcError> {
    let (status, body) = request(socket, axum::http::Method::GET, uri, None).await?;
    if !status.is_success() {
        return Err(IpcError::Http {
            path: socket.to_path_buf(),
            message: format!("{status}: {}", String::from_utf8_lossy(&body)),
        });
    }
    serde_json::from_slice(&body).map_err(|e| IpcError::Http {
        path: socket.to_path_buf(),
        message: format!("invalid JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_and_metrics_over_uds() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("run/test.sock");
        let metrics = MetricsRegistry::new();
        let shutdown = CancellationToken::new();
        let router = base_router(|| serde_json::json!({"ready": true}), metrics);
        let task = serve(&sock, router.clone(), shutdown.clone())
            .await
            .unwrap();
        let status = get_json(&sock, "/status").await.unwrap();
        assert_eq!(status["ready"], true);
        let (code, body) = request(&sock, axum::http::Method::GET, "/metrics", None)
            .await
            .unwrap();
        assert!(code.is_success());
        assert!(String::from_utf8_lossy(&body).contains("# EOF"));
        // A second server on the same live socket is refused.
        assert!(matches!(
            serve(&sock, router, shutdown.clone()).await,
            Err(IpcError::InUse(_))
        ));
        shutdown.cancel();
        task.await.unwrap();
        assert!(!sock.exists());
    }
}
