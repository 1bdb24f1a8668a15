//! memrep's background duties on every node, against the coordinator's tables:
//!
//! - **failover actor** (only on the node that is currently queen): for every running VM
//!   whose primary the directory no longer lists as up, ask its live backups what they have
//!   committed (`memrep.replica_state`), let [`failover::decide`] pick one, and tell it to take
//!   the VM over (`memrep.takeover`). One actor at a time because there is one queen at a
//!   time; and were two to overlap during a change of queen, the takeover's compare-and-set
//!   on the VM record lets only one win.
//! - **fencing**: a VM this node runs as primary whose record names another primary or a
//!   newer generation is stopped (this node was cut off and the mesh moved the VM on).
//! - **replica rows**: what this node's replicas have committed, published about once a
//!   second while it changes.

use std::collections::HashMap;
use std::time::Duration;

use hyphae_core::rpc;
use hyphae_core::NodeId;

use crate::backup_choice::Member;
use crate::control_rpc::{ReplicaState, ReplicaStateRequest, Takeover, TakeoverRequest};
use crate::failover::{self, Committed, Decision};
use crate::service::{self, Shared};
use crate::tables::{now_unix_ms, ReplicaRow, VmRecord, VmState};
use crate::takeover::{self, ResumeParams};

/// How often the failover actor looks.
const TICK: Duration = Duration::from_millis(200);
/// How often replica rows are published and fencing is checked.
const SLOW: Duration = Duration::from_secs(1);
/// How long a suspect primary's memrep has to answer before it is taken for dead.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a backup may take to answer `memrep.replica_state`.
const STATE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs until memrep shuts down. The failover actor has a loop of its own: the slower
/// duties (fencing checks, replica rows) write to the coordinator, and a write may wait up to
/// 10 s while the mesh changes its queen or its princes, which is exactly when a failover is
/// due (a kill of a queen that was also a VM's primary).
pub(crate) async fn run(s: Shared) {
    let housekeeping = tokio::spawn(housekeeping(s.clone()));
    let mut first_seen: HashMap<String, u64> = HashMap::new();
    loop {
        tokio::select! {
            _ = s.shutdown.cancelled() => break,
            _ = tokio::time::sleep(TICK) => {}
        }
        if is_queen(&s).await {
            if let Err(e) = failover_pass(&s, &mut first_seen).await {
                tracing::debug!(error = %e, "failover pass");
            }
        } else {
            first_seen.clear();
        }
    }
    let _ = housekeeping.await;
}

/// Fencing checks and replica rows, every [`SLOW`].
async fn housekeeping(s: Shared) {
    let mut published: HashMap<String, (u64, u64)> = HashMap::new();
    loop {
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            _ = tokio::time::sleep(SLOW) => {}
        }
        fence_local(&s).await;
        publish_replicas(&s, &mut published).await;
    }
}

async fn is_queen(s: &Shared) -> bool {
    match hyphae_core::ipc::get_json(&s.coordinator_socket, "/status").await {
        Ok(v) => v["queen"].as_str() == Some(s.node.to_string().as_str()),
        Err(_) => false,
    }
}

/// One look at every VM record, as the failover actor.
async fn failover_pass(s: &Shared, first_seen: &mut HashMap<String, u64>) -> Result<(), String> {
    let records = s.tables.vms().await.map_err(|e| e.to_string())?;
    let members = service::members(s).await.map_err(|e| e.to_string())?;
    let mut still = HashMap::new();
    for (record, version) in records {
        let name = record.spec.name.clone();
        let Some(ask) = failover::needs_failover(&record, &members) else {
            continue;
        };
        let detected = first_seen.get(&name).copied().unwrap_or_else(now_unix_ms);
        still.insert(name.clone(), detected);
        if let Some(done) = fail_over(s, &members, record, version, ask, detected).await {
            if done {
                still.remove(&name);
            }
        }
    }
    *first_seen = still;
    Ok(())
}

/// Fails one VM over. `Some(true)`: done; `Some(false)`/`None`: try again next tick.
async fn fail_over(
    s: &Shared,
    members: &[Member],
    record: VmRecord,
    version: u64,
    ask: Vec<NodeId>,
    detected: u64,
) -> Option<bool> {
    let name = record.spec.name.clone();
    // Suspect is a timing judgement; on a loaded host a live primary can miss heartbeats.
    // One direct question to its memrep settles it: if it answers, it is alive and keeps
    // the VM (no ping-pong of takeovers between slow nodes). The backups are asked what they
    // committed at the same time (a read): a dead primary costs one timeout, not the sum.
    let started = std::time::Instant::now();
    let asked = async {
        let mut set = tokio::task::JoinSet::new();
        for b in ask {
            let (s, members, name) = (s.clone(), members.to_vec(), name.clone());
            set.spawn(async move { (b, replica_state(&s, &members, b, &name).await) });
        }
        let mut states: Vec<(NodeId, Option<Committed>)> = Vec::new();
        while let Some(answer) = set.join_next().await {
            if let Ok(a) = answer {
                states.push(a);
            }
        }
        states
    };
    let (alive, states) = tokio::join!(primary_answers(s, members, record.primary, &name), asked);
    if alive {
        tracing::info!(vm = %name, primary = %record.primary, "primary suspect but its memrep answers; no failover");
        return Some(false);
    }
    tracing::info!(
        vm = %name,
        primary = %record.primary,
        ?states,
        asked_ms = started.elapsed().as_millis() as u64,
        "primary gone; what its backups committed"
    );
    match failover::decide(&record, members, &states) {
        Decision::NoLiveBackup => {
            if record.state != VmState::Lost {
                tracing::error!(vm = %name, primary = %record.primary, "primary gone and no live backup holds a replica: VM lost for now");
                let mut r = record.clone();
                r.state = VmState::Lost;
                r.updated_unix_ms = now_unix_ms();
                r.note = Some(format!(
                    "primary {} gone; no live backup with a committed replica",
                    record.primary
                ));
                let _ = s.tables.put_vm(&r, Some(version)).await;
            }
            Some(false)
        }
        Decision::Resume {
            on,
            generation,
            backups,
            from,
        } => {
            let reason = format!(
                "failover: primary {} gone; resumed from generation {} epoch {}",
                record.primary, from.generation, from.epoch
            );
            tracing::warn!(vm = %name, %on, generation, "{reason}");
            let req = TakeoverRequest {
                record,
                record_version: version,
                generation,
                backups,
                reason,
                detected_unix_ms: Some(detected),
                require_epoch: None,
            };
            match ask_takeover(s, members, on, req).await {
                Ok(a) => {
                    tracing::info!(vm = %name, %on, generation = a.generation, "failover done");
                    Some(true)
                }
                Err(e) => {
                    tracing::warn!(vm = %name, %on, error = %e, "failover attempt failed; retrying");
                    Some(false)
                }
            }
        }
    }
}

