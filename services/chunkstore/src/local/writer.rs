//! The writer thread: appends records to the active segment and makes them durable with one
//! fdatasync per group (group commit), then indexes them and acknowledges.
//!
//! Puts queue on a channel; the thread takes everything queued (plus what arrives within the
//! group-commit window), writes it with io_uring (one `Writev` per record: header + data, no
//! copy) or pwritev, syncs once, writes the index entries and the segment watermark in one
//! RocksDB batch, and only then answers each caller. A failed write or sync truncates the
//! segment back to where the group started, so a refused put leaves nothing behind.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use io_uring::{opcode, types, IoUring};
use tokio::sync::oneshot;

use super::backend::Backend;
use super::capacity::fs_space;
use super::index::{IndexBatch, Location};
use super::record::{RecordHeader, HEADER_LEN};
use super::shared::Shared;
use super::vectored::{pwritev_all, skip};
use super::{ShardId, StoreError};

/// Most writes submitted to the ring at once.
const RING_ENTRIES: u32 = 128;

/// A request to the writer thread.
pub enum Append {
    /// Store a new shard (the caller already hashed it).
    Put {
        /// The shard.
        id: ShardId,
        /// BLAKE3 of `data`.
        hash: [u8; 32],
        /// Its bytes.
        data: Bytes,
        /// Answered once durable and indexed.
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Copy an existing record (compaction); indexed only if the index still points at `from`.
    Relocate {
        /// The record's header as read (its seq is kept).
        header: RecordHeader,
        /// Its data (already verified).
        data: Bytes,
        /// Where it is now.
        from: Location,
        /// `Ok(true)` if moved, `Ok(false)` if the shard was deleted or rewritten meanwhile.
        done: oneshot::Sender<Result<bool, StoreError>>,
    },
}

impl Append {
    fn data_len(&self) -> u64 {
        match self {
            Append::Put { data, .. } | Append::Relocate { data, .. } => data.len() as u64,
        }
    }
}

enum Reply {
    Put(oneshot::Sender<Result<(), StoreError>>),
    Relocate {
        from: Location,
        done: oneshot::Sender<Result<bool, StoreError>>,
    },
}

impl Reply {
    fn fail(self, e: StoreError) {
        match self {
            Reply::Put(d) => {
                let _ = d.send(Err(e));
            }
            Reply::Relocate { done, .. } => {
                let _ = done.send(Err(e));
            }
        }
    }
}

/// A record placed in the group.
struct Pending {
    header: RecordHeader,
    header_bytes: [u8; HEADER_LEN],
    data: Bytes,
    offset: u64,
    reply: Reply,
}

impl Pending {
    fn bufs(&self) -> [&[u8]; 2] {
        [&self.header_bytes, &self.data]
    }
}

/// The records of a group that go to one segment.
struct Run {
    segment: u32,
    start: u64,
    end: u64,
    records: Vec<Pending>,
}

/// Where appends go now.
pub struct ActiveSegment {
    /// Its number.
    pub number: u32,
    /// Its file.
    pub file: Arc<File>,
    /// Bytes appended so far.
    pub end: u64,
}

/// The thread's state.
pub struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Append>,
    ring: Option<IoUring>,
    active: ActiveSegment,
    prealloc_end: u64,
    next_seq: u64,
}

/// Starts the writer thread. `next_seq` is larger than every seq on disk.
pub fn spawn(
    shared: Arc<Shared>,
    rx: Receiver<Append>,
    active: ActiveSegment,
    next_seq: u64,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let ring = match shared.backend.backend {
        Backend::IoUring => Some(
            IoUring::new(RING_ENTRIES).map_err(|e| StoreError::io("creating the write ring", e))?,
        ),
        Backend::Pread => None,
    };
    let prealloc_end = active.end;
    let mut w = Writer {
        shared,
        rx,
        ring,
        active,
        prealloc_end,
        next_seq,
    };
    std::thread::Builder::new()
        .name("shard-writer".into())
        .spawn(move || w.run())
        .map_err(|e| StoreError::io("starting the writer thread", e))
}

fn classify(context: &str, e: io::Error, needed: u64, reserve: u64) -> StoreError {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => StoreError::Full {
            needed,
            available: 0,
            reserve,
        },
        _ => StoreError::io(context, e),
    }
}

