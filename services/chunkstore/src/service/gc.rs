//! Garbage collection: a chunk no file references (refs 0) for `[storage] gc_grace` has its
//! shards deleted. Compare-and-set state changes keep it from racing a put that dedups onto
//! the same chunk: Live → Reclaiming (puts of the chunk wait) → shards deleted → Reclaimed (a
//! tombstone; a later put uploads the chunk again and replaces it). The collector of a chunk is
//! its first live holder, as for healing; an interrupted reclaim is finished on the next pass.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::errors::FilesError;
use super::refs::now_unix;
use super::state::Shared;
use super::tables::{MeshView, CHUNKS};
use crate::ids::ChunkId;
use crate::manifest::{ChunkRecord, ChunkState};

/// How often the `chunks` table is scanned for garbage.
const SCAN_EVERY: Duration = Duration::from_secs(2);

/// Runs the collector until shutdown.
pub async fn run(store: Shared, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SCAN_EVERY) => {}
        }
        if let Err(e) = pass(&store).await {
            tracing::debug!(error = %e, "garbage collection pass failed; retrying");
        }
    }
}

async fn pass(store: &Shared) -> Result<(), FilesError> {
    let grace = store.config.gc_grace.as_secs();
    let now = now_unix();
    let mut view: Option<MeshView> = None;
    for e in store.coord.scan(CHUNKS, "").await? {
        let (Ok(mut record), Ok(id)) = (
            serde_json::from_str::<ChunkRecord>(&e.value),
            e.key.parse::<ChunkId>(),
        ) else {
            continue;
        };
        let due = match record.state {
            ChunkState::Live => {
                record.refs == 0 && record.orphaned_unix.is_some_and(|t| t + grace <= now)
            }
            ChunkState::Reclaiming => true,
            ChunkState::Reclaimed => false,
        };
        if !due {
            continue;
        }
        if view.is_none() {
            view = Some(MeshView::load(&store.coord).await?);
        }
        let Some(view) = view.as_ref() else { continue };
        let collector = record
            .layout
            .shards
            .iter()
            .find(|s| view.is_up(&s.node))
            .map(|s| s.node);
        if collector != Some(store.node) {
            continue;
        }
        let mut version = e.version;
        if record.state == ChunkState::Live {
            record.state = ChunkState::Reclaiming;
            if !store.cas_chunk(&id, &record, version).await? {
                continue; // a put took a reference meanwhile
            }
            version = match store.chunk_record(&id).await? {
                Some((_, v)) => v,
                None => continue,
            };
        }
        let mut deleted = 0;
        for s in &record.layout.shards {
            if !view.is_up(&s.node) {
                continue; // a down node's shards are gone with it
            }
            match store.delete_shard(view, s.node, s.id).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(e) => {
                    return Err(FilesError::Unavailable(format!(
                        "chunk {id}: deleting a shard on {}: {e}",
                        s.node
                    )))
                }
            }
        }
        record.state = ChunkState::Reclaimed;
        if store.cas_chunk(&id, &record, version).await? {
            store.metrics.gc_shards.inc_by(deleted);
            tracing::info!(chunk = %id, shards = deleted, "unreferenced chunk reclaimed");
        }
    }
    Ok(())
}
