//! Our coordinator as a [`KvSystem`]: three `hyphae node` processes (three princes) in network
//! namespaces, written through each node's local API (`PUT /kv/bench/KEY` on coordinator.sock),
//! which forwards to the queen like any client on that node would.

use std::time::Duration;

use anyhow::Result;
use hyper::Method;
use hyphae_harness::{coordinator::form_mesh, Cluster};
use serde_json::{json, Value};

use crate::coord_system::{KvSystem, Target, WriteRequest};

/// A formed 3-node mesh.
pub struct HyphaeMesh {
    cluster: Cluster,
    ids: Vec<String>,
}

impl HyphaeMesh {
    /// Forms the mesh on the (not yet started) cluster `cluster`.
    pub fn form(cluster: Cluster) -> Result<HyphaeMesh> {
        form_mesh(&cluster, cluster.len() - 1)?;
        let ids = cluster
            .nodes()
            .iter()
            .map(|n| {
                Ok(n.status_json()?["node_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string())
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(HyphaeMesh { cluster, ids })
    }

    fn socket(&self, member: usize) -> std::path::PathBuf {
        self.cluster[member]
            .state_dir()
            .join("run/coordinator.sock")
    }
}

impl KvSystem for HyphaeMesh {
    fn name(&self) -> &'static str {
        "hyphae"
    }

    fn members(&self) -> usize {
        self.cluster.len()
    }

    fn target(&self, member: usize) -> Target {
        Target::Unix(self.socket(member))
    }

    fn put_request(&self, key: &str, value: &str) -> WriteRequest {
        WriteRequest {
            method: Method::PUT,
            uri: format!("/kv/bench/{key}"),
            body: json!({ "value": value }).to_string().into_bytes(),
        }
    }

    async fn leader(&self) -> Result<Option<usize>> {
        let mut queen: Option<String> = None;
        for i in 0..self.members() {
            if !self.cluster[i].is_running() {
                continue;
            }
            let Ok(mut conn) = self.target(i).connect().await else {
                return Ok(None);
            };
            let Ok((_, body)) = conn.send(Method::GET, "/status", b"").await else {
                return Ok(None);
            };
            let status: Value = serde_json::from_slice(&body).unwrap_or_default();
            let Some(q) = status["queen"].as_str() else {
                return Ok(None);
            };
            if queen.get_or_insert_with(|| q.to_string()) != q {
                return Ok(None);
            }
        }
        Ok(queen.and_then(|q| self.ids.iter().position(|id| *id == q)))
    }

    async fn caught_up(&self) -> Result<bool> {
        let mut applied = Vec::new();
        for i in 0..self.members() {
            let Ok(mut conn) = self.target(i).connect().await else {
                return Ok(false);
            };
            let Ok((_, body)) = conn.send(Method::GET, "/status", b"").await else {
                return Ok(false);
            };
            let status: Value = serde_json::from_slice(&body).unwrap_or_default();
            applied.push(status["commit_index"].as_u64());
        }
        Ok(applied.iter().all(|a| a.is_some() && *a == applied[0]))
    }

    fn kill(&mut self, member: usize) -> Result<()> {
        self.cluster[member].kill()?;
        Ok(())
    }

    fn restart(&mut self, member: usize) -> Result<()> {
        self.cluster[member].restart()?;
        self.cluster[member].wait_ready(Duration::from_secs(60))?;
        Ok(())
    }
}
