//! The coordinator's RPC methods: Raft between members, member requests to the queen, and the
//! admission methods (the only ones served to nodes without a certificate).

use hyphae_core::rpc::Method;
use hyphae_core::NodeId;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::batcher::Committed;
use crate::command::Command;
use crate::types::TypeConfig;

/// Raft AppendEntries (and heartbeats).
#[derive(Debug)]
pub struct RaftAppend;
impl Method for RaftAppend {
    const NAME: &'static str = "coordinator.raft.append";
    type Request = AppendEntriesRequest<TypeConfig>;
    type Response = Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;
}

/// Raft RequestVote.
#[derive(Debug)]
pub struct RaftVote;
impl Method for RaftVote {
    const NAME: &'static str = "coordinator.raft.vote";
    type Request = VoteRequest<NodeId>;
    type Response = Result<VoteResponse<NodeId>, RaftError<NodeId>>;
}

/// Raft InstallSnapshot (one chunk of a snapshot for a lagging member).
#[derive(Debug)]
pub struct RaftSnapshot;
impl Method for RaftSnapshot {
    const NAME: &'static str = "coordinator.raft.snapshot";
    type Request = InstallSnapshotRequest<TypeConfig>;
    type Response =
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;
}

/// A write forwarded by a member to the queen; the answer names its log entry.
#[derive(Debug)]
pub struct Write;
impl Method for Write {
    const NAME: &'static str = "coordinator.write";
    type Request = Command;
    type Response = Result<Committed, String>;
}

/// A member's liveness heartbeat to the queen.
#[derive(Debug)]
pub struct Heartbeat;

/// What a heartbeat carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// Sender's process uptime (seconds): the queen prefers long-lived princes.
    pub uptime_s: u64,
    /// Sender's coordinator address as it advertises it now. Not acted on yet: the directory
    /// keeps the address recorded at admission (docs/coordinator.md, "Known limitations").
    pub coordinator_addr: String,
}

/// The queen's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// Whether the receiver is (still) the queen.
    pub queen: bool,
}

impl Method for Heartbeat {
    const NAME: &'static str = "coordinator.heartbeat";
    type Request = HeartbeatRequest;
    type Response = HeartbeatAck;
}

/// The CA key, pushed by the queen to princes so that any future queen can admit nodes.
#[derive(Debug)]
pub struct InstallCa;
impl Method for InstallCa {
    const NAME: &'static str = "coordinator.install_ca";
    /// PEM of the CA private key.
    type Request = String;
    type Response = Result<(), String>;
}

/// Queen → prince: install the web CA (certificate and key, PEM), so that any future queen can
/// sign gateway certificates.
#[derive(Debug)]
pub struct InstallWebCa;
impl Method for InstallWebCa {
    const NAME: &'static str = "coordinator.install_web_ca";
    /// PEM of the web CA certificate and of its private key.
    type Request = (String, String);
    type Response = Result<(), String>;
}

/// A join request, as sent by the joiner (admission endpoint) or forwarded to the queen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The full join token, or none to ask for a pending entry.
    pub token: Option<String>,
    /// PEM CSR over the joiner's key (proves the key; decides its node id).
    pub csr_pem: String,
    /// Display name.
    pub name: String,
    /// Its coordinator port (its address is taken from the connection).
    pub coordinator_port: u16,
    /// Filled in by the member that received the request: the joiner's source IP.
    pub observed_ip: Option<String>,
}

/// The answer to a join or a poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JoinOutcome {
    /// Admitted: the enrolment bundle (TOML).
    Admitted { bundle_toml: String },
    /// Recorded as pending: poll again later.
    Pending { node: NodeId },
    /// Refused, with the reason: final (bad, spent or expired token, revoked node…).
    Refused { reason: String },
    /// Cannot be decided right now (no queen, queen unreachable, no quorum): try again.
    Unavailable { reason: String },
}

/// Admission: join with a token, or ask to be admitted (pending).
#[derive(Debug)]
pub struct Join;
impl Method for Join {
    const NAME: &'static str = "admission.join";
    type Request = JoinRequest;
    type Response = JoinOutcome;
}

/// Member → queen: a join received on a prince's or bee's admission endpoint.
#[derive(Debug)]
pub struct ForwardJoin;
impl Method for ForwardJoin {
    const NAME: &'static str = "coordinator.join";
    type Request = JoinRequest;
    type Response = JoinOutcome;
}

/// Member → queen: `hyphae admit` run on a node that is not the queen.
#[derive(Debug)]
pub struct Admit;
impl Method for Admit {
    const NAME: &'static str = "coordinator.admit";
    type Request = NodeId;
    type Response = Result<(), String>;
}

/// Member → queen: a linearizable read of one key (the queen confirms her leadership with a
/// quorum — openraft's read index — waits until it is applied, then reads).
#[derive(Debug)]
pub struct LinearizableRead;
impl Method for LinearizableRead {
    const NAME: &'static str = "coordinator.read";
    /// Table and key.
    type Request = (String, String);
    type Response = Result<Option<crate::command::Versioned>, String>;
}

/// Member → queen: sign the sender's gateway (HTTPS) certificate request; the queen checks its
/// names against the sender's directory record. Answers the certificate as PEM.
#[derive(Debug)]
pub struct GatewayCert;
impl Method for GatewayCert {
    const NAME: &'static str = "coordinator.gateway_cert";
    /// PEM CSR.
    type Request = String;
    type Response = Result<String, String>;
}
