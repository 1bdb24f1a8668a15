//! One node's coordinator: its Raft instance, its view of the directory, and the ways in
//! (member RPCs, admission, local API) and out (writes forwarded to the queen).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyphae_core::config::CoordinatorSection;
use hyphae_core::pki::Membership;
use hyphae_core::NodeId;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;

use crate::batcher::{Committed, WriteBatcher};
use crate::command::{read, read_all, Command, CommandResult, BATCH_FOR_ONE};
use crate::directory::{table, NodeRecord, NodeStatus};
use crate::error::CoordinatorError;
use crate::liveness::Liveness;
use crate::methods::Write;
use crate::network::{PeerError, Peers};
use crate::store::StateView;
use crate::types::{Raft, RaftPeer};
use hyphae_core::rpc::{ErrorCode, RpcError};

/// How long a member waits to apply a write it forwarded before answering anyway.
const APPLY_WAIT: Duration = Duration::from_secs(3);

/// Seconds since the Unix epoch (the queen's clock, carried inside commands).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A node's role, derived from the Raft membership and leadership (never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The Raft leader.
    Queen,
    /// A voter that is not the leader.
    Prince,
    /// A learner.
    Bee,
    /// Not in the Raft membership (pending, left, revoked, or not yet added).
    None,
}

/// Everything one coordinator shares between its tasks.
pub struct Coordinator {
    /// This node.
    pub id: NodeId,
    /// Display name.
    pub name: String,
    /// The Raft instance.
    pub raft: Raft,
    /// Writes go to Raft through here, grouped into entries under load.
    pub writes: WriteBatcher,
    /// The applied state.
    pub view: StateView,
    /// Connections to other members.
    pub peers: Peers,
    /// This node's credentials.
    pub membership: Membership,
    /// Where the identity files are (CA key on CA holders).
    pub identity_dir: PathBuf,
    /// Timings.
    pub config: CoordinatorSection,
    /// `IP:PORT` of this coordinator's endpoint, as other members dial it.
    pub addr: String,
    /// When this process started.
    pub started: Instant,
    /// The queen's heartbeat bookkeeping (meaningful only while queen).
    pub liveness: Mutex<Liveness>,
    /// The founder's `auto_init` genesis window (`crate::genesis`), if any.
    pub genesis: Option<crate::genesis::Genesis>,
    /// The limit on new pending entries (`crate::pending_gate`).
    pub pending_gate: Mutex<crate::pending_gate::PendingGate>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// The queen right now, if known, with her address.
    pub fn queen(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        Some((leader, addr))
    }

    /// Whether this node is the queen.
    pub fn is_queen(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The role of `node` in the current membership.
    pub fn role_of(&self, node: &NodeId) -> Role {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if metrics.current_leader == Some(*node) {
            Role::Queen
        } else if membership.voter_ids().any(|v| v == *node) {
            Role::Prince
        } else if membership.learner_ids().any(|l| l == *node) {
            Role::Bee
        } else {
            Role::None
        }
    }

    /// The current voters and learners.
    pub fn raft_members(&self) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        let metrics = self.raft.metrics().borrow().clone();
        let m = metrics.membership_config.membership();
        (m.voter_ids().collect(), m.learner_ids().collect())
    }

    /// Every node of the directory (this node's applied view).
    pub fn nodes(&self) -> Vec<NodeRecord> {
        read_all(&self.view, table::NODES)
    }

    /// One node of the directory.
    pub fn node(&self, id: &NodeId) -> Option<NodeRecord> {
        read(&self.view, table::NODES, &id.to_string())
    }

    /// Committed status of every node.
    pub fn statuses(&self) -> BTreeMap<NodeId, NodeStatus> {
        self.nodes().into_iter().map(|n| (n.id, n.status)).collect()
    }

