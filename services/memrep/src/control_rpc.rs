//! memrep's control methods between nodes (udp/7444, next to `memrep.epoch`):
//! `memrep.replica_state` (what a backup has committed of a VM: the failover actor asks every
//! live backup before it picks one) and `memrep.takeover` (resume the replica held there as
//! the new primary under a fenced generation: automatic failover, and phase 2 of a
//! migration).

use hyphae_core::rpc::Method;
use serde::{Deserialize, Serialize};

use crate::replica_store::ReplicaMeta;
use crate::tables::VmRecord;

/// `memrep.replica_state`: a backup's committed state of one VM.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaState;

/// Which VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStateRequest {
    /// The VM.
    pub vm: String,
}

impl Method for ReplicaState {
    const NAME: &'static str = "memrep.replica_state";
    type Request = ReplicaStateRequest;
    /// `None`: no committed replica of that VM here.
    type Response = Option<ReplicaMeta>;
}

/// `memrep.takeover`: resume the local replica as the VM's new primary.
#[derive(Debug, Clone, Copy)]
pub struct Takeover;

/// What the new primary is to run and record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TakeoverRequest {
    /// The VM record as the caller read it (spec, mode, replicas), for the new primary to
    /// rewrite with itself as primary.
    pub record: VmRecord,
    /// The version of that record: the new primary's write is conditional on it, so two
    /// takeovers of the same VM cannot both succeed.
    pub record_version: u64,
    /// The lowest generation to resume under (the fence the caller computed).
    pub generation: u64,
    /// The new primary's backups.
    pub backups: Vec<hyphae_core::NodeId>,
    /// Why (written to the record's note).
    pub reason: String,
    /// For automatic failovers: when the primary was seen gone (Unix ms).
    #[serde(default)]
    pub detected_unix_ms: Option<u64>,
    /// For migrations: the epoch the new primary's replica must have committed (in the
    /// record's generation) before it resumes; an older replica refuses.
    #[serde(default)]
    pub require_epoch: Option<u64>,
}

/// What the new primary answers once its guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverAnswer {
    /// The generation it now writes under.
    pub generation: u64,
    /// The committed epoch it resumed from.
    pub resumed_from_epoch: u64,
}

impl Method for Takeover {
    const NAME: &'static str = "memrep.takeover";
    type Request = TakeoverRequest;
    type Response = TakeoverAnswer;
}
