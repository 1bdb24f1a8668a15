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

    /// One request; a 503 (no queen right now: nothing was applied) is retried for up to
    /// 10 s, so an election or a membership change does not fail a put or a read.
    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, bytes::Bytes), CoordError> {
        let body = body.map(|b| b.to_string().into_bytes());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (status, bytes) = ipc::request(&self.socket, method.clone(), uri, body.clone())
                .await
                .map_err(|e| CoordError::Unreachable(e.to_string()))?;
            if status.as_u16() != 503 || std::time::Instant::now() >= deadline {
                return Ok((status.as_u16(), bytes));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
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

    /// [`Self::put`] that settles an unknown outcome (the coordinator's 503/504 when its queen
    /// changed or no quorum answered while the write was in flight) by reading the key back
    /// linearizably: our value there means the write landed; the key still as it was means it
    /// did not, and it is tried again (up to five attempts); anything else is a conflict.
    pub async fn put_settled(
        &self,
        table: &str,
        key: &str,
        value: &str,
        expect_version: Option<u64>,
    ) -> Result<u64, CoordError> {
        const ATTEMPTS: u32 = 5;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.put(table, key, value, expect_version).await {
                Err(CoordError::Failed { status, message })
                    if (status == 503 || status == 504) && attempts < ATTEMPTS =>
                {
                    tracing::debug!(table, key, status, %message, "write outcome unknown; reading back");
                }
                other => return other,
            }
            tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempts))).await;
            let Ok(now) = self.get(table, key, true).await else {
                continue;
            };
            match (now, expect_version) {
                (Some((text, version)), _) if text == value => return Ok(version),
                (None, Some(0)) | (None, None) | (Some(_), None) => continue,
                (Some((_, version)), Some(expected)) if version == expected => continue,
                _ => return Err(CoordError::Conflict),
            }
        }
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
