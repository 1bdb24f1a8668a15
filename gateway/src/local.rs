//! The node's local services, reached over their Unix sockets: JSON calls to the coordinator
//! (directory, key space, certificates) and streaming proxies to the chunkstore.
//!
//! The gateway holds no state of its own besides its TLS key: everything it answers comes from
//! these services, so every gateway of the mesh answers the same.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::{from_service, ApiError};

/// Where the node's service sockets are.
#[derive(Debug, Clone)]
pub struct LocalServices {
    run_dir: PathBuf,
}

/// A value of the coordinator's key space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvValue {
    /// The stored text.
    pub value: String,
    /// Its version (Raft log index of the last write).
    pub version: u64,
}

impl LocalServices {
    /// The services whose sockets are `<socket_of("x")>`.
    pub fn new(coordinator_socket: &Path) -> LocalServices {
        LocalServices {
            run_dir: coordinator_socket
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        }
    }

    /// The socket of `service`.
    pub fn socket(&self, service: &str) -> PathBuf {
        self.run_dir.join(format!("{service}.sock"))
    }

    /// Every `*.sock` in the run directory except the gateway's own: the node's services.
    pub fn services(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.run_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".sock").map(str::to_string)
            })
            .filter(|n| n != "gateway")
            .collect();
        names.sort();
        names
    }

    /// One JSON call to a service; non-2xx answers become [`ApiError`]s with the same status.
    pub async fn call(
        &self,
        service: &str,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let body = body.map(|b| b.to_string().into_bytes());
        let (status, bytes) = hyphae_core::ipc::request(&self.socket(service), method, uri, body)
            .await
            .map_err(|e| ApiError::unavailable(service, e))?;
        if !status.is_success() {
            return Err(from_service(status, &bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::unavailable(service, format!("answered invalid JSON: {e}")))
    }

    /// `GET` JSON from a service.
    pub async fn get(&self, service: &str, uri: &str) -> Result<Value, ApiError> {
        self.call(service, Method::GET, uri, None).await
    }

    /// A key of the coordinator's key space, or `None`.
    pub async fn kv_get(&self, table: &str, key: &str) -> Result<Option<KvValue>, ApiError> {
        let uri = format!("/kv/{}/{}", encode(table), encode(key));
        match self.get("coordinator", &uri).await {
            Ok(v) => Ok(Some(KvValue {
                value: v["value"].as_str().unwrap_or_default().to_string(),
                version: v["version"].as_u64().unwrap_or(0),
            })),
            Err(e) if e.status == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets a key (through the queen); `expect_version` 0 = only if absent.
    pub async fn kv_put(
        &self,
        table: &str,
        key: &str,
        value: &str,
        expect_version: Option<u64>,
    ) -> Result<u64, ApiError> {
        let uri = format!("/kv/{}/{}", encode(table), encode(key));
        let body = serde_json::json!({"value": value, "expect_version": expect_version});
        let v = self
            .call("coordinator", Method::PUT, &uri, Some(&body))
            .await?;
        Ok(v["version"].as_u64().unwrap_or(0))
    }

    /// Removes a key.
    pub async fn kv_delete(&self, table: &str, key: &str) -> Result<(), ApiError> {
        let uri = format!("/kv/{}/{}", encode(table), encode(key));
        self.call("coordinator", Method::DELETE, &uri, None)
            .await
            .map(|_| ())
    }

    /// Every key of a table.
    pub async fn kv_list(&self, table: &str) -> Result<Vec<(String, KvValue)>, ApiError> {
        let v = self
            .get("coordinator", &format!("/kv/{}", encode(table)))
            .await?;
        Ok(v["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["key"].as_str().unwrap_or_default().to_string(),
                    KvValue {
                        value: e["value"].as_str().unwrap_or_default().to_string(),
                        version: e["version"].as_u64().unwrap_or(0),
                    },
                )
            })
            .collect())
    }

    /// Forwards a request to a service with its body streaming in and the answer's body
    /// streaming out (files of any size; `Range` and the other listed headers pass through).
    pub async fn proxy(
        &self,
        service: &str,
        method: Method,
        uri: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response<Body>, ApiError> {
        let socket = self.socket(service);
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|e| ApiError::unavailable(service, e))?;
        // A service may answer before reading the whole body (the chunkstore's 507): keep a
        // failed body write from hiding that answer.
        let (stream, _write_failure) = hyphae_core::early_answer_io::EarlyAnswerIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ApiError::unavailable(service, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "proxied connection ended with an error");
            }
        });
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::HOST, "localhost");
        for name in PASSED_REQUEST_HEADERS {
            if let Some(v) = headers.get(*name) {
                req = req.header(*name, v);
            }
        }
        let req = req
            .body(body)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ApiError::unavailable(service, e))?;
        let (parts, incoming) = resp.into_parts();
        if !parts.status.is_success() && !parts.status.is_redirection() {
            // Error answers are small JSON: normalise them to the API's error shape.
            let bytes = http_body_util::BodyExt::collect(incoming)
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(from_service(parts.status, &bytes));
        }
        let mut out = Response::builder().status(parts.status);
        for name in PASSED_RESPONSE_HEADERS {
            if let Some(v) = parts.headers.get(*name) {
                out = out.header(*name, v);
            }
        }
        out.body(Body::new(incoming))
            .map_err(|e| ApiError::unavailable(service, e))
    }
}

/// Request headers a proxied call keeps.
const PASSED_REQUEST_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "range",
    "if-none-match",
    "if-match",
    "if-range",
    "accept",
];

/// Response headers a proxied call keeps.
const PASSED_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
    "location",
];

/// Percent-encodes one path segment (keys may hold any byte but NUL).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a path that keeps its `/` separators.
pub fn encode_path(path: &str) -> String {
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}
