//! The VM and replica tables in the coordinator's replicated key space, so that every node
//! knows where each VM runs and how fresh its replicas are (and any node can answer
//! `hyphae vm list/status`):
//!
//! - `memrep.vms/<vm>`: a [`VmRecord`] (spec, primary, backups, generation, mode, state),
//!   written by the node that starts the primary (create, resume, failover, migration) and on
//!   stop/delete. Writes that take a VM over are conditional on the version read (compare and
//!   set), so two nodes can never both believe they were the one that took it over.
//! - `memrep.replicas/<vm>/<node>`: a [`ReplicaRow`], what a backup has committed (generation,
//!   epoch, time), published by that backup about once a second while it changes.

use std::path::PathBuf;

use hyphae_chunkstore::coordinator_client::{CoordError, CoordinatorClient};
use hyphae_core::NodeId;
use serde::{Deserialize, Serialize};

use crate::epoch::scheduler::Mode;
use crate::qemu::VmSpec;

/// Table of VM records, keyed by VM name.
pub const VMS: &str = "memrep.vms";
/// Table of replica rows, keyed `<vm>/<node id>`.
pub const REPLICAS: &str = "memrep.replicas";

/// Where a VM is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmState {
    /// A primary is taking it over (resume, failover, migration) and is starting QEMU.
    Starting,
    /// Its primary runs it; failover watches it.
    Running,
    /// Stopped by a user; replicas are kept, nothing fails over.
    Stopped,
    /// Its primary died and no live backup held a replica to resume from.
    Lost,
    /// Its last primary failed to start it (see `note`).
    Failed,
}

/// One VM as the mesh knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    /// What to run (kernel, initrd, memory, vCPUs).
    pub spec: VmSpec,
    /// Emergency policy.
    pub mode: Mode,
    /// Base epoch interval asked for, ms.
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// How many backups the VM should have.
    pub replicas: usize,
    /// The node running it.
    pub primary: NodeId,
    /// The nodes keeping its replicas.
    pub backups: Vec<NodeId>,
    /// The generation the primary writes under (raised by every takeover: the fence).
    pub generation: u64,
    /// Where it is in its life.
    pub state: VmState,
    /// When this record was written (Unix ms).
    pub updated_unix_ms: u64,
    /// The last takeover or failure, in words.
    #[serde(default)]
    pub note: Option<String>,
    /// Timings of the last automatic failover.
    #[serde(default)]
    pub failover: Option<FailoverTiming>,
}

/// How long the last automatic failover took.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FailoverTiming {
    /// When the failover actor saw the primary no longer up (Unix ms).
    pub detected_unix_ms: u64,
    /// When the new primary's guest was running again (Unix ms).
    pub running_unix_ms: u64,
    /// From detection to the guest running, ms.
    pub detection_to_running_ms: u64,
}

