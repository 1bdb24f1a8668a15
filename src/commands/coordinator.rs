//! The coordinator's CLI verbs (`nodes`, `admit`, `revoke`, `token`, `leave`, `kv`) talk to
//! the local coordinator over `coordinator.sock`; this file holds what they share.

use std::path::PathBuf;

use anyhow::{bail, Context};
use hyphae_core::paths::NodePaths;
use hyphae_core::transport::ServiceSpec;
use serde_json::Value;

/// The coordinator's socket.
pub fn socket(paths: &NodePaths) -> PathBuf {
    paths.socket(ServiceSpec::COORDINATOR.name)
}

/// One request to the local coordinator; fails with the coordinator's own error message.
pub fn request(
    paths: &NodePaths,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let socket = socket(paths);
    let method: hyphae_core::ipc::Method = method.parse().context("HTTP method")?;
    let body = body.map(|b| serde_json::to_vec(&b)).transpose()?;
    let (status, bytes) =
        super::block_on(hyphae_core::ipc::request(&socket, method, uri, body))?
            .with_context(|| format!("is the node running? (no answer on {})", socket.display()))?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = value["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        bail!("{message}");
    }
    Ok(value)
}
