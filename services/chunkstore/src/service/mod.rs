//! The chunkstore service (`hyphae chunkstore`, also a task of `hyphae node`): the QUIC shard
//! endpoint (udp/7442, ALPN `hyphae-chunkstore/1`), contract A on `<run>/chunkstore.sock`,
//! and the background work: publishing this node's capacity, healing, scrubbing.

pub mod assets;
pub mod errors;
pub mod files_api;
pub mod gc;
pub mod heal;
pub mod manifest_store;
pub mod peer_server;
pub mod peers;
pub mod read_path;
pub mod rebalance;
pub mod refs;
pub mod scrub;
pub mod state;
pub mod tables;
pub mod write_path;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyphae_core::rpc::{self, Limits, RpcMetrics};
use hyphae_core::transport::{MeshEndpoint, MeshTls, ServiceSpec, TransportError};
use hyphae_core::{ipc, notify, NodeContext};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::chunk_crypto::MeshChunkKeys;
use crate::coordinator_client::CoordinatorClient;
use crate::local::{ShardStore, StoreError, StoreOptions};
use state::{Chunkstore, HealProgress, ScrubProgress, Shared, StoreMetrics};
use tables::{StorageNodeRecord, STORAGE_NODES};

/// Why the chunkstore stopped.
#[derive(Debug, thiserror::Error)]
pub enum ChunkstoreError {
    /// The local shard store could not be opened.
    #[error("local shard store: {0}")]
    Store(#[from] StoreError),
    /// The QUIC endpoint could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The local socket could not be served.
    #[error(transparent)]
    Ipc(#[from] ipc::IpcError),
    /// Membership files are present but unusable.
    #[error("membership: {0}")]
    Membership(String),
}

/// Runs the chunkstore until `shutdown` fires.
pub async fn run(
    ctx: Arc<NodeContext>,
    shutdown: CancellationToken,
) -> Result<(), ChunkstoreError> {
    let service = ServiceSpec::CHUNKSTORE;
    // Type=notify: the unit is started while the node waits to become a member.
    notify::ready("chunkstore: waiting for this node to join a mesh");
    let Some(membership) = ctx.wait_membership(&shutdown).await else {
        return Ok(());
    };
    let node = membership.node_id();
    let dir = ctx.paths.service_state(service.name).join("shards");
    let local =
        tokio::task::spawn_blocking(move || ShardStore::open(&dir, StoreOptions::default()))
            .await
            .map_err(|e| ChunkstoreError::Membership(format!("store open task: {e}")))??;

    let tls = MeshTls::new(&membership)?;
    let bind = SocketAddr::new(ctx.config.node.listen, ctx.config.ports.chunkstore);
    let endpoint = MeshEndpoint::server(bind, &tls, service, &ctx.config.transport)?;
    let limits = Limits::from(&ctx.config.transport);
    let rpc_metrics = RpcMetrics::register(&ctx.metrics);
    let store: Shared = Arc::new(Chunkstore {
        node,
        local: local.clone(),
        keys: MeshChunkKeys::new(&membership.secrets.data_key.0),
        coord: CoordinatorClient::new(ctx.paths.socket("coordinator")),
        peers: peers::ShardPeers::new(endpoint.clone(), limits),
        config: ctx.config.storage.clone(),
        metrics: StoreMetrics::register(&ctx.metrics),
        heal: HealProgress::default(),
        scrub: ScrubProgress::default(),
        scrub_now: tokio::sync::Notify::new(),
        refs_lock: tokio::sync::Mutex::new(()),
        assets: Arc::new(assets::AssetShelf::new(ctx.config.share.dirs.clone())),
        rebalance: rebalance::RebalanceProgress::default(),
    });

    let router = Arc::new(peer_server::router(node, local, store.assets.clone()));
    let rpc_task = tokio::spawn(rpc::serve(
        endpoint,
        router,
        limits,
        rpc_metrics,
        shutdown.clone(),
    ));
    let publisher = tokio::spawn(publish(
        store.clone(),
        ctx.config.ports.chunkstore,
        shutdown.clone(),
    ));
    let healer = tokio::spawn(heal::run(store.clone(), shutdown.clone()));
    let scrubber = tokio::spawn(scrub::run(store.clone(), shutdown.clone()));
    let collector = tokio::spawn(gc::run(store.clone(), shutdown.clone()));
    let asset_scanner = tokio::spawn(assets::run(store.clone(), shutdown.clone()));
    let rebalancer = tokio::spawn(rebalance::run(store.clone(), shutdown.clone()));

    let status = {
        let store = store.clone();
        move || {
            json!({
                "ready": true,
                "service": service.name,
                "node_id": store.node.to_string(),
                "storage": files_api::storage_json(&store),
                "assets": assets::assets_json(&store),
            })
        }
    };
    let api = ipc::base_router(status, ctx.metrics.clone())
        .merge(files_api::router(store.clone()))
        .merge(assets::router(store.clone()));
    let ipc_task = ipc::serve(&ctx.paths.socket(service.name), api, shutdown.clone()).await?;
    let line = format!(
        "chunkstore of node {node} serving shards on udp/{} ({} backend)",
        ctx.config.ports.chunkstore,
        store.local.stats().backend.as_str()
    );
    tracing::info!("{line}");
    notify::ready(&line);

    shutdown.cancelled().await;
    let _ = rpc_task.await;
    let _ = ipc_task.await;
    for t in [
        publisher,
        healer,
        scrubber,
        collector,
        asset_scanner,
        rebalancer,
    ] {
        let _ = t.await;
    }
    Ok(())
}

/// Publishes this node's storage record (port, capacity, share, domain) so placement can use
/// it: at start, then whenever free space moves by 1% or every minute.
async fn publish(store: Shared, port: u16, shutdown: CancellationToken) {
    let mut last: Option<(StorageNodeRecord, std::time::Instant)> = None;
    loop {
        let s = store.local.stats();
        let free = s.fs_available_bytes.saturating_sub(s.reserve_bytes);
        let record = StorageNodeRecord {
            port,
            capacity_bytes: s.live_bytes + free,
            free_bytes: free,
            share: store.config.share,
            domain: store.config.domain.clone(),
            updated_unix: refs::now_unix(),
        };
        let due = match &last {
            None => true,
            Some((prev, at)) => {
                at.elapsed() > Duration::from_secs(60)
                    || prev.free_bytes.abs_diff(free) > prev.capacity_bytes / 100
            }
        };
        if due {
            match serde_json::to_string(&record) {
                Ok(text) => match store
                    .coord
                    .put(STORAGE_NODES, &store.node.to_string(), &text, None)
                    .await
                {
                    Ok(_) => last = Some((record, std::time::Instant::now())),
                    Err(e) => {
                        tracing::debug!(error = %e, "publishing storage record failed; retrying")
                    }
                },
                Err(e) => tracing::warn!(error = %e, "storage record does not encode"),
            }
        }
        let wait = if last.is_some() {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(500)
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
