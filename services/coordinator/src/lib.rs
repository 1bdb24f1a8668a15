//! Hyphae's coordinator: the mesh's memory, on Raft (openraft) with RocksDB storage.
//!
//! The Raft leader is the **queen**, the other voters are **princes**, every other member is a
//! **bee** (a learner). The replicated state is the mesh directory (nodes, join tokens,
//! revocations, events) and a generic versioned key space later services add tables to.
//! See `docs/coordinator.md` for the operator's view and `docs/ARCHITECTURE.md` for the map.

mod addr;
pub mod admission;
pub mod api;
pub mod batcher;
pub mod command;
pub mod directory;
pub mod duties;
pub mod error;
pub mod gateway_cert;
pub mod genesis;
pub mod join;
pub mod liveness;
pub mod methods;
pub mod network;
pub mod pending_gate;
pub mod roles;
pub mod server;
pub mod service;
pub mod store;
pub mod token;
pub mod types;
pub mod web_ca;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyphae_core::config::CoordinatorSection;
use hyphae_core::rpc::{self, Limits, RpcMetrics};
use hyphae_core::transport::{MeshEndpoint, MeshTls, ServiceSpec};
use hyphae_core::{ipc, notify, NodeContext};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use error::CoordinatorError;
pub use service::{Coordinator, Role};

use crate::liveness::Liveness;
use crate::network::{Network, Peers};
use crate::store::{open_db, LogStore, StateMachineStore};
use crate::types::{Raft, RaftPeer};

/// openraft's configuration from `[coordinator]`.
fn raft_config(
    mesh: &str,
    c: &CoordinatorSection,
) -> Result<Arc<openraft::Config>, CoordinatorError> {
    let min = c.election_timeout.as_millis() as u64;
    let config = openraft::Config {
        cluster_name: format!("hyphae-{mesh}"),
        heartbeat_interval: c.raft_heartbeat.as_millis() as u64,
        // A narrow range: openraft's followers refuse votes for `election_timeout_max` after
        // the last heartbeat (the leader lease), so the max bounds how fast a dead queen is
        // replaced; with a handful of voters split votes stay rare.
        election_timeout_min: min,
        election_timeout_max: min * 3 / 2,
        install_snapshot_timeout: 10_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(c.snapshot_every.max(1)),
        max_in_snapshot_log_to_keep: c.snapshot_keep_logs,
        ..Default::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| CoordinatorError::Raft(e.to_string()))
}

