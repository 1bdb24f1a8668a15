//! Replicated VMs (`/api/v1/vms…`): proxied to this node's memrep (`<run>/memrep.sock`,
//! routes `/vms…`), so a VM created here runs with this node as its primary. Bodies are
//! memrep's JSON (see docs/memrep.md); the console is the serial log's tail as text.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Response};

use crate::error::ApiError;
use crate::state::GatewayState;

/// memrep's socket name.
const MEMREP: &str = "memrep";

/// A VM name reaches memrep's URL and file names: letters, digits, `-` and `_` only (the
/// same rule memrep applies when a VM is created).
fn vm_path(name: &str, suffix: &str) -> Result<String, ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(ApiError::bad_request(
            "a VM name is 1-63 letters, digits, '-' or '_'",
        ));
    }
    Ok(format!("/vms/{name}{suffix}"))
}

async fn forward(
    state: &GatewayState,
    method: Method,
    uri: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    state.local.proxy(MEMREP, method, uri, headers, body).await
}

/// `GET /api/v1/vms`: the VMs whose primary is this node, with their replication stats.
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn list(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    forward(&state, Method::GET, "/vms", &headers, Body::empty()).await
}

/// `POST /api/v1/vms`: start a VM here (JSON: name, kernel, initrd, append, mem_mib, vcpus,
/// disk (local path or `mesh:/PATH`), backups, mode, interval_ms; kernel may be left out when
/// disk is given: the VM then boots the disk through the firmware).
#[tracing::instrument(level = "debug", skip(state, headers, body))]
pub async fn create(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    forward(&state, Method::POST, "/vms", &headers, body).await
}

/// `GET /api/v1/vms/{name}`.
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn status(
    State(state): State<Arc<GatewayState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let uri = vm_path(&name, "")?;
    forward(&state, Method::GET, &uri, &headers, Body::empty()).await
}

/// `DELETE /api/v1/vms/{name}`: stop the VM and forget it (replicas on backups are kept).
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn delete(
    State(state): State<Arc<GatewayState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    // memrep's plain DELETE only stops the VM; `forget` also removes its record.
    let uri = vm_path(&name, "?forget=true")?;
    forward(&state, Method::DELETE, &uri, &headers, Body::empty()).await
}

/// `GET /api/v1/vms/{name}/console`: the tail (64 KiB) of the serial console.
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn console(
    State(state): State<Arc<GatewayState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let uri = vm_path(&name, "/console")?;
    forward(&state, Method::GET, &uri, &headers, Body::empty()).await
}

/// `POST /api/v1/vms/{name}/stop`: QEMU quits; the VM stays listed (state `stopped`, console
/// readable) until deleted.
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn stop(
    State(state): State<Arc<GatewayState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let uri = vm_path(&name, "/stop")?;
    forward(&state, Method::POST, &uri, &headers, Body::empty()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_names_are_checked_before_they_reach_memrep() {
        assert_eq!(vm_path("web-1", "/console").unwrap(), "/vms/web-1/console");
        for bad in ["", "../x", "a/b", "a b", "é", &"x".repeat(64)] {
            assert!(vm_path(bad, "").is_err(), "{bad:?}");
        }
    }
}
