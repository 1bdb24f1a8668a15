//! Debian's etcd (3.4) as a [`KvSystem`]: three members, one per network namespace of the
//! same harness cluster our nodes use, written through etcd's JSON gateway (`/v3/kv/put`) with
//! the same HTTP client. etcd fsyncs its WAL before acknowledging, as our coordinator does.

use std::fs::File;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use data_encoding::BASE64;
use hyper::Method;
use hyphae_harness::Cluster;
use serde_json::{json, Value};

use crate::coord_system::{KvSystem, Target, WriteRequest};

const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;

/// A running 3-member etcd cluster inside the harness cluster's namespaces.
pub struct EtcdCluster<'a> {
    cluster: &'a Cluster,
    children: Vec<Option<Child>>,
}

impl<'a> EtcdCluster<'a> {
    /// Starts one etcd member in each namespace of `cluster`.
    pub fn start(cluster: &'a Cluster) -> Result<EtcdCluster<'a>> {
        if Command::new("etcd").arg("--version").output().is_err() {
            bail!("etcd is not installed (scripts/bench.sh installs Debian's etcd-server)");
        }
        let mut etcd = EtcdCluster {
            cluster,
            children: (0..cluster.len()).map(|_| None).collect(),
        };
        for i in 0..cluster.len() {
            etcd.spawn(i)?;
        }
        Ok(etcd)
    }

    fn spawn(&mut self, member: usize) -> Result<()> {
        let c = self.cluster;
        let initial: Vec<String> = (0..c.len())
            .map(|i| format!("e{i}=http://{}:{PEER_PORT}", c[i].ip()))
            .collect();
        let node = &c[member];
        let ip = node.ip();
        let dir = node.state_dir().join("etcd");
        let log = File::create(node.state_dir().join("etcd.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", node.netns(), "etcd"])
            .arg(format!("--name=e{member}"))
            .arg(format!("--data-dir={}", dir.display()))
            .arg(format!("--listen-peer-urls=http://{ip}:{PEER_PORT}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://{ip}:{PEER_PORT}"
            ))
            .arg(format!("--listen-client-urls=http://{ip}:{CLIENT_PORT}"))
            .arg(format!("--advertise-client-urls=http://{ip}:{CLIENT_PORT}"))
            .arg(format!("--initial-cluster={}", initial.join(",")))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=hyphae-bench")
            .arg("--logger=zap")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting etcd")?;
        self.children[member] = Some(child);
        Ok(())
    }

    fn addr(&self, member: usize) -> SocketAddr {
        SocketAddr::new(self.cluster[member].ip().into(), CLIENT_PORT)
    }
}

impl Drop for EtcdCluster<'_> {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl KvSystem for EtcdCluster<'_> {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn members(&self) -> usize {
        self.children.len()
    }

    fn target(&self, member: usize) -> Target {
        Target::Tcp(self.addr(member))
    }

    fn put_request(&self, key: &str, value: &str) -> WriteRequest {
        let body = json!({
            "key": BASE64.encode(key.as_bytes()),
            "value": BASE64.encode(value.as_bytes()),
        });
        WriteRequest {
            method: Method::POST,
            uri: "/v3/kv/put".to_string(),
            body: body.to_string().into_bytes(),
        }
    }

    async fn leader(&self) -> Result<Option<usize>> {
        let mut leader: Option<Value> = None;
        let mut ids = Vec::new();
        for i in 0..self.members() {
            if self.children[i].is_none() {
                ids.push(Value::Null);
                continue;
            }
            let Ok(mut conn) = self.target(i).connect().await else {
                return Ok(None);
            };
            let Ok((status, body)) = conn
                .send(Method::POST, "/v3/maintenance/status", b"{}")
                .await
            else {
                return Ok(None);
            };
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            if !status.is_success() || v["leader"].is_null() {
                return Ok(None);
            }
            if leader.get_or_insert_with(|| v["leader"].clone()) != &v["leader"] {
                return Ok(None);
            }
            ids.push(v["header"]["member_id"].clone());
        }
        Ok(leader.and_then(|l| ids.iter().position(|id| *id == l)))
    }

    async fn caught_up(&self) -> Result<bool> {
        let mut applied = Vec::new();
        for i in 0..self.members() {
            let Ok(mut conn) = self.target(i).connect().await else {
                return Ok(false);
            };
            let Ok((_, body)) = conn
                .send(Method::POST, "/v3/maintenance/status", b"{}")
                .await
            else {
                return Ok(false);
            };
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            // uint64 fields come as strings from etcd's JSON gateway.
            applied.push(v["raftAppliedIndex"].clone());
        }
        Ok(applied.iter().all(|a| !a.is_null() && *a == applied[0]))
    }

    fn kill(&mut self, member: usize) -> Result<()> {
        if let Some(mut child) = self.children[member].take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    fn restart(&mut self, member: usize) -> Result<()> {
        // On an existing data dir etcd ignores the --initial-* flags and rejoins.
        self.spawn(member)
    }
}
