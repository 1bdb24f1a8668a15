//! State shared by the store handle, its writer thread and its background tasks.

use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Mutex, MutexGuard};

use super::accounts::Accounts;
use super::backend::BackendInfo;
use super::index::Index;
use super::segments::Segments;
use super::StoreOptions;

/// Everything but the channels to the I/O threads (so that the threads can hold it without
/// keeping themselves alive).
pub struct Shared {
    /// The store's directory.
    pub dir: PathBuf,
    /// Options it was opened with.
    pub opts: StoreOptions,
    /// The RocksDB index.
    pub index: Index,
    /// The segment files.
    pub segments: Segments,
    /// The index lock: every index mutation happens while holding it, so that "check the index,
    /// then change it" is atomic, and the accounts stay equal to the index.
    pub accounts: Mutex<Accounts>,
    /// The I/O path in use.
    pub backend: BackendInfo,
    /// The segment being appended to (compaction never touches it).
    pub active_segment: AtomicU32,
}

impl Shared {
    /// Takes the index lock (a poisoned lock is still usable: the accounts are only
    /// figures, and `check()` recomputes them).
    pub fn lock(&self) -> MutexGuard<'_, Accounts> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }
}
