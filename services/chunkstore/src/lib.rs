//! The mesh store (`hyphae chunkstore`): files cut into chunks, encrypted, erasure-coded into
//! shards that live on distinct nodes, healed and scrubbed by the mesh itself.
//!
//! The design is in `docs/storage.md`; the map of the modules is in `docs/ARCHITECTURE.md`.
//! The pure parts (no I/O): [`chunking`], [`chunk_crypto`], [`erasure`], [`redundancy`],
//! [`placement`], [`manifest`], [`pipeline`], [`assets`]. The local shard store is [`local`].

pub mod asset_rpc;
pub mod asset_scan;
pub mod assets;
pub mod chunk_crypto;
pub mod chunking;
pub mod coordinator_client;
pub mod erasure;
pub mod ids;
pub mod local;
pub mod manifest;
pub mod manifest_split;
pub mod pipeline;
pub mod placement;
pub mod rebalance_plan;
pub mod redundancy;
pub mod service;
pub mod shard_rpc;

pub use service::{run, ChunkstoreError};
