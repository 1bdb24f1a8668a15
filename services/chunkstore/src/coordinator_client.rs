//! The chunkstore's view of the coordinator: its local socket's key space (`/kv/...`) and
//! node directory (`/nodes`). Services never hold in-process handles to the coordinator.

use std::path::PathBuf;

use hyphae_core::ipc::{self, Method};
use hyphae_core::NodeId;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::json;

/// Everything but unreserved characters is escaped, `/` included, so a file path is one URL
/// segment.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why the coordinator could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// The socket could not be reached or the exchange failed.
    #[error("coordinator: {0}")]
    Unreachable(String),
    /// A conditional write lost a race (someone else changed the key).
    #[error("coordinator: version conflict")]
    Conflict,
    /// The coordinator refused or failed.
    #[error("coordinator answered {status}: {message}")]
    Failed { status: u16, message: String },
}

/// One key of a table.
#[derive(Debug, Clone, Deserialize)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// Its value (text; the chunkstore stores JSON).
    pub value: String,
    /// The version (log index) of its last write.
    pub version: u64,
}

/// A node as the directory lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct DirectoryNode {
    /// Its id.
    pub id: NodeId,
    /// Its addresses (IPs).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// `up`, `suspect`, `down`, ...
    pub status: String,
}

/// A client of one node's coordinator socket.
#[derive(Debug, Clone)]
pub struct CoordinatorClient {
    socket: PathBuf,
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, KEY).to_string()
}

impl CoordinatorClient {
    /// Talks to the coordinator at `socket` (`<run>/coordinator.sock`).
    pub fn new(socket: PathBuf) -> CoordinatorClient {
        CoordinatorClient { socket }
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, bytes::Bytes), CoordError> {
        let body = body.map(|b| b.to_string().into_bytes());
        let (status, bytes) = ipc::request(&self.socket, method, uri, body)
            .await
            .map_err(|e| CoordError::Unreachable(e.to_string()))?;
        Ok((status.as_u16(), bytes))
    }

    fn failed(status: u16, body: &[u8]) -> CoordError {
        let text = String::from_utf8_lossy(body);
        if status == 409 && text.contains("version conflict") {
            return CoordError::Conflict;
        }
        CoordError::Failed {
            status,
            message: text.into_owned(),
        }
    }

    /// A key's value and version; `None` when absent. `linearizable` asks the queen.
    pub async fn get(
        &self,
        table: &str,
        key: &str,
        linearizable: bool,
    ) -> Result<Option<(String, u64)>, CoordError> {
        let uri = format!(
            "/kv/{}/{}{}",
            enc(table),
            enc(key),
            if linearizable {
                "?linearizable=true"
            } else {
                ""
            }
        );
        let (status, body) = self.send(Method::GET, &uri, None).await?;
        match status {
            200 => {
                #[derive(Deserialize)]
                struct V {
                    value: String,
                    version: u64,
                }
                let v: V = serde_json::from_slice(&body)
                    .map_err(|e| CoordError::Unreachable(format!("bad answer: {e}")))?;
                Ok(Some((v.value, v.version)))
            }
            404 => Ok(None),
            s => Err(Self::failed(s, &body)),
        }
    }

    /// Writes a key; with `expect_version` only if it is still at that version (0 = absent).
    pub async fn put(
        &self,
        table: &str,
        key: &str,
        value: &str,
        expect_version: Option<u64>,
    ) -> Result<u64, CoordError> {
        let uri = format!("/kv/{}/{}", enc(table), enc(key));
        let body = json!({ "value": value, "expect_version": expect_version });
        let (status, body) = self.send(Method::PUT, &uri, Some(body)).await?;
        if status != 200 {
            return Err(Self::failed(status, &body));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| CoordError::Unreachable(format!("bad answer: {e}")))?;
        Ok(v["version"].as_u64().unwrap_or(0))
    }

    /// Removes a key (no error when absent).
    pub async fn delete(&self, table: &str, key: &str) -> Result<(), CoordError> {
        let uri = format!("/kv/{}/{}", enc(table), enc(key));
        let (status, body) = self.send(Method::DELETE, &uri, None).await?;
        if status != 200 {
            return Err(Self::failed(status, &body));
        }
        Ok(())
    }

    /// Every key of `table` starting with `prefix`, in key order (this node's applied state).
    pub async fn scan(&self, table: &str, prefix: &str) -> Result<Vec<KvEntry>, CoordError> {
        let uri = format!("/kv/{}?prefix={}", enc(table), enc(prefix));
        let (status, body) = self.send(Method::GET, &uri, None).await?;
        if status != 200 {
            return Err(Self::failed(status, &body));
        }
        #[derive(Deserialize)]
        struct Scan {
            entries: Vec<KvEntry>,
        }
        let s: Scan = serde_json::from_slice(&body)
            .map_err(|e| CoordError::Unreachable(format!("bad answer: {e}")))?;
        Ok(s.entries)
    }

    /// The node directory.
    pub async fn nodes(&self) -> Result<Vec<DirectoryNode>, CoordError> {
        let (status, body) = self.send(Method::GET, "/nodes", None).await?;
        if status != 200 {
            return Err(Self::failed(status, &body));
        }
        #[derive(Deserialize)]
        struct Nodes {
            nodes: Vec<DirectoryNode>,
        }
        let n: Nodes = serde_json::from_slice(&body)
            .map_err(|e| CoordError::Unreachable(format!("bad answer: {e}")))?;
        Ok(n.nodes)
    }
}
