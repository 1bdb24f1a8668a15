//! The write path: stream → chunks → (blocking threads) encrypt + erasure-code → dedup check
//! → placement → parallel shard uploads → chunk records → manifest. The manifest is committed
//! only after every shard of every chunk is durable; a failed put releases what it took.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{Stream, StreamExt};
use hyphae_core::NodeId;

use super::errors::FilesError;
use super::manifest_store;
use super::refs::now_unix;
use super::state::{with_coder, Chunkstore, Shared};
use super::tables::{MeshView, FILES};
use crate::chunking::Chunker;
use crate::ids::ChunkId;
use crate::manifest::{ChunkEntry, ChunkLayout, Manifest, ShardPlacement, MANIFEST_VERSION};
use crate::manifest_split::StoredManifest;
use crate::pipeline::{encode_chunk, EncodedChunk};
use crate::placement::{place, place_replacements};
use crate::redundancy::Redundancy;

/// Chunks being encoded/uploaded at once per put (bounds memory: ~this many chunks × (1 +
/// m/k) of buffers).
const IN_FLIGHT: usize = 3;

/// What a committed put reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PutOutcome {
    /// The file's path.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// Number of chunks.
    pub chunks: usize,
    /// Data shards per chunk.
    pub k: u8,
    /// Parity shards per chunk.
    pub m: u8,
    /// BLAKE3 of the content (hex).
    pub blake3: String,
    /// Chunks that were already stored (dedup).
    pub deduplicated_chunks: usize,
}

