//! The chunkstore's shared state: the local store, the mesh keys, the coordinator client, the
//! peers, and the counters `/status` and `/metrics` show. Shard access goes local-first here.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hyphae_core::config::StorageSection;
use hyphae_core::NodeId;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::peer_server::local_id;
use super::peers::{PeerError, ShardPeers};
use super::tables::MeshView;
use crate::chunk_crypto::MeshChunkKeys;
use crate::coordinator_client::CoordinatorClient;
use crate::erasure::ErasureCoder;
use crate::ids::ShardHash;
use crate::local::{ShardStore, StoreError};

thread_local! {
    /// One reusable Reed-Solomon coder per blocking thread (decoders are costly to set up).
    static CODER: RefCell<ErasureCoder> = RefCell::new(ErasureCoder::new());
}

/// Runs `f` with this thread's reusable coder (call from a blocking thread).
pub fn with_coder<T>(f: impl FnOnce(&mut ErasureCoder) -> T) -> T {
    CODER.with(|c| f(&mut c.borrow_mut()))
}

/// Counters of healing (shown in `/status`, `/metrics`, `hyphae status`).
#[derive(Debug, Default)]
pub struct HealProgress {
    /// Repairs running now.
    pub active: AtomicU64,
    /// Repairs finished since start.
    pub done: AtomicU64,
    /// Repairs found needed in the last scan (done + still to do).
    pub total: AtomicU64,
    /// Chunks with at least one shard on a node that is not up (last scan).
    pub under_replicated: AtomicU64,
    /// Repairs that failed (retried on the next scan).
    pub failed: AtomicU64,
}

/// Counters of scrubbing.
#[derive(Debug, Default)]
pub struct ScrubProgress {
    /// Whether a scrub is running.
    pub running: AtomicU64,
    /// Scrubs finished.
    pub runs: AtomicU64,
    /// Shards verified by the last or current scrub.
    pub verified: AtomicU64,
    /// Corrupt shards found, all time.
    pub corrupt_found: AtomicU64,
    /// Corrupt shards repaired from peers, all time.
    pub repaired: AtomicU64,
    /// When the last scrub finished (unix seconds; 0 = never).
    pub last_unix: AtomicU64,
}

/// Prometheus metrics of the chunkstore.
#[derive(Debug, Clone, Default)]
pub struct StoreMetrics {
    /// Plaintext bytes written by clients.
    pub bytes_written: Counter,
    /// Plaintext bytes read by clients.
    pub bytes_read: Counter,
    /// Files committed.
    pub files_put: Counter,
    /// Chunks read that needed a Reed-Solomon decode (degraded).
    pub degraded_chunk_reads: Counter,
    /// Shards rebuilt by healing.
    pub shards_healed: Counter,
    /// Chunks under-replicated at the last scan.
    pub under_replicated: Gauge,
    /// Shards found corrupt by scrubbing.
    pub scrub_corrupt: Counter,
    /// Shards reclaimed by garbage collection.
    pub gc_shards: Counter,
}

impl StoreMetrics {
    /// Registers the metrics in the node's registry.
    pub fn register(registry: &hyphae_core::metrics::MetricsRegistry) -> StoreMetrics {
        let m = StoreMetrics::default();
        let c = m.clone();
        registry.register("hyphae_chunkstore", move |r| {
            r.register(
                "bytes_written",
                "Plaintext bytes written by clients",
                c.bytes_written,
            );
            r.register(
                "bytes_read",
                "Plaintext bytes read by clients",
                c.bytes_read,
            );
            r.register("files_put", "Files committed", c.files_put);
            r.register(
                "degraded_chunk_reads",
                "Chunk reads that needed a decode",
                c.degraded_chunk_reads,
            );
            r.register(
                "shards_healed",
                "Shards rebuilt by healing",
                c.shards_healed,
            );
            r.register(
                "under_replicated_chunks",
                "Chunks with a shard on a node that is not up",
                c.under_replicated,
            );
            r.register(
                "scrub_corrupt",
                "Local shards found corrupt by scrubbing",
                c.scrub_corrupt,
            );
            r.register(
                "gc_shards",
                "Shards reclaimed by garbage collection",
                c.gc_shards,
            );
        });
        m
    }
}

