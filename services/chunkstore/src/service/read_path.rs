//! The read path: manifest → per chunk, k shards (local first, then data shards before parity,
//! fastest peers first) → verify → decode if any data shard is missing → check the chunk id →
//! decrypt → stream. Range reads touch only the chunks they need.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};

use super::errors::FilesError;
use super::state::{with_coder, Shared};
use super::tables::MeshView;
use crate::chunking::chunks_for_range;
use crate::manifest::{ChunkEntry, ChunkLayout, Manifest};
use crate::pipeline::decode_chunk;

/// Reads and checks a file's manifest (whole, or joined from its segments when split), with
/// the version of its `files` entry. See [`super::manifest_store::load`].
pub async fn load_manifest(store: &Shared, path: &str) -> Result<(Manifest, u64), FilesError> {
    let loaded = super::manifest_store::load(store, path).await?;
    Ok((loaded.manifest, loaded.version))
}

/// The chunk's current layout: the `chunks` table's (healing updates it), else the manifest's.
pub async fn current_layout(store: &Shared, entry: &ChunkEntry) -> ChunkLayout {
    match store.chunk_record(&entry.id).await {
        Ok(Some((r, _))) => r.layout,
        _ => entry.layout.clone(),
    }
}

/// Fetches any k shards of a chunk (`None` for the rest), trying more holders as fetches fail.
pub async fn fetch_k(
    store: &Shared,
    view: &MeshView,
    layout: &ChunkLayout,
) -> Result<Vec<Option<Bytes>>, FilesError> {
    let k = layout.redundancy.k as usize;
    let mut order: Vec<usize> = (0..layout.shards.len()).collect();
    order.sort_by_key(|&i| {
        let s = &layout.shards[i];
        let local = s.node != store.node;
        let down = !view.is_up(&s.node) && s.node != store.node;
        let parity = i >= k;
        (down, local, parity, store.peers.latency(&s.node))
    });
    let mut out: Vec<Option<Bytes>> = vec![None; layout.shards.len()];
    let mut next = order.into_iter();
    let mut running = FuturesUnordered::new();
    let mut have = 0;
    let mut errors = Vec::new();
    let start = |i: usize| {
        let s = layout.shards[i].clone();
        async move { (i, store.fetch_shard(view, s.node, s.id).await) }
    };
    for i in next.by_ref().take(k) {
        running.push(start(i));
    }
    while let Some((i, result)) = running.next().await {
        match result {
            Ok(bytes) => {
                out[i] = Some(bytes);
                have += 1;
                if have == k {
                    return Ok(out);
                }
            }
            Err(e) => {
                tracing::debug!(shard = i, error = %e, "shard fetch failed; trying another holder");
                errors.push(e.to_string());
                if let Some(j) = next.next() {
                    running.push(start(j));
                }
            }
        }
    }
    Err(FilesError::Unavailable(format!(
        "only {have} of the {k} shards needed are reachable ({})",
        errors.join("; ")
    )))
}

/// Reads, rebuilds and decrypts one chunk.
pub async fn read_chunk(
    store: &Shared,
    view: &MeshView,
    entry: &ChunkEntry,
) -> Result<Bytes, FilesError> {
    let layout = current_layout(store, entry).await;
    let shards = fetch_k(store, view, &layout).await?;
    let k = layout.redundancy.k as usize;
    if shards.iter().take(k).any(|s| s.is_none()) {
        store.metrics.degraded_chunk_reads.inc();
    }
    let keys = store.keys.clone();
    let wrapped = data_encoding::HEXLOWER_PERMISSIVE
        .decode(entry.wrapped_key.as_bytes())
        .map_err(|e| FilesError::Internal(format!("chunk {}: wrapped key: {e}", entry.id)))?;
    let id = entry.id;
    let ct_len = layout.ct_len as usize;
    let r = layout.redundancy;
    let plain = tokio::task::spawn_blocking(move || {
        with_coder(|coder| decode_chunk(&keys, coder, r, &id, ct_len, &wrapped, &shards))
    })
    .await
    .map_err(|e| FilesError::Internal(format!("decoder task: {e}")))?
    .map_err(|e| FilesError::Unavailable(format!("chunk {id}: {e}")))?;
    if plain.len() as u64 != entry.size {
        return Err(FilesError::Internal(format!("chunk {id}: size mismatch")));
    }
    Ok(Bytes::from(plain))
}

/// The chunks of `[start, end)` and the slice of each that belongs to the range.
fn plan(manifest: &Manifest, start: u64, end: u64) -> Vec<(ChunkEntry, usize, usize)> {
    let range = chunks_for_range(manifest.chunk_size, start, end);
    manifest
        .chunks
        .iter()
        .skip(range.start as usize)
        .take((range.end - range.start) as usize)
        .map(|c| {
            let from = start.saturating_sub(c.offset).min(c.size) as usize;
            let to = (end.saturating_sub(c.offset)).min(c.size) as usize;
            (c.clone(), from, to)
        })
        .collect()
}

/// Streams `[start, end)` of a file, one chunk ahead. The first chunk is read before this
/// returns, so an unreadable file fails with a clean error instead of a cut-off body.
pub async fn read_range(
    store: Shared,
    manifest: Manifest,
    start: u64,
    end: u64,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>>, FilesError> {
    let view = Arc::new(MeshView::load(&store.coord).await?);
    let mut parts = plan(&manifest, start, end).into_iter();
    let first = match parts.next() {
        Some((entry, from, to)) => Some(read_chunk(&store, &view, &entry).await?.slice(from..to)),
        None => None,
    };
    let metrics = store.metrics.clone();
    let rest = futures::stream::iter(parts)
        .map(move |(entry, from, to)| {
            let store = store.clone();
            let view = view.clone();
            async move {
                let bytes = read_chunk(&store, &view, &entry).await?;
                Ok::<Bytes, FilesError>(bytes.slice(from..to))
            }
        })
        .buffered(2);
    let all = futures::stream::iter(first.map(Ok))
        .chain(rest)
        .map(move |r| {
            r.inspect(|b| {
                metrics.bytes_read.inc_by(b.len() as u64);
            })
            .map_err(|e| std::io::Error::other(e.to_string()))
        });
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_plan_slices_chunks() {
        let mut m = Manifest {
            version: 2,
            path: "p".into(),
            size: 10,
            created_unix: 0,
            chunk_size: 4,
            blake3: String::new(),
            chunks: Vec::new(),
        };
        for (i, size) in [4u64, 4, 2].iter().enumerate() {
            m.chunks.push(ChunkEntry {
                id: crate::ids::ChunkId::of(&[i as u8]),
                offset: 4 * i as u64,
                size: *size,
                wrapped_key: String::new(),
                layout: ChunkLayout {
                    redundancy: crate::redundancy::Redundancy { k: 1, m: 0 },
                    ct_len: 0,
                    shard_len: 0,
                    shards: vec![],
                },
            });
        }
        let p = plan(&m, 3, 9);
        let got: Vec<(u64, usize, usize)> = p.iter().map(|(c, a, b)| (c.offset, *a, *b)).collect();
        assert_eq!(got, vec![(0, 3, 4), (4, 0, 4), (8, 0, 1)]);
        assert!(plan(&m, 5, 5).is_empty());
    }
}
