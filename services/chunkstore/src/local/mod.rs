//! The local shard store: this node's shards, appended to segment files through io_uring and
//! indexed in RocksDB, every read verified against the BLAKE3 recorded at put time.
//!
//! The distributed layer (chunking, erasure coding, placement, healing) stands on this API:
//! [`ShardStore::put`] is durable when it returns, [`ShardStore::get`] never returns bytes that
//! differ from what was put, and a crash at any moment leaves a store that [`ShardStore::open`]
//! brings back consistent with every acknowledged put. The on-disk format and the crash-safety
//! argument are in `docs/storage.md` ("The local shard store").
//!
//! Map: [`record`] (the record header), [`index`] (RocksDB), [`segments`] (the files),
//! [`writer`] (group commit thread), [`reader`] (read ring), [`recovery`] (open-time repair),
//! [`compaction`], [`scrub`] (verify, scrub, check), [`backend`] (io_uring probe), [`capacity`].

mod accounts;
pub mod backend;
pub mod capacity;
pub mod compaction;
mod error;
mod id;
pub mod index;
mod options;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod scrub;
pub mod segments;
mod shared;
mod vectored;
pub mod writer;

pub use backend::{probe_io_uring, Backend, BackendInfo};
pub use compaction::CompactReport;
pub use error::StoreError;
pub use id::{ParseShardIdError, ShardId};
pub use options::StoreOptions;
pub use recovery::RecoveryReport;
pub use scrub::{CheckReport, ScrubReport};

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::oneshot;

use index::{Index, IndexBatch, Location};
use reader::Reader;
use record::{RecordHeader, HEADER_LEN};
use shared::Shared;
use writer::Append;

/// Figures for `/status`, metrics and `hyphae doctor`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoreStats {
    /// Shards stored.
    pub shards: u64,
    /// Sum of their lengths.
    pub live_bytes: u64,
    /// Bytes of the segment files (live records, headers and garbage awaiting compaction).
    pub on_disk_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Size of the filesystem holding the store.
    pub fs_total_bytes: u64,
    /// Its free space available to the store.
    pub fs_available_bytes: u64,
    /// Free space puts leave alone.
    pub reserve_bytes: u64,
    /// The I/O path.
    pub backend: Backend,
    /// Why io_uring is not used, when it is not.
    pub backend_fallback_reason: Option<String>,
    /// What the last open repaired.
    pub recovery: RecoveryReport,
    /// Group commits (fdatasyncs) since open; `records_appended / syncs` is the batching.
    pub syncs: u64,
    /// Records appended since open (puts and compaction copies).
    pub records_appended: u64,
    /// Bytes appended since open, headers included.
    pub bytes_appended: u64,
    /// Shards read since open.
    pub reads: u64,
    /// Reads since open that failed verification.
    pub corrupt_reads: u64,
}

/// This node's shard store. Cheap to clone (one `Arc`); all clones share the same threads.
#[derive(Clone)]
pub struct ShardStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    writer_tx: Mutex<Option<Sender<Append>>>,
    reader: Reader,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    compacting: AtomicBool,
    /// One compaction pass at a time. Shared (an `Arc`) so that a background pass can hold it
    /// while it lets go of the store itself (see `spawn_compaction` and `close`).
    compaction_lock: Arc<tokio::sync::Mutex<()>>,
    recovery: RecoveryReport,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channels ends the threads; joining them closes the files before the
        // store can be reopened.
        if let Ok(mut tx) = self.writer_tx.lock() {
            tx.take();
        }
        if let Reader::Uring { tx, wake } = std::mem::replace(&mut self.reader, Reader::Pread) {
            // Drop the sender first, then wake the thread so that it sees the disconnection.
            drop(tx);
            reader::wake(&wake);
        }
        if let Ok(mut threads) = self.threads.lock() {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

impl std::fmt::Debug for ShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStore")
            .field("dir", &self.inner.shared.dir)
            .field("backend", &self.inner.shared.backend.backend)
            .finish()
    }
}