/// Why a shard could not be read or written on a node.
#[derive(Debug, thiserror::Error)]
pub enum ShardAccessError {
    /// Locally.
    #[error("local store: {0}")]
    Local(#[from] StoreError),
    /// On a peer.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The node's address is unknown.
    #[error("node {0} has no known chunkstore address")]
    NoAddress(NodeId),
}

impl ShardAccessError {
    /// Whether the node refused for lack of room (place the shard elsewhere, don't retry).
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            ShardAccessError::Local(StoreError::Full { .. })
                | ShardAccessError::Peer(PeerError::Full { .. })
        )
    }
}

/// Everything the chunkstore's tasks share.
#[derive(Debug)]
pub struct Chunkstore {
    /// This node.
    pub node: NodeId,
    /// The local shard store.
    pub local: ShardStore,
    /// The mesh's chunk keys.
    pub keys: MeshChunkKeys,
    /// The coordinator's socket.
    pub coord: CoordinatorClient,
    /// The other chunkstores.
    pub peers: ShardPeers,
    /// `[storage]`.
    pub config: StorageSection,
    /// Metrics.
    pub metrics: StoreMetrics,
    /// Healing progress.
    pub heal: HealProgress,
    /// Scrub progress.
    pub scrub: ScrubProgress,
    /// Wakes the scrubber for `POST /scrub`.
    pub scrub_now: tokio::sync::Notify,
    /// Serialises refcount updates made by this node (they are CAS loops anyway).
    pub refs_lock: tokio::sync::Mutex<()>,
    /// This node's shared assets (`[share] dirs`).
    pub assets: Arc<super::assets::AssetShelf>,
    /// Rebalancing counters.
    pub rebalance: super::rebalance::RebalanceProgress,
}

/// Shared handle.
pub type Shared = Arc<Chunkstore>;

impl Chunkstore {
    /// Reads a shard from `node` (this node's store directly), verified.
    pub async fn fetch_shard(
        &self,
        view: &MeshView,
        node: NodeId,
        id: ShardHash,
    ) -> Result<Bytes, ShardAccessError> {
        if node == self.node {
            let data = self.local.get(&local_id(&id)).await?;
            return Ok(data);
        }
        let addr = view
            .get(&node)
            .and_then(|n| n.addr)
            .ok_or(ShardAccessError::NoAddress(node))?;
        Ok(self.peers.get(node, addr, id).await?)
    }

    /// Stores a shard on `node`; returns once durable there.
    pub async fn store_shard(
        &self,
        view: &MeshView,
        node: NodeId,
        id: ShardHash,
        data: Bytes,
    ) -> Result<(), ShardAccessError> {
        if node == self.node {
            if !self.local.contains(&local_id(&id)) {
                self.local.put(local_id(&id), data).await?;
            }
            return Ok(());
        }
        let addr = view
            .get(&node)
            .and_then(|n| n.addr)
            .ok_or(ShardAccessError::NoAddress(node))?;
        self.peers.put(node, addr, id, data).await?;
        Ok(())
    }

    /// Deletes a shard on `node`.
    pub async fn delete_shard(
        &self,
        view: &MeshView,
        node: NodeId,
        id: ShardHash,
    ) -> Result<bool, ShardAccessError> {
        if node == self.node {
            return Ok(self.local.delete(&local_id(&id)).await?);
        }
        let addr = view
            .get(&node)
            .and_then(|n| n.addr)
            .ok_or(ShardAccessError::NoAddress(node))?;
        Ok(self.peers.delete(node, addr, id).await?)
    }

    /// Whether `node` holds a good copy of the shard.
    pub async fn verify_shard(&self, view: &MeshView, node: NodeId, id: ShardHash) -> bool {
        if node == self.node {
            return self.local.verify(&local_id(&id)).await.is_ok();
        }
        let Some(addr) = view.get(&node).and_then(|n| n.addr) else {
            return false;
        };
        if !view.is_up(&node) {
            return false;
        }
        self.peers.verify(node, addr, id).await.unwrap_or(false)
    }
}

/// Adds to a counter of a progress struct.
pub fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}