/// How long a write waits for suspect storage nodes to be up again before it leaves them out.
const SUSPECT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The mesh as a write should see it. Suspicion is a few missed heartbeats, often just a loaded
/// machine: choosing the default layout then, from the nodes up at that instant, let a busy
/// 3-node mesh write a file as 1+0, with no redundancy (seen in CI). So while a node is suspect
/// the write waits up to [`SUSPECT_WAIT`] for it; one still suspect after that is left out, as
/// a dead one must be (its uploads would only time out).
async fn settled_view(store: &Chunkstore) -> Result<MeshView, FilesError> {
    let deadline = tokio::time::Instant::now() + SUSPECT_WAIT;
    loop {
        let view = MeshView::load(&store.coord).await?;
        if !view.has_suspects() || tokio::time::Instant::now() >= deadline {
            return Ok(view);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Picks the layout: the request's, else `[storage]`'s, else the default by mesh size.
pub fn choose_redundancy(
    store: &Chunkstore,
    view: &MeshView,
    k: Option<u32>,
    m: Option<u32>,
) -> Result<Redundancy, FilesError> {
    let usable = view.usable();
    let r = match (k, m, store.config.data_shards, store.config.parity_shards) {
        (Some(k), Some(m), _, _) => Redundancy::new(k, m),
        (Some(_), None, _, _) | (None, Some(_), _, _) => {
            return Err(FilesError::BadRequest("give k and m together".into()))
        }
        (None, None, Some(k), Some(m)) => Redundancy::new(k, m),
        _ => Ok(Redundancy::default_for(usable)),
    }
    .map_err(|e| FilesError::BadRequest(e.to_string()))?;
    r.check_fits(usable)
        .map_err(|e| FilesError::InsufficientNodes(e.to_string()))?;
    Ok(r)
}

struct StoredChunk {
    entry: ChunkEntry,
    deduplicated: bool,
}

/// Upload rounds per chunk: the first, then retries of the shards that failed.
const UPLOAD_ROUNDS: u32 = 4;

/// Uploads every shard of an encoded chunk to distinct nodes. A shard whose upload fails goes to
/// a replacement node; when no other node is left (a 3-node mesh with 2+1), a passing failure
/// (a stale connection to a restarted peer) is retried on the same node, on a fresh connection,
/// while a full node is never asked again. Fails with `insufficient_storage` when every node
/// that could take the shard is full, `data_unavailable` otherwise.
async fn upload(
    store: &Chunkstore,
    view: &MeshView,
    enc: &EncodedChunk,
) -> Result<ChunkLayout, FilesError> {
    let candidates = view.candidates();
    let total = enc.shards.len();
    let mut nodes = place(&enc.id.0, &candidates, total)
        .map_err(|e| FilesError::InsufficientNodes(e.to_string()))?;
    let mut failed: Vec<NodeId> = Vec::new();
    let mut full: Vec<NodeId> = Vec::new();
    let mut pending: Vec<usize> = (0..total).collect();
    let mut last_error = String::new();
    for round in 0..UPLOAD_ROUNDS {
        if round > 0 {
            // A restarted peer may need a moment before a fresh connection succeeds.
            tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(round))).await;
        }
        let mut uploads = FuturesUnordered::new();
        for &i in &pending {
            let (id, data) = enc.shards[i].clone();
            let node = nodes[i];
            uploads.push(async move { (i, store.store_shard(view, node, id, data).await) });
        }
        let mut again = Vec::new();
        while let Some((i, result)) = uploads.next().await {
            if let Err(e) = result {
                tracing::warn!(chunk = %enc.id, node = %nodes[i], error = %e, "shard upload failed");
                if e.is_full() {
                    full.push(nodes[i]);
                } else {
                    failed.push(nodes[i]);
                }
                last_error = e.to_string();
                again.push(i);
            }
        }
        if again.is_empty() {
            let shards = (0..total)
                .map(|i| ShardPlacement {
                    index: i as u8,
                    id: enc.shards[i].0,
                    node: nodes[i],
                })
                .collect();
            return Ok(ChunkLayout {
                redundancy: enc.redundancy,
                ct_len: enc.ct_len,
                shard_len: enc.shard_len,
                shards,
            });
        }
        let done: Vec<NodeId> = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !again.contains(i))
            .map(|(_, n)| *n)
            .collect();
        let avoid: Vec<NodeId> = done
            .iter()
            .chain(failed.iter())
            .chain(full.iter())
            .copied()
            .collect();
        match place_replacements(&enc.id.0, &candidates, &avoid, again.len()) {
            Ok(fresh) => {
                for (slot, node) in again.iter().zip(fresh) {
                    nodes[*slot] = node;
                }
            }
            Err(_) => {
                // No untried node for every failed shard: shards that met a passing failure
                // stay on their node (retried); shards refused for lack of room need another
                // node that is neither full nor already holding a shard of this chunk.
                let refused: Vec<usize> = again
                    .iter()
                    .copied()
                    .filter(|i| full.contains(&nodes[*i]))
                    .collect();
                if !refused.is_empty() {
                    let avoid: Vec<NodeId> = nodes
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !refused.contains(i))
                        .map(|(_, n)| *n)
                        .chain(full.iter().copied())
                        .collect();
                    let fresh = place_replacements(&enc.id.0, &candidates, &avoid, refused.len())
                        .map_err(|e| {
                            FilesError::InsufficientNodes(format!(
                                "chunk {}: nodes full ({last_error}); no other node can take its shards: {e}",
                                enc.id
                            ))
                        })?;
                    for (slot, node) in refused.iter().zip(fresh) {
                        nodes[*slot] = node;
                    }
                }
            }
        }
        pending = again;
    }
    Err(FilesError::Unavailable(format!(
        "chunk {}: shard uploads kept failing ({last_error})",
        enc.id
    )))
}

/// Encodes, dedups or uploads, and records one chunk.
async fn store_chunk(
    store: Shared,
    view: Arc<MeshView>,
    r: Redundancy,
    offset: u64,
    plaintext: Bytes,
) -> Result<StoredChunk, FilesError> {
    let keys = store.keys.clone();
    let enc = tokio::task::spawn_blocking(move || {
        with_coder(|coder| encode_chunk(&keys, coder, r, BytesMut::from(plaintext)))
    })
    .await
    .map_err(|e| FilesError::Internal(format!("encoder task: {e}")))?
    .map_err(|e| FilesError::Internal(e.to_string()))?;
    let wrapped_key = data_encoding::HEXLOWER.encode(&enc.wrapped_key);
    if let Some(record) = store.reuse_chunk(&enc.id, 1).await? {
        return Ok(StoredChunk {
            entry: ChunkEntry {
                id: enc.id,
                offset,
                size: enc.plain_len,
                wrapped_key,
                layout: record.layout,
            },
            deduplicated: true,
        });
    }
    let layout = upload(&store, &view, &enc).await?;
    let record = store.record_chunk(&enc.id, layout, 1).await?;
    Ok(StoredChunk {
        entry: ChunkEntry {
            id: enc.id,
            offset,
            size: enc.plain_len,
            wrapped_key,
            layout: record.layout,
        },
        deduplicated: false,
    })
}

