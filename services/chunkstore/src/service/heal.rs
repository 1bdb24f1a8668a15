//! Healing: when the coordinator has committed a node as down (after `heal_after`), rebuild
//! the shards it held on other nodes and commit the new placement. Every chunkstore scans the
//! `chunks` table (it doubles as the shard index); a chunk is repaired by its first live
//! holder, so exactly one node works on it. Repairs run one at a time, throttled to
//! `[storage] heal_bytes_per_sec`, so client I/O keeps its latency.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hyphae_core::NodeId;
use tokio_util::sync::CancellationToken;

use super::errors::FilesError;
use super::read_path::fetch_k;
use super::state::{bump, with_coder, Shared};
use super::tables::{MeshView, CHUNKS};
use crate::ids::ChunkId;
use crate::manifest::ChunkRecord;
use crate::placement::place_replacements;

/// How often the chunk table is scanned for lost shards.
const SCAN_EVERY: Duration = Duration::from_secs(2);

/// Whether a node's shards are lost for good (the coordinator marked it so), as opposed to
/// merely unreachable for now (suspect).
fn lost_for_good(view: &MeshView, node: &NodeId) -> bool {
    match view.get(node) {
        None => true,
        Some(n) => matches!(n.status.as_str(), "down" | "revoked" | "left"),
    }
}

/// Runs healing scans until shutdown.
pub async fn run(store: Shared, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SCAN_EVERY) => {}
        }
        if let Err(e) = scan(&store, &shutdown).await {
            tracing::debug!(error = %e, "healing scan failed; retrying");
        }
    }
}

async fn scan(store: &Shared, shutdown: &CancellationToken) -> Result<(), FilesError> {
    let view = MeshView::load(&store.coord).await?;
    let entries = store.coord.scan(CHUNKS, "").await?;
    let mut under = 0u64;
    let mut todo = Vec::new();
    for e in &entries {
        let Ok(record) = serde_json::from_str::<ChunkRecord>(&e.value) else {
            continue;
        };
        let Ok(id) = e.key.parse::<ChunkId>() else {
            continue;
        };
        let shards = &record.layout.shards;
        if shards.iter().all(|s| view.is_up(&s.node)) {
            continue;
        }
        under += 1;
        if !shards.iter().any(|s| lost_for_good(&view, &s.node)) {
            continue;
        }
        let leader = shards.iter().find(|s| view.is_up(&s.node)).map(|s| s.node);
        if leader == Some(store.node) {
            todo.push((id, record, e.version));
        }
    }
    store.heal.under_replicated.store(under, Ordering::Relaxed);
    store.metrics.under_replicated.set(under as i64);
    let done = store.heal.done.load(Ordering::Relaxed);
    store
        .heal
        .total
        .store(done + todo.len() as u64, Ordering::Relaxed);
    for (id, record, version) in todo {
        if shutdown.is_cancelled() {
            break;
        }
        bump(&store.heal.active, 1);
        let outcome = repair(store, &view, &id, record, version).await;
        store.heal.active.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Ok(n) => {
                bump(&store.heal.done, 1);
                store.metrics.shards_healed.inc_by(n);
                tracing::info!(chunk = %id, shards = n, "chunk healed");
            }
            Err(e) => {
                bump(&store.heal.failed, 1);
                tracing::warn!(chunk = %id, error = %e, "repair failed; will retry");
            }
        }
    }
    Ok(())
}

/// Rebuilds the chunk's lost shards on new nodes and commits the new placement. Returns the
/// number of shards rebuilt.
pub async fn repair(
    store: &Shared,
    view: &MeshView,
    id: &ChunkId,
    record: ChunkRecord,
    version: u64,
) -> Result<u64, FilesError> {
    let layout = record.layout.clone();
    let lost: Vec<usize> = layout
        .shards
        .iter()
        .enumerate()
        .filter(|(_, s)| lost_for_good(view, &s.node))
        .map(|(i, _)| i)
        .collect();
    if lost.is_empty() {
        return Ok(0);
    }
    let have = fetch_k(store, view, &layout).await?;
    let r = layout.redundancy;
    let ct_len = layout.ct_len as usize;
    let rebuilt =
        tokio::task::spawn_blocking(move || with_coder(|c| c.rebuild_all(r, ct_len, &have)))
            .await
            .map_err(|e| FilesError::Internal(e.to_string()))?
            .map_err(|e| FilesError::Unavailable(e.to_string()))?;
    let keep: Vec<NodeId> = layout.shards.iter().map(|s| s.node).collect();
    let targets = place_replacements(&id.0, &view.candidates(), &keep, lost.len())
        .map_err(|e| FilesError::InsufficientNodes(e.to_string()))?;
    let mut new_layout = layout.clone();
    for (&i, node) in lost.iter().zip(targets) {
        let bytes = rebuilt[i].clone();
        let shard_id = layout.shards[i].id;
        if crate::ids::ShardHash::of(&bytes) != shard_id {
            return Err(FilesError::Internal(format!(
                "chunk {id}: rebuilt shard {i} differs"
            )));
        }
        let len = bytes.len() as u64;
        store
            .store_shard(view, node, shard_id, bytes)
            .await
            .map_err(|e| FilesError::Unavailable(e.to_string()))?;
        new_layout.shards[i].node = node;
        // Throttle: this shard's share of the repair bandwidth.
        let pause = Duration::from_secs_f64(len as f64 / store.config.heal_bytes_per_sec as f64);
        tokio::time::sleep(pause).await;
    }
    let updated = ChunkRecord {
        layout: new_layout,
        ..record
    };
    if !store.cas_chunk(id, &updated, version).await? {
        return Err(FilesError::Conflict);
    }
    Ok(lost.len() as u64)
}