/// Runs the coordinator until `shutdown` fires. A node that is not a member yet first joins
/// the mesh named by `[mesh]` (or waits, serving only its status, when none is configured).
pub async fn run(
    ctx: Arc<NodeContext>,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    let state_dir = ctx.paths.service_state("coordinator");
    let membership = match &ctx.membership {
        Some(m) => m.clone(),
        // Without configured peers the node finds the mesh through the beacon: with a join
        // token it is admitted, without one it asks to be and waits as pending (the queen
        // rate-limits new pending entries). Only a node with no way to find a mesh at all
        // (every discovery step off) waits to be told.
        None if ctx.config.mesh.peers.is_empty()
            && ctx.config.mesh.join_token.is_none()
            && !ctx.config.discovery.auto_init
            && !ctx.config.discovery.beacon
            && !ctx.config.discovery.mdns
            && ctx.config.discovery.candidates.is_empty() =>
        {
            return idle_until_shutdown(&ctx, shutdown).await;
        }
        None => {
            // Type=notify: the unit is started while the node looks for its mesh (which can
            // take as long as an operator takes to admit it).
            notify::ready("coordinator: looking for a mesh to join");
            match join::acquire_membership(&ctx, &state_dir, &shutdown).await? {
                Some(m) => m,
                None => return Ok(()),
            }
        }
    };
    let id = membership.node_id();
    let identity_dir = ctx.paths.identity_dir();
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| CoordinatorError::Join(format!("{}: {e}", state_dir.display())))?;
    let db = open_db(&state_dir.join("raft"))?;
    let log = LogStore::new(db.clone())
        .map_err(|e| CoordinatorError::Raft(format!("starting the log's sync thread: {e}")))?;
    let sm = StateMachineStore::new(db, Some(membership.revocations.clone()));
    let view = sm.view();

    let tls = MeshTls::new(&membership)?;
    let listen = ctx.config.node.listen;
    let endpoint = MeshEndpoint::server(
        SocketAddr::new(listen, ctx.config.ports.coordinator),
        &tls,
        ServiceSpec::COORDINATOR,
        &ctx.config.transport,
    )?;
    let limits = Limits::from(&ctx.config.transport);
    let peers = Peers::new(endpoint.clone(), limits);
    let mesh_id = membership.secrets.mesh_id.to_string();
    let config = raft_config(&mesh_id, &ctx.config.coordinator)?;
    let raft = Raft::new(id, config, Network::new(peers.clone()), log, sm)
        .await
        .map_err(|e| CoordinatorError::Raft(e.to_string()))?;

    let ip = addr::wait_for_advertised_ip(listen, addr::ADDRESS_PATIENCE, &shutdown).await;
    let my_addr = addr::join_host_port(ip, ctx.config.ports.coordinator);
    let coord = Arc::new(Coordinator {
        id,
        name: ctx.name.clone(),
        raft: raft.clone(),
        writes: batcher::WriteBatcher::start(raft.clone()),
        view,
        peers,
        membership: membership.clone(),
        identity_dir: identity_dir.clone(),
        config: ctx.config.coordinator.clone(),
        addr: my_addr.clone(),
        started: ctx.started,
        liveness: Mutex::new(Liveness::new(Instant::now())),
        genesis: load_genesis(&state_dir),
        pending_gate: Mutex::new(pending_gate::PendingGate::new(Instant::now())),
    });

    let rpc_metrics = RpcMetrics::register(&ctx.metrics);
    let member_task = tokio::spawn(rpc::serve(
        endpoint,
        Arc::new(server::member_router(coord.clone())),
        limits,
        rpc_metrics.clone(),
        shutdown.clone(),
    ));
    let admission = MeshEndpoint::admission_server(
        SocketAddr::new(listen, ctx.config.ports.admission),
        &tls,
        &ctx.config.transport,
    )?;
    let admission_task = tokio::spawn(rpc::serve_anonymous(
        admission,
        Arc::new(server::admission_router(coord.clone())),
        limits,
        rpc_metrics,
        shutdown.clone(),
    ));

    // The founder (the node that ran `hyphae init`: it holds the CA and never joined) starts
    // the Raft cluster with itself as its only voter.
    let founder =
        identity_dir.join("ca.key").exists() && !state_dir.join(join::JOINED_MARKER).exists();
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| CoordinatorError::Raft(e.to_string()))?;
    if founder && !initialized {
        let members = BTreeMap::from([(
            id,
            RaftPeer {
                addr: my_addr.clone(),
            },
        )]);
        raft.initialize(members)
            .await
            .map_err(|e| CoordinatorError::Raft(e.to_string()))?;
        tracing::info!(node = %id, "started the mesh's Raft cluster as its first queen");
    }

    let duties = [
        tokio::spawn(duties::queen_loop(coord.clone(), shutdown.clone())),
        tokio::spawn(duties::heartbeat_loop(coord.clone(), shutdown.clone())),
        tokio::spawn(revocation_watch(coord.clone(), shutdown.clone())),
    ];
    let ipc_task = ipc::serve(
        &ctx.paths.socket(ServiceSpec::COORDINATOR.name),
        api::router(coord.clone(), ctx.metrics.clone()),
        shutdown.clone(),
    )
    .await?;
    let line = format!(
        "coordinator of node {id} on udp/{}",
        ctx.config.ports.coordinator
    );
    tracing::info!(addr = %my_addr, "{line}");
    notify::ready(&line);

    shutdown.cancelled().await;
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft did not stop cleanly");
    }
    for task in duties {
        let _ = task.await;
    }
    let _ = member_task.await;
    let _ = admission_task.await;
    let _ = ipc_task.await;
    Ok(())
}

/// Closes connections to nodes as soon as their revocation is applied here, and saves the
/// list for the services that load it at start.
async fn revocation_watch(coord: Arc<Coordinator>, shutdown: CancellationToken) {
    let mut seen = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
        }
        let list = coord.membership.revocations.snapshot();
        if list.version != seen {
            seen = list.version;
            for node in list.revoked.keys() {
                coord.peers.drop_connection(*node);
            }
            // Keep the file the other services load at start up to date as well.
            let path = coord.identity_dir.join("revocations.json");
            if let Err(e) = coord.membership.revocations.store(&path) {
                tracing::warn!(error = %e, "cannot save the revocation list");
            }
            tracing::info!(
                revoked = list.revoked.len(),
                version = list.version,
                "applied the revocation list"
            );
        }
    }
}

/// A node that is not a member and has nowhere to join: serve a status that says so.
/// The founder's genesis window, if it founded through `auto_init` (a broken file only
/// closes the window: the node still runs).
fn load_genesis(state_dir: &std::path::Path) -> Option<genesis::Genesis> {
    match genesis::Genesis::load(state_dir) {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "genesis window closed: cannot read its file");
            None
        }
    }
}

async fn idle_until_shutdown(
    ctx: &NodeContext,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    let node = ctx.key.node_id().to_string();
    let status = move || {
        json!({
            "ready": true,
            "service": "coordinator",
            "node_id": node,
            "member": false,
            "role": Role::None,
            "note": "not a member: run `hyphae init`, or set [mesh] join_token and peers",
        })
    };
    let router = ipc::base_router(status, ctx.metrics.clone());
    let task = ipc::serve(
        &ctx.paths.socket(ServiceSpec::COORDINATOR.name),
        router,
        shutdown.clone(),
    )
    .await?;
    notify::ready("coordinator: not a member (no way to find a mesh is configured)");
    shutdown.cancelled().await;
    let _ = task.await;
    Ok(())
}