    /// Proposes a command: locally when queen, else forwarded to the queen. Retries while an
    /// election is in progress (up to 10 s), but only while the command has certainly not been
    /// applied: once a request may have reached a queen that then fell silent, the outcome is
    /// unknown and the caller is told so ([`CoordinatorError::Unknown`]) rather than risk
    /// applying it twice.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn propose(&self, command: Command) -> Result<CommandResult, CoordinatorError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last_error = String::from("no queen elected yet");
        while Instant::now() < deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // A queen cut off from her princes cannot commit: give up at the deadline rather
            // than wait for a quorum that may never come back.
            let attempt = tokio::time::timeout(remaining, self.writes.write(command.clone()));
            let Ok(outcome) = attempt.await else {
                return Err(CoordinatorError::Unknown(
                    "no quorum: not committed within 10 s (it may still be, or never)".into(),
                ));
            };
            match outcome {
                Ok(committed) => return Ok(committed.result),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let (Some(id), Some(node)) = (f.leader_id, f.leader_node) {
                        // If that queen dies meanwhile, stop waiting for her as soon as the
                        // princes have moved on.
                        let forwarded = tokio::select! {
                            r = self.peers.call::<Write>(
                                id,
                                &node.addr,
                                &command,
                                Some(remaining.min(Duration::from_secs(5))),
                            ) => r,
                            _ = self.queen_changes_from(id) => {
                                return Err(CoordinatorError::Unknown(format!(
                                    "queen {id} was replaced while the write was in flight"
                                )));
                            }
                        };
                        match forwarded {
                            Ok(Ok(committed)) => {
                                // Read-your-writes on this node: its local reads (listings,
                                // `kv` scans) see the write once the call returns.
                                self.wait_applied(committed.log_index).await;
                                return Ok(committed.result);
                            }
                            // The queen's own refusal to take it (not queen any more): safe.
                            Ok(Err(e)) => last_error = e,
                            // Never sent: safe to try again.
                            Err(e @ PeerError::Unreachable { .. }) => last_error = e.to_string(),
                            Err(PeerError::Call {
                                source: RpcError::Remote(fault),
                                ..
                            }) if fault.code == ErrorCode::Forbidden => {
                                return Err(CoordinatorError::Refused(fault.message));
                            }
                            Err(
                                e @ PeerError::Call {
                                    source: RpcError::Remote(_),
                                    ..
                                },
                            ) => last_error = e.to_string(),
                            Err(e) => return Err(CoordinatorError::Unknown(e.to_string())),
                        }
                    }
                }
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(CoordinatorError::NoQueen(last_error))
    }

    /// Returns once `queen` is no longer the queen this node knows of.
    async fn queen_changes_from(&self, queen: NodeId) {
        let mut metrics = self.raft.metrics();
        loop {
            if metrics.borrow().current_leader != Some(queen) {
                return;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// Proposes and turns a refusal into an error.
    pub async fn propose_ok(&self, command: Command) -> Result<u64, CoordinatorError> {
        match self.propose(command).await? {
            CommandResult::Ok { version } => Ok(version),
            CommandResult::Refused { reason } => Err(CoordinatorError::Refused(reason)),
            CommandResult::Batch(_) => Err(CoordinatorError::Raft(BATCH_FOR_ONE.to_string())),
        }
    }

    /// Writes as the queen (the web CA's publication; refused when not queen).
    pub async fn write_as_queen(&self, command: Command) -> Result<CommandResult, String> {
        self.write_for_member(command).await.map(|c| c.result)
    }

    /// Handles a write forwarded by another member (only the queen applies it), answering
    /// with its log index so the member can wait until it has applied it too.
    pub async fn write_for_member(&self, command: Command) -> Result<Committed, String> {
        self.writes.write(command).await.map_err(|e| e.to_string())
    }

    /// Waits until this node has applied the entry at `log_index`, at most
    /// [`APPLY_WAIT`]: the write is committed either way, and a member cut off from the queen
    /// just after it must not hang its caller (its reads stay behind until it catches up).
    async fn wait_applied(&self, log_index: u64) {
        let mut metrics = self.raft.metrics();
        let caught_up = async {
            loop {
                let applied = metrics.borrow().last_applied.map(|l| l.index);
                if applied.is_some_and(|i| i >= log_index) {
                    return;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(APPLY_WAIT, caught_up).await.is_err() {
            tracing::debug!(log_index, "write committed but not yet applied here");
        }
    }

    /// Waits until this node's state machine has applied everything committed at the queen
    /// when the call was made (openraft's read index): a linearizable read barrier.
    pub async fn read_barrier(&self) -> Result<(), CoordinatorError> {
        self.raft
            .ensure_linearizable()
            .await
            .map(|_| ())
            .map_err(|e| CoordinatorError::NoQueen(e.to_string()))
    }

    /// A linearizable read of one key: at the queen after her read index, from any node.
    pub async fn linearizable_get(
        &self,
        table: &str,
        key: &str,
    ) -> Result<Option<crate::command::Versioned>, CoordinatorError> {
        if self.is_queen() {
            self.read_barrier().await?;
            return Ok(crate::command::Kv::get(&self.view, table, key));
        }
        let Some((queen, addr)) = self.queen() else {
            return Err(CoordinatorError::NoQueen("no queen right now".into()));
        };
        let request = (table.to_string(), key.to_string());
        match self
            .peers
            .call::<crate::methods::LinearizableRead>(queen, &addr, &request, None)
            .await
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CoordinatorError::NoQueen(e)),
            Err(e) => Err(CoordinatorError::NoQueen(e.to_string())),
        }
    }

    /// This node's Raft peer description.
    pub fn raft_peer(&self) -> RaftPeer {
        RaftPeer {
            addr: self.addr.clone(),
        }
    }
}
