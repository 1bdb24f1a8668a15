//! The Raft type configuration: what openraft replicates and how members are addressed.
//!
//! The Raft node id is the mesh's own [`NodeId`] (it satisfies openraft's bounds), so a Raft
//! membership names nodes exactly as certificates do and no mapping table can drift.

use std::io::Cursor;

use hyphae_core::NodeId;
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult};

openraft::declare_raft_types!(
    /// The coordinator's Raft: [`Command`]s in, [`CommandResult`]s out, snapshots in memory.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = RaftPeer,
        SnapshotData = Cursor<Vec<u8>>,
);

/// How to reach a Raft member: its coordinator endpoint (mutual TLS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftPeer {
    /// `IP:PORT` of the member's coordinator endpoint.
    pub addr: String,
}

impl std::fmt::Display for RaftPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.addr)
    }
}

/// The openraft handle of this crate's configuration.
pub type Raft = openraft::Raft<TypeConfig>;
