//! Tuning knobs of the local shard store, with defaults that suit a node's data disk.

use std::time::Duration;

use super::StoreError;

/// Options for [`super::ShardStore::open`]. `Default` is what the chunkstore service uses.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A segment file is sealed and a new one started once it reaches this size (a shard larger
    /// than this gets a segment of its own). Default 256 MiB.
    pub segment_bytes: u64,
    /// After the first put of a group arrives, wait this long for more before writing and
    /// syncing them together. Zero (the default) still batches every put that queued up while
    /// the previous group was syncing, which is where group commit gets its gain.
    pub group_commit_window: Duration,
    /// Most bytes written by one group (one fdatasync). Default 64 MiB.
    pub max_group_bytes: u64,
    /// Use pread/pwrite even where io_uring works (tests of the fallback, benchmarks).
    pub force_pread: bool,
    /// A sealed segment whose live bytes fall below this fraction of its size is compacted
    /// (its live shards copied to the active segment, the file removed). Default 0.5.
    pub compaction_threshold: f64,
    /// Compact automatically after deletes leave a segment sparse. Default true.
    pub auto_compact: bool,
    /// Free space of the filesystem that puts never use (for the index, logs and the other
    /// services). `None` (default): 2% of the filesystem, at least 64 MiB and at most 4 GiB.
    pub reserve_bytes: Option<u64>,
    /// Largest shard accepted. Default 256 MiB.
    pub max_shard_bytes: u64,
    /// Depth of the read ring (reads in flight at once). Default 64.
    pub read_queue_depth: u32,
    /// Preallocate each new segment (fallocate, keep size) so that fdatasync after an append
    /// has no block allocation to write. Default true.
    pub preallocate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_bytes: 256 << 20,
            group_commit_window: Duration::ZERO,
            max_group_bytes: 64 << 20,
            force_pread: false,
            compaction_threshold: 0.5,
            auto_compact: true,
            reserve_bytes: None,
            max_shard_bytes: 256 << 20,
            read_queue_depth: 64,
            preallocate: true,
        }
    }
}

impl StoreOptions {
    /// Refuses combinations that cannot work.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if self.segment_bytes < 4096 {
            return Err(StoreError::InvalidOptions(
                "segment_bytes must be at least 4096".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.compaction_threshold) {
            return Err(StoreError::InvalidOptions(
                "compaction_threshold must be within 0..=1".into(),
            ));
        }
        if self.max_shard_bytes == 0 || self.max_shard_bytes > u64::from(u32::MAX) / 2 {
            return Err(StoreError::InvalidOptions(
                "max_shard_bytes must be within 1..=2 GiB".into(),
            ));
        }
        if self.read_queue_depth == 0 || self.read_queue_depth > 4096 {
            return Err(StoreError::InvalidOptions(
                "read_queue_depth must be within 1..=4096".into(),
            ));
        }
        if self.max_group_bytes == 0 {
            return Err(StoreError::InvalidOptions(
                "max_group_bytes must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The reserve for a filesystem of `fs_bytes`.
    pub(crate) fn reserve_for(&self, fs_bytes: u64) -> u64 {
        self.reserve_bytes
            .unwrap_or_else(|| (fs_bytes / 50).clamp(64 << 20, 4 << 30))
    }
}