/// What one backup has committed of one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRow {
    /// Generation of the committed epoch (or of the fence).
    pub generation: u64,
    /// The committed epoch.
    pub epoch: u64,
    /// When the backup published it (Unix ms).
    pub unix_ms: u64,
}

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a table could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The coordinator did not answer or refused.
    #[error(transparent)]
    Coordinator(#[from] CoordError),
    /// The directory could not be read.
    #[error("directory: {0}")]
    Directory(String),
    /// A stored value that does not decode.
    #[error("{table}/{key}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A node as the directory (`GET /nodes`) lists it: the fields memrep needs.
#[derive(Debug, Clone, Deserialize)]
pub struct DirectoryEntry {
    /// Its id.
    pub id: NodeId,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its addresses (IPs).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// `up`, `suspect`, `down`, ...
    pub status: String,
}

/// The memrep tables, through this node's coordinator socket.
#[derive(Debug, Clone)]
pub struct Tables {
    coord: CoordinatorClient,
    socket: PathBuf,
}

impl Tables {
    /// Tables behind the coordinator socket `socket`.
    pub fn new(socket: PathBuf) -> Tables {
        Tables {
            coord: CoordinatorClient::new(socket.clone()),
            socket,
        }
    }

    /// The node directory.
    pub async fn directory(&self) -> Result<Vec<DirectoryEntry>, TableError> {
        #[derive(Deserialize)]
        struct Nodes {
            nodes: Vec<DirectoryEntry>,
        }
        let v = hyphae_core::ipc::get_json(&self.socket, "/nodes")
            .await
            .map_err(|e| TableError::Directory(e.to_string()))?;
        let n: Nodes =
            serde_json::from_value(v).map_err(|e| TableError::Directory(e.to_string()))?;
        Ok(n.nodes)
    }

    /// One VM's record and its version; `None` when the mesh does not know the VM.
    pub async fn vm(&self, name: &str) -> Result<Option<(VmRecord, u64)>, TableError> {
        match self.coord.get(VMS, name, false).await? {
            Some((text, version)) => Ok(Some((decode(VMS, name, &text)?, version))),
            None => Ok(None),
        }
    }

    /// Every VM record with its version, by name. Records that do not decode are skipped
    /// (logged), so one bad record does not hide the others.
    pub async fn vms(&self) -> Result<Vec<(VmRecord, u64)>, TableError> {
        let mut out = Vec::new();
        for e in self.coord.scan(VMS, "").await? {
            match decode::<VmRecord>(VMS, &e.key, &e.value) {
                Ok(r) => out.push((r, e.version)),
                Err(err) => tracing::warn!(error = %err, "skipping a VM record"),
            }
        }
        Ok(out)
    }

    /// Writes a VM record; with `expect_version` only if the record is still at that version
    /// (0: only if absent). Returns the new version. A write whose outcome the coordinator
    /// could not tell (the queen changed while it was in flight) is settled by reading the
    /// record back: ours is there (done), the old version is still there (written again), or
    /// someone else's (a conflict).
    pub async fn put_vm(
        &self,
        record: &VmRecord,
        expect_version: Option<u64>,
    ) -> Result<u64, TableError> {
        let name = &record.spec.name;
        let text = serde_json::to_string(record).map_err(|e| TableError::Corrupt {
            table: VMS,
            key: name.clone(),
            message: e.to_string(),
        })?;
        Ok(self
            .coord
            .put_settled(VMS, name, &text, expect_version)
            .await?)
    }

    /// Forgets a VM: its record and every replica row.
    pub async fn delete_vm(&self, name: &str) -> Result<(), TableError> {
        for e in self.coord.scan(REPLICAS, &format!("{name}/")).await? {
            self.coord.delete(REPLICAS, &e.key).await?;
        }
        self.coord.delete(VMS, name).await?;
        Ok(())
    }

    /// The replica rows of one VM, by node.
    pub async fn replicas(&self, vm: &str) -> Result<Vec<(NodeId, ReplicaRow)>, TableError> {
        let mut out = Vec::new();
        for e in self.coord.scan(REPLICAS, &format!("{vm}/")).await? {
            let Some(node) = e
                .key
                .strip_prefix(&format!("{vm}/"))
                .and_then(|n| n.parse::<NodeId>().ok())
            else {
                continue;
            };
            out.push((node, decode(REPLICAS, &e.key, &e.value)?));
        }
        Ok(out)
    }

    /// Publishes what this node's replica of `vm` has committed.
    pub async fn put_replica(
        &self,
        vm: &str,
        node: NodeId,
        row: &ReplicaRow,
    ) -> Result<(), TableError> {
        let key = format!("{vm}/{node}");
        let text = serde_json::to_string(row).map_err(|e| TableError::Corrupt {
            table: REPLICAS,
            key: key.clone(),
            message: e.to_string(),
        })?;
        self.coord.put(REPLICAS, &key, &text, None).await?;
        Ok(())
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: &str,
    text: &str,
) -> Result<T, TableError> {
    serde_json::from_str(text).map_err(|e| TableError::Corrupt {
        table,
        key: key.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_json() {
        let r = VmRecord {
            spec: VmSpec {
                name: "web".into(),
                kernel: Some("/k".into()),
                initrd: None,
                append: "console=ttyS0".into(),
                mem_mib: 256,
                vcpus: 1,
                disk: None,
            },
            mode: Mode::BestEffort,
            interval_ms: Some(100),
            replicas: 2,
            primary: NodeId::from_raw([1; 10]),
            backups: vec![NodeId::from_raw([2; 10])],
            generation: 3,
            state: VmState::Running,
            updated_unix_ms: 5,
            note: None,
            failover: None,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"state\":\"running\""), "{text}");
        let back: VmRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn a_corrupt_value_is_a_clear_error() {
        let e = decode::<ReplicaRow>(REPLICAS, "vm/x", "{nope").unwrap_err();
        assert!(e.to_string().contains("memrep.replicas/vm/x"), "{e}");
    }
}