/// Releases the references a failed or replaced put holds.
pub async fn release_all(store: &Chunkstore, chunks: &[ChunkId]) {
    let mut counts: HashMap<ChunkId, u64> = HashMap::new();
    for c in chunks {
        *counts.entry(*c).or_default() += 1;
    }
    for (id, n) in counts {
        if let Err(e) = store.release_chunk(&id, n).await {
            tracing::warn!(chunk = %id, error = %e, "could not release a chunk reference");
        }
    }
}

/// Writes a file from a byte stream. Answers only after the manifest is committed.
#[tracing::instrument(skip(store, body), fields(node = %store.node))]
pub async fn put_file<S, E>(
    store: Shared,
    path: String,
    mut body: S,
    k: Option<u32>,
    m: Option<u32>,
) -> Result<PutOutcome, FilesError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let view = Arc::new(settled_view(&store).await?);
    let r = choose_redundancy(&store, &view, k, m)?;
    let previous = store.coord.get(FILES, &path, true).await?;
    let chunk_size = store.config.chunk_size as usize;
    let mut chunker = Chunker::new(chunk_size);
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0u64;
    let mut in_flight = FuturesOrdered::new();
    let mut done: Vec<StoredChunk> = Vec::new();
    let mut failure: Option<FilesError> = None;

    'read: loop {
        let piece = match body.next().await {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                failure = Some(FilesError::Upload(e.to_string()));
                break 'read;
            }
            None => break 'read,
        };
        hasher.update(&piece);
        for chunk in chunker.push(&piece) {
            let len = chunk.len() as u64;
            in_flight.push_back(store_chunk(store.clone(), view.clone(), r, offset, chunk));
            offset += len;
            while in_flight.len() >= IN_FLIGHT {
                match in_flight.next().await {
                    Some(Ok(c)) => done.push(c),
                    Some(Err(e)) => {
                        failure = Some(e);
                        break 'read;
                    }
                    None => break,
                }
            }
        }
    }
    if failure.is_none() {
        if let Some(last) = chunker.finish() {
            let len = last.len() as u64;
            in_flight.push_back(store_chunk(store.clone(), view.clone(), r, offset, last));
            offset += len;
        }
    }
    while let Some(result) = in_flight.next().await {
        match result {
            Ok(c) => done.push(c),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    let ids: Vec<ChunkId> = done.iter().map(|c| c.entry.id).collect();
    if let Some(e) = failure {
        release_all(&store, &ids).await;
        return Err(e);
    }

    let deduplicated_chunks = done.iter().filter(|c| c.deduplicated).count();
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        path: path.clone(),
        size: offset,
        created_unix: now_unix(),
        chunk_size: chunk_size as u64,
        blake3: hasher.finalize().to_hex().to_string(),
        chunks: done.into_iter().map(|c| c.entry).collect(),
    };
    let expect = previous.as_ref().map(|(_, v)| *v).unwrap_or(0);
    if let Err(e) = manifest_store::commit(&store, &manifest, expect).await {
        release_all(&store, &ids).await;
        return Err(e);
    }
    // The replaced version's chunks lose a reference; its segments (if split) go.
    if let Some((text, _)) = previous {
        match manifest_store::resolve(&store, &path, &text).await {
            Ok(old) => {
                let old_ids: Vec<ChunkId> = old.chunks.iter().map(|c| c.id).collect();
                release_all(&store, &old_ids).await;
            }
            Err(e) => {
                tracing::warn!(path, error = %e, "the replaced manifest could not be read; its chunks keep their references")
            }
        }
        if let Ok(old) = StoredManifest::from_json(&text) {
            manifest_store::delete_segments(&store, &old.segment_keys()).await;
        }
    }
    store.metrics.bytes_written.inc_by(manifest.size);
    store.metrics.files_put.inc();
    tracing::info!(
        path,
        size = manifest.size,
        chunks = manifest.chunks.len(),
        k = r.k,
        m = r.m,
        "file committed"
    );
    Ok(PutOutcome {
        path,
        size: manifest.size,
        chunks: manifest.chunks.len(),
        k: r.k,
        m: r.m,
        blake3: manifest.blake3,
        deduplicated_chunks,
    })
}