/// Whether the primary's memrep answers within [`PROBE_TIMEOUT`].
async fn primary_answers(s: &Shared, members: &[Member], node: NodeId, vm: &str) -> bool {
    let Some(addr) = service::memrep_addr(s, members, node) else {
        return false;
    };
    let probe = async {
        let conn = s.endpoint.connect(addr, Some(node)).await.ok()?;
        rpc::call::<ReplicaState>(&conn, &ReplicaStateRequest { vm: vm.into() }, &s.limits)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Some(_))
    )
}

/// What `node`'s replica of `vm` has committed (`None`: none, or no answer).
async fn replica_state(
    s: &Shared,
    members: &[Member],
    node: NodeId,
    vm: &str,
) -> Option<Committed> {
    let meta = if node == s.node {
        let store = s.replicas.get(vm).await.ok()?;
        let m = store.lock().await.meta();
        m
    } else {
        let addr = service::memrep_addr(s, members, node)?;
        let call = async {
            let conn = s.endpoint.connect(addr, Some(node)).await.ok()?;
            rpc::call::<ReplicaState>(&conn, &ReplicaStateRequest { vm: vm.into() }, &s.limits)
                .await
                .ok()
                .flatten()
        };
        tokio::time::timeout(STATE_TIMEOUT, call)
            .await
            .ok()
            .flatten()
    };
    meta.filter(|m| m.epoch > 0).map(|m| Committed {
        generation: m.generation,
        epoch: m.epoch,
    })
}

/// Asks `node` to take a VM over (locally when it is this node).
pub(crate) async fn ask_takeover(
    s: &Shared,
    members: &[Member],
    node: NodeId,
    req: TakeoverRequest,
) -> Result<crate::control_rpc::TakeoverAnswer, String> {
    if node == s.node {
        let p = ResumeParams {
            record: req.record,
            expect_version: req.record_version,
            generation: req.generation,
            backups: req.backups,
            reason: req.reason,
            detected_unix_ms: req.detected_unix_ms,
            require_epoch: req.require_epoch,
        };
        return takeover::resume_here(s, p).await.map_err(|e| e.to_string());
    }
    let addr = service::memrep_addr(s, members, node)
        .ok_or_else(|| format!("node {node} has no address"))?;
    let conn = s
        .endpoint
        .connect(addr, Some(node))
        .await
        .map_err(|e| e.to_string())?;
    rpc::call::<Takeover>(&conn, &req, &s.limits)
        .await
        .map_err(|e| e.to_string())
}

/// Stops VMs running here that the mesh has moved on.
async fn fence_local(s: &Shared) {
    let mut local: Vec<(String, u64)> = Vec::new();
    for (n, v) in s.vms.lock().await.iter() {
        // The runner's current generation (a migration's new backup raises it).
        local.push((n.clone(), v.stats.lock().await.generation));
    }
    for (name, generation) in local {
        let Ok(Some((record, _))) = s.tables.vm(&name).await else {
            continue;
        };
        if failover::fenced(&record, s.node, generation) {
            tracing::warn!(
                vm = %name,
                generation,
                record_generation = record.generation,
                primary = %record.primary,
                "fenced: the mesh moved this VM on; stopping it here"
            );
            service::stop_local(s, &name).await;
        }
    }
}

/// Publishes changed replica rows.
async fn publish_replicas(s: &Shared, published: &mut HashMap<String, (u64, u64)>) {
    let running: Vec<String> = s.vms.lock().await.keys().cloned().collect();
    for (vm, meta) in s.replicas.list().await {
        let Some(m) = meta else { continue };
        if running.contains(&vm) || published.get(&vm) == Some(&(m.generation, m.epoch)) {
            continue;
        }
        let row = ReplicaRow {
            generation: m.generation,
            epoch: m.epoch,
            unix_ms: now_unix_ms(),
        };
        match s.tables.put_replica(&vm, s.node, &row).await {
            Ok(()) => {
                published.insert(vm, (m.generation, m.epoch));
            }
            Err(e) => tracing::debug!(vm, error = %e, "replica row not published"),
        }
    }
}
