//! The records of the coordinator's tables: nodes, join tokens, revocations, events.
//!
//! Every table lives in the generic versioned key space ([`crate::command::Kv`]) as JSON, so
//! an operator can read them with `hyphae nodes --json` and later issues add tables the same way.

use hyphae_core::NodeId;
use serde::{Deserialize, Serialize};

/// Table names of the coordinator's own tables. Later services pick their own names.
pub mod table {
    /// Node id → [`super::NodeRecord`].
    pub const NODES: &str = "nodes";
    /// Token id → [`super::TokenRecord`].
    pub const TOKENS: &str = "tokens";
    /// Node id → [`super::RevocationRecord`].
    pub const REVOCATIONS: &str = "revocations";
    /// Zero-padded log index → [`super::Event`].
    pub const EVENTS: &str = "events";
    /// Key → mesh-wide setting (JSON).
    pub const MESH_CONFIG: &str = "mesh_config";
}

/// Where a node stands in the mesh, as the queen last committed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Asked to join without a token; waits for `hyphae admit`.
    Pending,
    /// Admitted and heartbeating.
    Up,
    /// Missed heartbeats for `suspect_after`.
    Suspect,
    /// Silent for `heal_after`: the event healing reacts to.
    Down,
    /// Revoked by an administrator: refused everywhere.
    Revoked,
    /// Left the mesh cleanly (`hyphae leave`).
    Left,
}

impl NodeStatus {
    /// Whether the node belongs in the Raft membership (as voter or learner).
    pub fn is_member(self) -> bool {
        matches!(
            self,
            NodeStatus::Up | NodeStatus::Suspect | NodeStatus::Down
        )
    }
}

/// One node of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's id (from its key).
    pub id: NodeId,
    /// Its display name.
    pub name: String,
    /// Addresses it can be reached at (IPs).
    pub addresses: Vec<String>,
    /// `IP:PORT` of its coordinator endpoint (what Raft dials).
    pub coordinator_addr: String,
    /// Status as last committed.
    pub status: NodeStatus,
    /// When it was admitted (Unix seconds; 0 while pending).
    pub admitted_unix: u64,
    /// When the queen last heard its heartbeat (Unix seconds, as of the last commit).
    pub last_seen_unix: u64,
    /// Its process uptime as of the last committed report (seconds).
    pub uptime_s: u64,
    /// Its heartbeat jitter as of the last committed report (milliseconds).
    pub jitter_ms: u32,
    /// Hardware profile (issue 4 fills it in).
    pub hardware: Option<serde_json::Value>,
    /// Its certificate signing request while pending (proof of its key).
    pub csr_pem: Option<String>,
    /// Its signed certificate once admitted.
    pub cert_pem: Option<String>,
}

/// A join token as stored: never the secret, only its BLAKE3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// BLAKE3 of the token's secret.
    pub secret_hash: [u8; 32],
    /// When it stops working (Unix seconds).
    pub expires_unix: u64,
    /// How many more nodes it may admit.
    pub uses_left: u32,
}

/// A revoked node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRecord {
    /// When (Unix seconds).
    pub at_unix: u64,
    /// Why.
    pub reason: String,
}

/// A committed change later services react to (healing watches `Down`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When the queen committed it (Unix seconds).
    pub at_unix: u64,
    /// The node concerned.
    pub node: NodeId,
    /// What happened: `admitted`, `pending`, `suspect`, `down`, `up`, `revoked`, `left`.
    pub kind: String,
}
