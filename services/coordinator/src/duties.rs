//! The background work of a coordinator: every node heartbeats the queen; the queen turns
//! heartbeats into committed liveness transitions, keeps the Raft membership in line with the
//! directory (bees added, princes chosen, the departed removed) and gives princes the CA key.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyphae_core::NodeId;
use openraft::ChangeMembers;
use tokio_util::sync::CancellationToken;

use crate::command::Command;
use crate::directory::{NodeRecord, NodeStatus};
use crate::liveness::Liveness;
use crate::methods::{Heartbeat, HeartbeatRequest, InstallCa};
use crate::roles::{desired_voters, Candidate};
use crate::service::{now_unix, Coordinator};
use crate::types::RaftPeer;

/// How far behind (in log entries) a bee may be and still be promoted.
const PROMOTION_MAX_LAG: u64 = 64;

/// Sends this node's heartbeat to the queen every `heartbeat_interval`.
pub async fn heartbeat_loop(coord: Arc<Coordinator>, shutdown: CancellationToken) {
    let interval = coord.config.heartbeat_interval;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let uptime_s = coord.started.elapsed().as_secs();
        let Some((queen, addr)) = coord.queen() else {
            continue;
        };
        if queen == coord.id {
            if let Ok(mut l) = coord.liveness.lock() {
                l.heartbeat(coord.id, Instant::now(), uptime_s);
            }
            continue;
        }
        let request = HeartbeatRequest {
            uptime_s,
            coordinator_addr: coord.addr.clone(),
        };
        if let Err(e) = coord
            .peers
            .call::<Heartbeat>(queen, &addr, &request, Some(interval))
            .await
        {
            tracing::debug!(error = %e, "heartbeat to the queen failed");
        }
    }
}

/// The queen's periodic work; idle on other nodes.
pub async fn queen_loop(coord: Arc<Coordinator>, shutdown: CancellationToken) {
    let mut was_queen = false;
    let mut ca_given: HashSet<NodeId> = HashSet::new();
    let mut web_ca_given: HashSet<NodeId> = HashSet::new();
    let mut tick: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        tick += 1;
        let queen = coord.is_queen();
        if queen && !was_queen {
            tracing::info!(node = %coord.id, "this node is now the queen");
            if let Ok(mut l) = coord.liveness.lock() {
                *l = Liveness::new(Instant::now());
            }
            ca_given.clear();
            web_ca_given.clear();
        }
        was_queen = queen;
        if !queen {
            continue;
        }
        if let Err(e) = register_self(&coord).await {
            tracing::warn!(error = %e, "cannot register the queen in the directory");
            continue;
        }
        commit_liveness(&coord, tick.is_multiple_of(40)).await;
        reconcile_membership(&coord).await;
        give_ca_to_princes(&coord, &mut ca_given).await;
        if tick.is_multiple_of(8) {
            coord.ensure_web_ca().await;
        }
        coord.give_web_ca_to_princes(&mut web_ca_given).await;
    }
}

/// Of `nodes`, those that have heartbeated this queen since she took over. The queen's
/// calls to princes go only to them: a new queen's princes include the queen that just died,
/// and every call to her waited for its timeout (2 s for each CA) before the next round of
/// liveness could mark her suspect, which held up every failover that waits on it.
pub(crate) fn heard_from(
    coord: &Coordinator,
    nodes: impl IntoIterator<Item = NodeId>,
) -> Vec<NodeId> {
    let Ok(l) = coord.liveness.lock() else {
        return Vec::new();
    };
    nodes.into_iter().filter(|n| l.heard_from(n)).collect()
}

/// The founder's first act as queen: put itself in the directory.
async fn register_self(coord: &Coordinator) -> Result<(), crate::error::CoordinatorError> {
    if coord.node(&coord.id).is_some() {
        return Ok(());
    }
    let now = now_unix();
    let ip = coord
        .addr
        .parse::<std::net::SocketAddr>()
        .map(|a| vec![a.ip().to_string()])
        .unwrap_or_default();
    let record = NodeRecord {
        id: coord.id,
        name: coord.name.clone(),
        addresses: ip,
        coordinator_addr: coord.addr.clone(),
        status: NodeStatus::Up,
        admitted_unix: now,
        last_seen_unix: now,
        uptime_s: coord.started.elapsed().as_secs(),
        jitter_ms: 0,
        hardware: None,
        csr_pem: None,
        cert_pem: Some(pem::encode(&pem::Pem::new(
            "CERTIFICATE",
            coord.membership.node_cert.to_vec(),
        ))),
    };
    coord
        .propose_ok(Command::RegisterNode { node: record })
        .await
        .map(|_| ())
}

