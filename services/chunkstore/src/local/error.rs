//! What can go wrong in the local shard store, in terms a caller can act on.

use std::io;

use super::ShardId;

/// Errors of the local shard store. `NotFound`, `Corrupt` and `Full` are the ones the
/// distributed layer reacts to (fetch elsewhere, heal, place elsewhere).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No shard with this id is stored here.
    #[error("shard {0} is not stored here")]
    NotFound(ShardId),
    /// The bytes on disk do not match what was recorded at put time; the data is never returned.
    #[error("shard {id} is corrupt: {reason}")]
    Corrupt {
        /// The shard.
        id: ShardId,
        /// What did not match.
        reason: String,
    },
    /// Accepting the put would eat into the free space reserved for the filesystem's other
    /// users (the index, logs); nothing of the refused shard is kept.
    #[error(
        "store is full: {needed} bytes needed, {available} available on the filesystem, {reserve} reserved"
    )]
    Full {
        /// Bytes the record needs on disk.
        needed: u64,
        /// Bytes the filesystem offers unprivileged writers.
        available: u64,
        /// Bytes kept free by `StoreOptions::reserve_bytes`.
        reserve: u64,
    },
    /// A shard larger than `StoreOptions::max_shard_bytes`.
    #[error("shard of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// RocksDB (the index) failed.
    #[error("shard index: {0}")]
    Index(String),
    /// The store's I/O threads are gone (the store is being dropped or a thread died).
    #[error("the shard store is closed")]
    Closed,
    /// Options that cannot work (e.g. a zero segment size).
    #[error("invalid store options: {0}")]
    InvalidOptions(String),
}

impl StoreError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }

    /// A stable snake_case code for JSON error bodies and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "not_found",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Full { .. } => "full",
            StoreError::TooLarge { .. } => "too_large",
            StoreError::Io { .. } => "io",
            StoreError::Index(_) => "index",
            StoreError::Closed => "closed",
            StoreError::InvalidOptions(_) => "invalid_options",
        }
    }
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Index(e.into_string())
    }
}