/// Takes `<dir>/LOCK` exclusively: a second opener (another process, or this one) is refused
/// before it can touch the index (which `open` would otherwise take for damaged and rebuild).
fn lock_dir(dir: &Path) -> Result<std::fs::File, StoreError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(StoreError::io(
            format!(
                "{} is in use by another opener of the shard store",
                dir.display()
            ),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(f)
}

impl ShardStore {
    /// Opens (creating if needed) the store in `dir`: `dir/segments/` holds the segment files,
    /// `dir/index/` the RocksDB index. Recovers from any crash first (see [`recovery`]).
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<ShardStore, StoreError> {
        opts.validate()?;
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        let lock_file = lock_dir(dir)?;
        let backend = backend::choose(opts.force_pread);
        let segments = segments::Segments::open(&dir.join("segments"))?;
        let index_path = dir.join("index");
        let (index, rebuilt) = match Index::open(&index_path) {
            Ok(i) => (i, false),
            Err(e) => {
                // The segments hold everything the index does: set the broken index aside
                // (for a post-mortem) and rebuild it from them.
                let aside = dir.join(format!(
                    "index.broken-{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0)
                ));
                tracing::error!(error = %e, aside = %aside.display(), "shard index unusable; rebuilding from segments");
                std::fs::rename(&index_path, &aside)
                    .map_err(|e| StoreError::io("setting the broken index aside", e))?;
                (Index::open(&index_path)?, true)
            }
        };
        let recovered = recovery::recover(&index, &segments, &opts)?;
        let mut report = recovered.report;
        report.index_rebuilt = rebuilt;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            index,
            segments,
            accounts: Mutex::new(recovered.accounts),
            backend,
            active_segment: AtomicU32::new(recovered.active.number),
            counters: shared::Counters::default(),
            lock_file,
        });
        let mut threads = Vec::new();
        let reader = match shared.backend.backend {
            Backend::IoUring => {
                let (reader, handle) =
                    reader::spawn_uring(opts.read_queue_depth, opts.uring_read_punt)?;
                threads.push(handle);
                reader
            }
            Backend::Pread => Reader::Pread,
        };
        let (wtx, wrx) = std::sync::mpsc::channel();
        threads.push(writer::spawn(
            shared.clone(),
            wrx,
            recovered.active,
            recovered.next_seq,
        )?);
        tracing::info!(dir = %dir.display(), backend = %shared.backend.backend, "shard store open");
        Ok(ShardStore {
            inner: Arc::new(Inner {
                shared,
                writer_tx: Mutex::new(Some(wtx)),
                reader,
                threads: Mutex::new(threads),
                compacting: AtomicBool::new(false),
                compaction_lock: Arc::new(tokio::sync::Mutex::new(())),
                recovery: report,
            }),
        })
    }

    /// Lets go of this handle once no compaction pass is running or queued ahead of it, so
    /// that when it was the last handle the store's files (and its `LOCK`) are closed on
    /// return and the directory can be opened again at once. A plain `drop` closes them too,
    /// but only after a background pass in flight has finished.
    pub async fn close(self) {
        let _no_pass = self.inner.compaction_lock.clone().lock_owned().await;
        drop(self);
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    pub(crate) fn send(&self, op: Append) -> Result<(), StoreError> {
        let tx = self
            .inner
            .writer_tx
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)?;
        tx.send(op).map_err(|_| StoreError::Closed)
    }

    /// Stores `data` under `id`. Returns once the record is on disk (fdatasync'd, possibly
    /// together with other puts) and indexed. A put of an id already stored succeeds without
    /// writing (ids name content, so the bytes are the same); to replace a corrupt shard,
    /// delete it first.
    #[tracing::instrument(level = "debug", skip(self, data), fields(shard = %id, len = data.len()))]
    pub async fn put(&self, id: ShardId, data: Bytes) -> Result<(), StoreError> {
        let max = self.shared().opts.max_shard_bytes;
        if data.len() as u64 > max {
            return Err(StoreError::TooLarge {
                len: data.len() as u64,
                max,
            });
        }
        if self.contains(&id) {
            return Ok(());
        }
        let hash = if data.len() > 256 << 10 {
            let d = data.clone();
            tokio::task::spawn_blocking(move || *blake3::hash(&d).as_bytes())
                .await
                .map_err(|e| StoreError::io("hashing", std::io::Error::other(e.to_string())))?
        } else {
            *blake3::hash(&data).as_bytes()
        };
        let (done, rx) = oneshot::channel();
        self.send(Append::Put {
            id,
            hash,
            data,
            done,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The shard's bytes, verified against the BLAKE3 recorded at put time.
    #[tracing::instrument(level = "debug", skip(self), fields(shard = %id))]
    pub async fn get(&self, id: &ShardId) -> Result<Bytes, StoreError> {
        // A compaction may move the record between the lookup and the read: look up again.
        for _ in 0..3 {
            let loc = self
                .shared()
                .index
                .get(id)?
                .ok_or(StoreError::NotFound(*id))?;
            let Some(file) = self.shared().segments.get(loc.segment) else {
                if self.shared().index.get(id)? != Some(loc) {
                    continue;
                }
                return Err(StoreError::Corrupt {
                    id: *id,
                    reason: format!("segment {} is missing", loc.segment),
                });
            };
            return self.read_record(id, &loc, file).await;
        }
        Err(StoreError::Corrupt {
            id: *id,
            reason: "the record kept moving (compaction) while being read".into(),
        })
    }

    /// Reads the record at `loc` and checks it is `id`'s, whole and unaltered.
    pub(crate) async fn read_record(
        &self,
        id: &ShardId,
        loc: &Location,
        file: Arc<std::fs::File>,
    ) -> Result<Bytes, StoreError> {
        self.shared().counters.reads.fetch_add(1, Ordering::Relaxed);
        let result = self.read_verified(id, loc, file).await;
        if matches!(result, Err(StoreError::Corrupt { .. })) {
            self.shared()
                .counters
                .corrupt_reads
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn read_verified(
        &self,
        id: &ShardId,
        loc: &Location,
        file: Arc<std::fs::File>,
    ) -> Result<Bytes, StoreError> {
        let total = usize::try_from(loc.record_len()).map_err(|_| StoreError::Corrupt {
            id: *id,
            reason: "record length overflows".into(),
        })?;
        let buf = match self.inner.reader.read(file, loc.offset, total).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(StoreError::Corrupt {
                    id: *id,
                    reason: format!("record at {}:{} is cut short", loc.segment, loc.offset),
                })
            }
            Err(e) => {
                return Err(StoreError::io(
                    format!("reading segment {} at {}", loc.segment, loc.offset),
                    e,
                ))
            }
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            id: *id,
            reason: format!("{reason} (segment {} offset {})", loc.segment, loc.offset),
        };
        let header = RecordHeader::decode(&buf).map_err(|e| corrupt(&format!("header: {e}")))?;
        if header.id != *id || header.len != loc.len || header.hash != loc.hash {
            return Err(corrupt("header does not match the index"));
        }
        let data = Bytes::from(buf).slice(HEADER_LEN..);
        let ok = if data.len() > 256 << 10 {
            let d = data.clone();
            tokio::task::spawn_blocking(move || header.matches(&d))
                .await
                .unwrap_or(false)
        } else {
            header.matches(&data)
        };
        if !ok {
            return Err(corrupt("data does not match its BLAKE3"));
        }
        Ok(data)
    }

    /// Removes the shard; `Ok(false)` when it was not stored. Durable when it returns (the
    /// index WAL is synced). May start a compaction of the segment it leaves sparse.
    #[tracing::instrument(level = "debug", skip(self), fields(shard = %id))]
    pub async fn delete(&self, id: &ShardId) -> Result<bool, StoreError> {
        let this = self.clone();
        let id = *id;
        let (removed, sparse) = tokio::task::spawn_blocking(move || this.delete_blocking(&id))
            .await
            .map_err(|e| StoreError::io("delete task", std::io::Error::other(e.to_string())))??;
        if sparse && self.shared().opts.auto_compact {
            self.spawn_compaction();
        }
        Ok(removed)
    }

    fn delete_blocking(&self, id: &ShardId) -> Result<(bool, bool), StoreError> {
        let shared = self.shared();
        let sparse;
        {
            let mut accounts = shared.lock();
            let Some(loc) = shared.index.get(id)? else {
                return Ok((false, false));
            };
            // The tombstone keeps recovery from indexing the dead record again should its
            // segment ever be scanned from the start (see `recovery`).
            let mut batch = IndexBatch::default();
            batch.delete(*id);
            batch.tombstone(loc.segment, *id, loc.seq);
            shared.index.write(batch, false)?;
            accounts.remove(&loc);
            let active = shared.active_segment.load(Ordering::Acquire);
            sparse = loc.segment != active
                && accounts
                    .segments
                    .get(&loc.segment)
                    .is_some_and(|a| a.live_ratio() < shared.opts.compaction_threshold);
        }
        // Outside the lock: one WAL sync covers every delete made so far.
        shared.index.sync()?;
        Ok((true, sparse))
    }

    /// Whether the shard is indexed here (no read, no verification).
    pub fn contains(&self, id: &ShardId) -> bool {
        matches!(self.shared().index.get(id), Ok(Some(_)))
    }

    /// Every stored shard id, in id order.
    pub fn list(&self) -> Vec<ShardId> {
        let mut out = Vec::new();
        let _ = self.shared().index.for_each(|id, _| {
            out.push(id);
            true
        });
        out
    }

    /// Current figures.
    pub fn stats(&self) -> StoreStats {
        let shared = self.shared();
        let (shards, live_bytes, on_disk_bytes, segments) = {
            let a = shared.lock();
            (
                a.shards,
                a.live_data_bytes,
                a.on_disk_bytes(),
                a.segments.len() as u64,
            )
        };
        let space = capacity::fs_space(shared.segments.dir()).ok();
        StoreStats {
            shards,
            live_bytes,
            on_disk_bytes,
            segments,
            fs_total_bytes: space.map_or(0, |s| s.total_bytes),
            fs_available_bytes: space.map_or(0, |s| s.available_bytes),
            reserve_bytes: space.map_or(0, |s| shared.opts.reserve_for(s.total_bytes)),
            backend: shared.backend.backend,
            backend_fallback_reason: shared.backend.fallback_reason.clone(),
            recovery: self.inner.recovery.clone(),
            syncs: shared.counters.syncs.load(Ordering::Relaxed),
            records_appended: shared.counters.records_appended.load(Ordering::Relaxed),
            bytes_appended: shared.counters.bytes_appended.load(Ordering::Relaxed),
            reads: shared.counters.reads.load(Ordering::Relaxed),
            corrupt_reads: shared.counters.corrupt_reads.load(Ordering::Relaxed),
        }
    }

    /// The I/O path in use and, if not io_uring, why.
    pub fn backend(&self) -> &BackendInfo {
        &self.shared().backend
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.shared().dir
    }
}
