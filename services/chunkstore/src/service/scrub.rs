//! Scrubbing: every local shard re-read and verified on a schedule (`[storage]
//! scrub_interval`, a week by default) or on `POST /scrub`, using at most `scrub_bandwidth` of
//! the disk's time (after each verify it sleeps so that verifying is that share of the wall
//! time). A corrupt shard is rebuilt from its peers and replaced.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::errors::FilesError;
use super::peer_server::local_id;
use super::read_path::fetch_k;
use super::refs::now_unix;
use super::state::{bump, with_coder, Shared};
use super::tables::{MeshView, CHUNKS};
use crate::ids::{ChunkId, ShardHash};
use crate::local::StoreError;
use crate::manifest::{ChunkLayout, ChunkRecord};

/// Runs scheduled and requested scrubs until shutdown.
pub async fn run(store: Shared, shutdown: CancellationToken) {
    loop {
        let interval = store.config.scrub_interval;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = store.scrub_now.notified() => {}
        }
        scrub_once(&store, &shutdown).await;
    }
}

/// One pass over every local shard.
pub async fn scrub_once(store: &Shared, shutdown: &CancellationToken) {
    store.scrub.running.store(1, Ordering::Relaxed);
    store.scrub.verified.store(0, Ordering::Relaxed);
    let duty = store.config.scrub_bandwidth.clamp(0.01, 1.0);
    let mut owners: Option<HashMap<ShardHash, (ChunkId, usize, ChunkLayout)>> = None;
    for id in store.local.list() {
        if shutdown.is_cancelled() {
            break;
        }
        let started = Instant::now();
        let result = store.local.verify(&id).await;
        let took = started.elapsed();
        bump(&store.scrub.verified, 1);
        if let Err(StoreError::Corrupt { reason, .. }) = result {
            let hash = ShardHash(id.0);
            bump(&store.scrub.corrupt_found, 1);
            store.metrics.scrub_corrupt.inc();
            tracing::warn!(shard = %hash, reason, "scrub found a corrupt shard; repairing");
            if owners.is_none() {
                owners = load_owners(store).await.ok();
            }
            match owners.as_ref().and_then(|o| o.get(&hash)) {
                Some((chunk, index, layout)) => {
                    match repair_local(store, chunk, *index, layout).await {
                        Ok(()) => {
                            bump(&store.scrub.repaired, 1);
                            tracing::info!(shard = %hash, chunk = %chunk, "corrupt shard rebuilt from peers");
                        }
                        Err(e) => {
                            tracing::warn!(shard = %hash, error = %e, "could not repair the shard")
                        }
                    }
                }
                None => {
                    tracing::warn!(shard = %hash, "corrupt shard belongs to no chunk; left for GC")
                }
            }
        }
        if duty < 1.0 {
            tokio::time::sleep(
                took.mul_f64((1.0 - duty) / duty)
                    .min(Duration::from_secs(5)),
            )
            .await;
        }
    }
    store.scrub.running.store(0, Ordering::Relaxed);
    bump(&store.scrub.runs, 1);
    store.scrub.last_unix.store(now_unix(), Ordering::Relaxed);
}

async fn load_owners(
    store: &Shared,
) -> Result<HashMap<ShardHash, (ChunkId, usize, ChunkLayout)>, FilesError> {
    let mut map = HashMap::new();
    for e in store.coord.scan(CHUNKS, "").await? {
        let (Ok(record), Ok(id)) = (
            serde_json::from_str::<ChunkRecord>(&e.value),
            e.key.parse::<ChunkId>(),
        ) else {
            continue;
        };
        for (i, s) in record.layout.shards.iter().enumerate() {
            if s.node == store.node {
                map.insert(s.id, (id, i, record.layout.clone()));
            }
        }
    }
    Ok(map)
}

/// Rebuilds shard `index` of a chunk from the other holders and replaces the local copy.
async fn repair_local(
    store: &Shared,
    chunk: &ChunkId,
    index: usize,
    layout: &ChunkLayout,
) -> Result<(), FilesError> {
    let view = MeshView::load(&store.coord).await?;
    let k = layout.redundancy.k as usize;
    let fetched = fetch_k_excluding(store, &view, layout, index).await?;
    let r = layout.redundancy;
    let ct_len = layout.ct_len as usize;
    let rebuilt =
        tokio::task::spawn_blocking(move || with_coder(|c| c.rebuild_all(r, ct_len, &fetched)))
            .await
            .map_err(|e| FilesError::Internal(e.to_string()))?
            .map_err(|e| FilesError::Unavailable(e.to_string()))?;
    let shard = rebuilt
        .get(index)
        .cloned()
        .ok_or_else(|| FilesError::Internal("rebuilt shard missing".into()))?;
    let id = layout.shards[index].id;
    if ShardHash::of(&shard) != id {
        return Err(FilesError::Internal(format!(
            "chunk {chunk}: rebuilt shard differs (k={k})"
        )));
    }
    let lid = local_id(&id);
    store
        .local
        .delete(&lid)
        .await
        .map_err(|e| FilesError::Internal(e.to_string()))?;
    store
        .local
        .put(lid, shard)
        .await
        .map_err(|e| FilesError::Internal(e.to_string()))?;
    Ok(())
}

/// Like [`fetch_k`] but never reads shard `skip` (the corrupt local one).
async fn fetch_k_excluding(
    store: &Shared,
    view: &MeshView,
    layout: &ChunkLayout,
    skip: usize,
) -> Result<Vec<Option<bytes::Bytes>>, FilesError> {
    // Re-index so the skipped shard is absent, then map back to positions.
    let mut sub = layout.clone();
    let positions: Vec<usize> = (0..layout.shards.len()).filter(|&i| i != skip).collect();
    sub.shards = positions
        .iter()
        .map(|&i| layout.shards[i].clone())
        .collect();
    // fetch_k needs k from the layout and returns slots in `sub` order.
    let got = fetch_k(store, view, &sub).await?;
    let mut out = vec![None; layout.shards.len()];
    for (slot, bytes) in positions.into_iter().zip(got) {
        out[slot] = bytes;
    }
    Ok(out)
}
