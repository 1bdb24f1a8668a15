//! Rebalancing: after a node joins, shards move gradually onto it so that each chunk's holders
//! become its rendezvous placement ([`crate::rebalance_plan`]). Like healing, a chunk is handled
//! by its first live holder; a move copies the shard to the new node, commits the new
//! placement (compare-and-set), then deletes the old copy, so redundancy never drops. Moves run
//! one at a time, throttled to `[storage] heal_bytes_per_sec`, a bounded number per pass.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::errors::FilesError;
use super::state::{bump, Shared};
use super::tables::{MeshView, CHUNKS};
use crate::ids::ChunkId;
use crate::manifest::{ChunkRecord, ChunkState};
use crate::rebalance_plan::{next_move, ShardMove, StableNode};

/// How often the chunk table is scanned for shards to move.
const SCAN_EVERY: Duration = Duration::from_secs(5);
/// Moves per pass at most (the rest wait for the next pass).
const MOVES_PER_PASS: usize = 64;

/// Rebalancing counters (`/status` `storage.rebalance`).
#[derive(Debug, Default)]
pub struct RebalanceProgress {
    /// Shards moved since start.
    pub moved: AtomicU64,
    /// Chunks this node found to move in the last pass (done or not).
    pub pending: AtomicU64,
    /// Moves that failed (retried on a later pass).
    pub failed: AtomicU64,
    /// A move is running now (0 or 1).
    pub active: AtomicU64,
}

fn stable_nodes(view: &MeshView) -> Vec<StableNode> {
    view.nodes
        .iter()
        .filter(|n| n.addr.is_some())
        .map(|n| StableNode {
            node: n.node,
            capacity_bytes: n.record.capacity_bytes,
            share: n.record.share,
            up: n.is_up(),
            domain: n.record.domain.clone(),
        })
        .collect()
}

/// Runs rebalancing passes until shutdown.
pub async fn run(store: Shared, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SCAN_EVERY) => {}
        }
        if let Err(e) = pass(&store, &shutdown).await {
            tracing::debug!(error = %e, "rebalancing pass failed; retrying");
        }
    }
}

async fn pass(store: &Shared, shutdown: &CancellationToken) -> Result<(), FilesError> {
    let view = MeshView::load(&store.coord).await?;
    let nodes = stable_nodes(&view);
    let mut todo = Vec::new();
    for e in store.coord.scan(CHUNKS, "").await? {
        let Ok(record) = serde_json::from_str::<ChunkRecord>(&e.value) else {
            continue;
        };
        let Ok(id) = e.key.parse::<ChunkId>() else {
            continue;
        };
        if record.refs == 0 || record.state != ChunkState::Live {
            continue;
        }
        let holders: Vec<_> = record.layout.shards.iter().map(|s| s.node).collect();
        let leader = holders.iter().find(|h| view.is_up(h));
        if leader != Some(&store.node) {
            continue;
        }
        if let Some(m) = next_move(&id.0, &holders, &nodes) {
            todo.push((id, record, e.version, m));
        }
    }
    store
        .rebalance
        .pending
        .store(todo.len() as u64, Ordering::Relaxed);
    for (id, record, version, m) in todo.into_iter().take(MOVES_PER_PASS) {
        if shutdown.is_cancelled() {
            break;
        }
        store.rebalance.active.store(1, Ordering::Relaxed);
        let outcome = move_shard(store, &view, &id, record, version, &m).await;
        store.rebalance.active.store(0, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                bump(&store.rebalance.moved, 1);
                tracing::info!(chunk = %id, shard = m.index, from = %m.from, to = %m.to, "shard moved");
            }
            Err(e) => {
                bump(&store.rebalance.failed, 1);
                tracing::warn!(chunk = %id, error = %e, "shard move failed; will retry");
            }
        }
    }
    Ok(())
}

/// Copies shard `m.index` to `m.to`, commits the new placement, deletes the old copy.
async fn move_shard(
    store: &Shared,
    view: &MeshView,
    id: &ChunkId,
    record: ChunkRecord,
    version: u64,
    m: &ShardMove,
) -> Result<(), FilesError> {
    let shard = record.layout.shards[m.index].id;
    let bytes = store
        .fetch_shard(view, m.from, shard)
        .await
        .map_err(|e| FilesError::Unavailable(e.to_string()))?;
    let len = bytes.len() as u64;
    store
        .store_shard(view, m.to, shard, bytes)
        .await
        .map_err(|e| FilesError::Unavailable(e.to_string()))?;
    let mut updated = record.clone();
    updated.layout.shards[m.index].node = m.to;
    if !store.cas_chunk(id, &updated, version).await? {
        // Someone changed the chunk meanwhile (a heal, a delete): drop the copy unless the
        // current record uses it, and try again on a later pass.
        if let Ok(Some((now, _))) = store.chunk_record(id).await {
            let used = now
                .layout
                .shards
                .iter()
                .any(|s| s.node == m.to && s.id == shard);
            if !used {
                let _ = store.delete_shard(view, m.to, shard).await;
            }
        }
        return Err(FilesError::Conflict);
    }
    // The old copy is no longer referenced (unless the same node still holds another index
    // with the same bytes, which content-hashed shards of one chunk never do).
    if !updated
        .layout
        .shards
        .iter()
        .any(|s| s.node == m.from && s.id == shard)
    {
        if let Err(e) = store.delete_shard(view, m.from, shard).await {
            tracing::warn!(chunk = %id, node = %m.from, error = %e, "old copy not deleted");
        }
    }
    let pause = Duration::from_secs_f64(len as f64 / store.config.heal_bytes_per_sec as f64);
    tokio::time::sleep(pause).await;
    Ok(())
}