async fn commit_liveness(coord: &Coordinator, refresh_figures: bool) {
    let statuses = coord.statuses();
    let now = Instant::now();
    let (transitions, figures) = {
        let Ok(l) = coord.liveness.lock() else { return };
        let transitions = l.evaluate(
            now,
            &statuses,
            coord.config.suspect_after,
            coord.config.heal_after,
        );
        let figures: BTreeMap<NodeId, (u64, u32, Duration)> = statuses
            .keys()
            .map(|id| (*id, (l.uptime_s(id), l.jitter_ms(id), l.silence(id, now))))
            .collect();
        (transitions, figures)
    };
    let unix = now_unix();
    let mut changed: BTreeMap<NodeId, NodeStatus> = transitions
        .into_iter()
        .map(|t| (t.node, t.status))
        .collect();
    if refresh_figures {
        for (id, status) in &statuses {
            if status.is_member() {
                changed.entry(*id).or_insert(*status);
            }
        }
    }
    for (node, status) in changed {
        let (uptime_s, jitter_ms, silence) = figures.get(&node).copied().unwrap_or_default();
        if statuses.get(&node) != Some(&status) {
            tracing::info!(%node, ?status, silent_for = ?silence, "liveness transition");
        }
        let command = Command::SetStatus {
            node,
            status,
            now_unix: unix,
            last_seen_unix: unix.saturating_sub(silence.as_secs()),
            uptime_s,
            jitter_ms,
        };
        if let Err(e) = coord.propose(command).await {
            tracing::warn!(error = %e, "cannot commit a liveness change");
            return;
        }
    }
}

async fn reconcile_membership(coord: &Coordinator) {
    let nodes = coord.nodes();
    let (voters, learners) = coord.raft_members();
    let in_raft: BTreeSet<NodeId> = voters.union(&learners).copied().collect();
    let members: Vec<&NodeRecord> = nodes.iter().filter(|n| n.status.is_member()).collect();
    let member_ids: BTreeSet<NodeId> = members.iter().map(|n| n.id).collect();

    // 1. Every member is at least a bee.
    for n in &members {
        if !in_raft.contains(&n.id) && !n.coordinator_addr.is_empty() {
            let peer = RaftPeer {
                addr: n.coordinator_addr.clone(),
            };
            match coord.raft.add_learner(n.id, peer, false).await {
                Ok(_) => tracing::info!(node = %n.id, "added as a bee"),
                Err(e) => tracing::warn!(node = %n.id, error = %e, "cannot add a bee"),
            }
            return;
        }
    }

    // 2. Choose the princes among members that are caught up.
    let metrics = coord.raft.metrics().borrow().clone();
    let last = metrics.last_log_index.unwrap_or(0);
    let caught_up = |id: &NodeId| {
        *id == coord.id
            || metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .is_some_and(|m| m.index + PROMOTION_MAX_LAG >= last)
    };
    let candidates: Vec<Candidate> = members
        .iter()
        .filter(|n| in_raft.contains(&n.id))
        .map(|n| Candidate {
            id: n.id,
            // Hysteresis: a prince only has to be up; a bee must also be caught up.
            healthy: n.status == NodeStatus::Up && (voters.contains(&n.id) || caught_up(&n.id)),
            uptime_s: n.uptime_s,
            jitter_ms: n.jitter_ms,
        })
        .collect();
    let wanted = desired_voters(coord.id, &voters, &candidates);
    if wanted != voters {
        tracing::info!(from = ?voters, to = ?wanted, "changing the princes");
        if let Err(e) = coord
            .raft
            .change_membership(ChangeMembers::ReplaceAllVoters(wanted), true)
            .await
        {
            tracing::warn!(error = %e, "cannot change the princes");
        }
        return;
    }

    // 3. The departed (left, revoked) leave the Raft membership.
    let gone: BTreeSet<NodeId> = learners
        .iter()
        .filter(|id| !member_ids.contains(id))
        .copied()
        .collect();
    if !gone.is_empty() {
        tracing::info!(nodes = ?gone, "removing departed nodes from the Raft membership");
        if let Err(e) = coord
            .raft
            .change_membership(ChangeMembers::RemoveNodes(gone), true)
            .await
        {
            tracing::warn!(error = %e, "cannot remove departed nodes");
        }
    }
}

async fn give_ca_to_princes(coord: &Coordinator, given: &mut HashSet<NodeId>) {
    let (voters, _) = coord.raft_members();
    let pending: Vec<NodeId> = heard_from(
        coord,
        voters
            .into_iter()
            .filter(|v| *v != coord.id && !given.contains(v)),
    );
    if pending.is_empty() {
        return;
    }
    let Ok(ca) = coord.certificate_authority() else {
        return;
    };
    let key = ca.key_pem();
    for prince in pending {
        let Some(addr) = coord.node(&prince).map(|n| n.coordinator_addr) else {
            continue;
        };
        match coord
            .peers
            .call::<InstallCa>(prince, &addr, &key, Some(Duration::from_secs(2)))
            .await
        {
            Ok(Ok(())) => {
                tracing::info!(%prince, "gave the CA key to a prince");
                given.insert(prince);
            }
            Ok(Err(e)) => tracing::warn!(%prince, error = %e, "prince refused the CA key"),
            Err(e) => tracing::debug!(%prince, error = %e, "cannot reach prince for the CA key"),
        }
    }
}
