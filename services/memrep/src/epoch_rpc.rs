//! Epochs over QUIC: the `memrep.epoch` streaming method. The primary opens one call per epoch
//! per backup, sends the encoded parts as items and ends its half; the backup assembles them,
//! applies the complete epoch to its replica and answers one [`EpochAck`] item — or an error,
//! in which case its replica is unchanged. Calls to all backups run in parallel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyphae_core::identity::NodeId;
use hyphae_core::rpc::{self, ErrorCode, Limits, Method, Router, RpcChannel, RpcError, RpcFault};
use hyphae_core::transport::{PeerConnection, ServiceSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::epoch::assembler::Assembler;
use crate::epoch::wire::EpochAck;
use crate::qemu::valid_name;
use crate::replica_store::{ReplicaMeta, ReplicaStore};

/// The memrep service's network identity (udp/7444).
pub const MEMREP: ServiceSpec = ServiceSpec::MEMREP;

/// `memrep.epoch`: stream one epoch to a backup.
#[derive(Debug, Clone, Copy)]
pub struct SendEpoch;

/// The request opening an epoch stream: which VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRequest {
    /// The VM the epoch belongs to.
    pub vm: String,
}

impl Method for SendEpoch {
    const NAME: &'static str = "memrep.epoch";
    type Request = EpochRequest;
    type Response = EpochAck;
}

/// One encoded epoch part as an RPC item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartItem(#[serde(with = "bytes_field")] pub Vec<u8>);

mod bytes_field {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(V)
    }
}

/// The replicas this node holds, by VM.
#[derive(Debug)]
pub struct Replicas {
    state_dir: PathBuf,
    shm_dir: PathBuf,
    open: Mutex<HashMap<String, Arc<Mutex<ReplicaStore>>>>,
}

impl Replicas {
    /// Replicas with state under `state_dir` and RAM files under `shm_dir`.
    pub fn new(state_dir: &Path, shm_dir: &Path) -> Replicas {
        Replicas {
            state_dir: state_dir.to_path_buf(),
            shm_dir: shm_dir.to_path_buf(),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The replica of `vm`, opened (journal replayed) on first use.
    pub async fn get(&self, vm: &str) -> Result<Arc<Mutex<ReplicaStore>>, RpcFault> {
        if !valid_name(vm) {
            return Err(RpcFault::new(ErrorCode::BadRequest, "invalid VM name"));
        }
        let mut open = self.open.lock().await;
        if let Some(s) = open.get(vm) {
            return Ok(s.clone());
        }
        let dir = self.state_dir.join(vm);
        let ram = self.shm_dir.join(format!("hyphae-memrep-{vm}-replica.ram"));
        let vm_name = vm.to_string();
        let shm = self.shm_dir.clone();
        let store = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&shm).map_err(|e| crate::replica_store::ReplicaError::Io {
                path: shm.display().to_string(),
                source: e,
            })?;
            ReplicaStore::open(&vm_name, &dir, &ram)
        })
        .await
        .map_err(|e| RpcFault::new(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| RpcFault::new(ErrorCode::Internal, e.to_string()))?;
        let store = Arc::new(Mutex::new(store));
        open.insert(vm.to_string(), store.clone());
        Ok(store)
    }

    /// What each open replica has committed.
    pub async fn list(&self) -> Vec<(String, Option<ReplicaMeta>)> {
        let open = self.open.lock().await;
        let mut out = Vec::new();
        for (vm, s) in open.iter() {
            out.push((vm.clone(), s.lock().await.meta()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Receives one epoch stream into `vm`'s replica.
    #[tracing::instrument(level = "debug", skip(self, ch))]
    pub async fn receive(&self, vm: &str, ch: &mut RpcChannel) -> Result<EpochAck, RpcFault> {
        let store = self.get(vm).await?;
        // The replica is held only to read where it stands and, at the end, to commit: a
        // stream lasts as long as its sender, and one from a primary killed mid-epoch until
        // its connection times out. Meanwhile the replica must answer what it committed (the
        // failover actor asks every backup) and take a fence (a takeover here). An epoch
        // checked against a state that moved on meanwhile is refused at commit.
        let start = store.lock().await.committed();
        let mut asm = Assembler::new(vm, start);
        let complete = loop {
            let item: Option<PartItem> = ch
                .recv_item()
                .await
                .map_err(|e| RpcFault::new(ErrorCode::BadRequest, e.to_string()))?;
            let Some(PartItem(bytes)) = item else {
                return Err(RpcFault::new(
                    ErrorCode::BadRequest,
                    "epoch stream ended early",
                ));
            };
            match asm.push(&bytes) {
                Ok(Some(e)) => break e,
                Ok(None) => {}
                Err(e) => return Err(RpcFault::new(ErrorCode::BadRequest, e.to_string())),
            }
        };
        // One epoch at a time per replica: epochs apply in order.
        let mut guard = store.clone().lock_owned().await;
        let meta = tokio::task::spawn_blocking(move || guard.commit_onto(start, complete))
            .await
            .map_err(|e| RpcFault::new(ErrorCode::Internal, e.to_string()))?
            .map_err(|e| RpcFault::new(ErrorCode::Internal, e.to_string()))?;
        Ok(EpochAck {
            generation: meta.generation,
            epoch: meta.epoch,
        })
    }
}

/// The backup's RPC router: `memrep.epoch` into `replicas`.
pub fn router(node: NodeId, replicas: Arc<Replicas>) -> Router {
    Router::new(MEMREP, node).streaming::<SendEpoch, _>(move |_peer, req, ch| {
        let replicas = replicas.clone();
        Box::pin(async move {
            match replicas.receive(&req.vm, ch).await {
                Ok(ack) => {
                    ch.send_item(&ack)
                        .await
                        .map_err(|e| RpcFault::new(ErrorCode::Internal, e.to_string()))?;
                    ch.end()
                        .await
                        .map_err(|e| RpcFault::new(ErrorCode::Internal, e.to_string()))
                }
                Err(fault) => Err(fault),
            }
        })
    })
}

/// Sends one epoch's parts to a backup and waits for its acknowledgement.
#[tracing::instrument(level = "debug", skip(conn, parts, limits))]
pub async fn send_epoch(
    conn: &PeerConnection,
    vm: &str,
    parts: &[Vec<u8>],
    limits: &Limits,
) -> Result<EpochAck, RpcError> {
    let mut ch = rpc::open::<SendEpoch>(conn, &EpochRequest { vm: vm.into() }, limits).await?;
    for p in parts {
        ch.send_item(&PartItem(p.clone())).await?;
    }
    ch.end().await?;
    match ch.recv_item::<EpochAck>().await? {
        Some(ack) => Ok(ack),
        None => Err(RpcError::Protocol(
            "backup ended without an acknowledgement".into(),
        )),
    }
}