/// The same error for every record of a failed group (`StoreError` is not `Clone`).
fn replicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::Full {
            needed,
            available,
            reserve,
        } => StoreError::Full {
            needed: *needed,
            available: *available,
            reserve: *reserve,
        },
        StoreError::Io { context, source } => StoreError::io(
            context.clone(),
            io::Error::new(source.kind(), source.to_string()),
        ),
        StoreError::Index(m) => StoreError::Index(m.clone()),
        other => StoreError::io("append failed", io::Error::other(other.to_string())),
    }
}

impl Writer {
    fn run(&mut self) {
        let opts = self.shared.opts.clone();
        while let Ok(first) = self.rx.recv() {
            let mut bytes = first.data_len();
            let mut group = vec![first];
            if !opts.group_commit_window.is_zero() {
                let deadline = Instant::now() + opts.group_commit_window;
                while bytes < opts.max_group_bytes {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(left) {
                        Ok(op) => {
                            bytes += op.data_len();
                            group.push(op);
                        }
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
            while bytes < opts.max_group_bytes {
                match self.rx.try_recv() {
                    Ok(op) => {
                        bytes += op.data_len();
                        group.push(op);
                    }
                    Err(_) => break,
                }
            }
            let _span =
                tracing::debug_span!("group_commit", records = group.len(), bytes).entered();
            self.commit(group);
        }
    }

    fn commit(&mut self, group: Vec<Append>) {
        let opts = &self.shared.opts;
        // Headers; puts of ids already stored are acknowledged without writing (idempotent).
        let mut placed: Vec<(RecordHeader, Bytes, Reply)> = Vec::with_capacity(group.len());
        for op in group {
            match op {
                Append::Put {
                    id,
                    hash,
                    data,
                    done,
                } => match self.shared.index.get(&id) {
                    Ok(Some(_)) => {
                        let _ = done.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                    Ok(None) => {
                        let header = RecordHeader {
                            seq: self.next_seq,
                            id,
                            len: data.len() as u64,
                            hash,
                        };
                        self.next_seq += 1;
                        placed.push((header, data, Reply::Put(done)));
                    }
                },
                Append::Relocate {
                    header,
                    data,
                    from,
                    done,
                } => placed.push((header, data, Reply::Relocate { from, done })),
            }
        }
        if placed.is_empty() {
            return;
        }

        // Offsets, segment rollover and the free-space check.
        let space = fs_space(self.shared.segments.dir()).ok();
        let reserve = space.map(|s| opts.reserve_for(s.total_bytes)).unwrap_or(0);
        let mut budget = space
            .map(|s| s.available_bytes.saturating_sub(reserve))
            .unwrap_or(u64::MAX);
        let mut runs: Vec<Run> = Vec::new();
        let (mut seg, mut end, mut prealloc_end) =
            (self.active.number, self.active.end, self.prealloc_end);
        for (header, data, reply) in placed {
            let rec = header.record_len();
            let (mut s, mut e, mut p) = (seg, end, prealloc_end);
            if e > 0 && e + rec > opts.segment_bytes {
                (s, e, p) = (seg + 1, 0, 0);
            }
            let new_alloc = (e + rec).saturating_sub(e.max(p));
            if new_alloc > budget {
                reply.fail(StoreError::Full {
                    needed: rec,
                    available: space.map(|s| s.available_bytes).unwrap_or(0),
                    reserve,
                });
                continue;
            }
            budget -= new_alloc;
            (seg, end, prealloc_end) = (s, e + rec, p);
            if runs.last().map(|r| r.segment) != Some(s) {
                runs.push(Run {
                    segment: s,
                    start: e,
                    end: e,
                    records: Vec::new(),
                });
            }
            if let Some(run) = runs.last_mut() {
                run.end = e + rec;
                run.records.push(Pending {
                    header_bytes: header.encode(),
                    header,
                    data,
                    offset: e,
                    reply,
                });
            }
        }

        // Write and sync each run; stop at the first failure.
        let mut durable: Vec<Run> = Vec::with_capacity(runs.len());
        let mut runs = runs.into_iter();
        while let Some(run) = runs.next() {
            let outcome = self.write_run(&run, reserve);
            match outcome {
                Ok(()) => {
                    self.active.end = run.end;
                    durable.push(run);
                }
                Err(e) => {
                    tracing::warn!(error = %e, segment = run.segment, "append failed; group refused");
                    if run.segment == self.active.number {
                        // Nothing of a refused put may stay: cut the segment back.
                        if let Err(te) = self.active.file.set_len(run.start) {
                            tracing::error!(error = %te, "truncating after a failed append");
                        }
                        self.active.end = run.start;
                        self.prealloc_end = run.start;
                    }
                    for p in run.records {
                        p.reply.fail(replicate(&e));
                    }
                    for later in runs.by_ref() {
                        for p in later.records {
                            p.reply.fail(replicate(&e));
                        }
                    }
                    break;
                }
            }
        }
        if durable.is_empty() {
            return;
        }
        self.index(durable);
    }

    /// Makes `run` durable in its segment (rolling over to it first if it is a new one).
    fn write_run(&mut self, run: &Run, reserve: u64) -> Result<(), StoreError> {
        if run.segment != self.active.number {
            self.roll(run.segment, reserve)?;
        }
        let needed = run.end - run.start;
        let file = self.active.file.clone();
        let fd = file.as_raw_fd();
        match self.ring.as_mut() {
            Some(ring) => write_uring(ring, fd, &run.records)
                .map_err(|e| classify("io_uring append", e, needed, reserve))?,
            None => {
                for p in &run.records {
                    pwritev_all(fd, &p.bufs(), p.offset)
                        .map_err(|e| classify("pwritev append", e, needed, reserve))?;
                }
                file.sync_data()
                    .map_err(|e| classify("fdatasync", e, needed, reserve))?;
            }
        }
        self.prealloc_end = self.prealloc_end.max(run.end);
        let c = &self.shared.counters;
        c.syncs.fetch_add(1, Ordering::Relaxed);
        c.records_appended
            .fetch_add(run.records.len() as u64, Ordering::Relaxed);
        c.bytes_appended.fetch_add(needed, Ordering::Relaxed);
        Ok(())
    }

    /// Seals the active segment and starts segment `n`.
    fn roll(&mut self, n: u32, reserve: u64) -> Result<(), StoreError> {
        // Give back the preallocated blocks past the end of the sealed segment.
        if let Err(e) = self.active.file.set_len(self.active.end) {
            tracing::warn!(error = %e, segment = self.active.number, "trimming a sealed segment");
        }
        let opts = &self.shared.opts;
        let prealloc = match fs_space(self.shared.segments.dir()) {
            Ok(s)
                if opts.preallocate
                    && s.available_bytes
                        > reserve.saturating_add(opts.segment_bytes.saturating_mul(2)) =>
            {
                opts.segment_bytes
            }
            _ => 0,
        };
        let file = {
            // Under the index lock, so that `check()` never sees a segment it has no figures for.
            let shared = self.shared.clone();
            let mut accounts = shared.lock();
            let file = shared.segments.create(n, prealloc)?;
            accounts.extend(n, 0);
            file
        };
        self.active = ActiveSegment {
            number: n,
            file,
            end: 0,
        };
        self.prealloc_end = prealloc;
        self.shared.active_segment.store(n, Ordering::Release);
        tracing::debug!(segment = n, "new segment");
        Ok(())
    }

    /// Indexes the durable runs and answers their callers.
    fn index(&mut self, durable: Vec<Run>) {
        let shared = self.shared.clone();
        let mut accounts = shared.lock();
        let mut batch = IndexBatch::default();
        let mut fresh: HashMap<ShardId, Location> = HashMap::new();
        let mut added: Vec<Location> = Vec::new();
        let mut removed: Vec<Location> = Vec::new();
        let mut answers: Vec<(Reply, Result<bool, StoreError>)> = Vec::new();
        let mut ends: Vec<(u32, u64)> = Vec::new();
        for run in durable {
            ends.push((run.segment, run.end));
            batch.watermark(run.segment, run.end);
            for p in run.records {
                let h = p.header;
                let loc = Location {
                    segment: run.segment,
                    offset: p.offset,
                    len: h.len,
                    seq: h.seq,
                    hash: h.hash,
                };
                let current = match fresh.get(&h.id) {
                    Some(l) => Ok(Some(*l)),
                    None => shared.index.get(&h.id),
                };
                let outcome = match (&p.reply, current) {
                    (_, Err(e)) => Err(e),
                    (Reply::Put(_), Ok(Some(_))) => {
                        // A second put of the id in this group: its record stays dead.
                        batch.tombstone(run.segment, h.id, h.seq);
                        Ok(false)
                    }
                    (Reply::Put(_), Ok(None)) => {
                        batch.put(h.id, loc);
                        fresh.insert(h.id, loc);
                        added.push(loc);
                        Ok(true)
                    }
                    (Reply::Relocate { from, .. }, Ok(Some(cur))) if cur == *from => {
                        batch.put(h.id, loc);
                        fresh.insert(h.id, loc);
                        removed.push(*from);
                        added.push(loc);
                        Ok(true)
                    }
                    (Reply::Relocate { .. }, Ok(_)) => {
                        // Deleted (or rewritten) meanwhile: the copy stays dead.
                        batch.tombstone(run.segment, h.id, h.seq);
                        Ok(false)
                    }
                };
                answers.push((p.reply, outcome));
            }
        }
        match shared.index.write(batch, false) {
            Ok(()) => {
                for (n, end) in ends {
                    accounts.extend(n, end);
                }
                for l in &removed {
                    accounts.remove(l);
                }
                for l in &added {
                    accounts.add(l);
                }
                drop(accounts);
                for (reply, outcome) in answers {
                    match reply {
                        Reply::Put(d) => {
                            let _ = d.send(outcome.map(|_| ()));
                        }
                        Reply::Relocate { done, .. } => {
                            let _ = done.send(outcome);
                        }
                    }
                }
            }
            Err(e) => {
                drop(accounts);
                // The records are durable but unindexed: recovery will index them at the next
                // open (they are past the watermark); until then they are invisible.
                tracing::error!(error = %e, "index write failed after a durable append");
                for (reply, _) in answers {
                    reply.fail(StoreError::Index(e.to_string()));
                }
            }
        }
    }
}

/// Submits `sqe`, flushing the submission queue first when it is full.
fn push(ring: &mut IoUring, sqe: &io_uring::squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: the buffers the entry points at outlive its completion (the callers wait for
        // every completion before returning).
        if unsafe { ring.submission().push(sqe) }.is_ok() {
            return Ok(());
        }
        submit(ring, 0)?;
    }
}

fn submit(ring: &IoUring, want: usize) -> io::Result<usize> {
    loop {
        match ring.submit_and_wait(want) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Waits for `n` completions; returns (user_data, result) pairs.
fn reap(ring: &mut IoUring, n: usize) -> io::Result<Vec<(u64, i32)>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        if out.len() < n {
            submit(ring, 1)?;
        }
    }
    Ok(out)
}

/// Writes `records` through the ring and fdatasyncs `fd` once: the writes of the last chunk
/// and the sync go in one submission, the sync marked `IO_DRAIN` so that it starts only after
/// every write before it completed.
fn write_uring(ring: &mut IoUring, fd: i32, records: &[Pending]) -> io::Result<()> {
    const SYNC_TAG: u64 = u64::MAX;
    let chunks: Vec<&[Pending]> = records.chunks(RING_ENTRIES as usize / 2).collect();
    let mut resync = false;
    for (c, chunk) in chunks.iter().enumerate() {
        let last = c + 1 == chunks.len();
        let iovecs: Vec<[libc::iovec; 2]> = chunk
            .iter()
            .map(|p| {
                p.bufs().map(|b| libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                })
            })
            .collect();
        for (i, p) in chunk.iter().enumerate() {
            let sqe = opcode::Writev::new(types::Fd(fd), iovecs[i].as_ptr(), 2)
                .offset(p.offset)
                .build()
                .user_data(i as u64);
            push(ring, &sqe)?;
        }
        let mut want = chunk.len();
        if last {
            let sync = opcode::Fsync::new(types::Fd(fd))
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .flags(io_uring::squeue::Flags::IO_DRAIN)
                .user_data(SYNC_TAG);
            push(ring, &sync)?;
            want += 1;
        }
        submit(ring, want)?;
        let mut first_err = None;
        for (tag, res) in reap(ring, want)? {
            if tag == SYNC_TAG {
                if res < 0 {
                    first_err.get_or_insert(io::Error::from_raw_os_error(-res));
                }
                continue;
            }
            let Some(p) = chunk.get(tag as usize) else {
                continue;
            };
            let total = HEADER_LEN + p.data.len();
            if res < 0 {
                first_err.get_or_insert(io::Error::from_raw_os_error(-res));
            } else if (res as usize) < total {
                // Short write (rare: signals, quota edges): finish it synchronously, and sync
                // again below (the drained sync may not have covered it).
                resync = true;
                if let Err(e) =
                    pwritev_all(fd, &skip(&p.bufs(), res as usize), p.offset + res as u64)
                {
                    first_err.get_or_insert(e);
                }
            }
        }
        // Every completion of the chunk is in, so the iovecs may go now.
        drop(iovecs);
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    if resync {
        // SAFETY: plain syscall on a descriptor the caller keeps open.
        if unsafe { libc::fdatasync(fd) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
