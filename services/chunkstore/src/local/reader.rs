//! Reads of whole records: through an io_uring ring on a dedicated thread (many in flight), or
//! pread on tokio's blocking pool when io_uring is unavailable.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;

use io_uring::{opcode, types, IoUring};
use tokio::sync::oneshot;

use super::StoreError;

/// One read: `len` bytes at `offset` of `file`.
pub struct ReadRequest {
    file: Arc<File>,
    offset: u64,
    len: usize,
    done: oneshot::Sender<io::Result<Vec<u8>>>,
}

/// The read path.
pub enum Reader {
    /// Requests go to the ring thread, woken through an eventfd the ring polls.
    Uring {
        /// The queue of requests.
        tx: Sender<ReadRequest>,
        /// Written after each send so that a thread waiting on completions picks new reads
        /// up at once (keeping the queue full) instead of at the next completion.
        wake: Arc<OwnedFd>,
    },
    /// pread on the blocking pool.
    Pread,
}

/// Adds one to the eventfd (wakes the ring thread).
pub fn wake(efd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local to an eventfd we own.
    let _ = unsafe { libc::write(efd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

impl Reader {
    /// Reads exactly `len` bytes at `offset`; fewer bytes in the file is `UnexpectedEof`.
    pub async fn read(&self, file: Arc<File>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        match self {
            Reader::Uring { tx, wake: efd } => {
                let (done, rx) = oneshot::channel();
                tx.send(ReadRequest {
                    file,
                    offset,
                    len,
                    done,
                })
                .map_err(|_| io::Error::other("the read thread is gone"))?;
                wake(efd);
                rx.await
                    .map_err(|_| io::Error::other("the read thread dropped a request"))?
            }
            Reader::Pread => tokio::task::spawn_blocking(move || pread_exact(&file, offset, len))
                .await
                .map_err(|e| io::Error::other(format!("read task failed: {e}")))?,
        }
    }
}

/// pread until `len` bytes are in.
pub fn pread_exact(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// A read in flight on the ring.
struct InFlight {
    req: ReadRequest,
    buf: Vec<u8>,
    filled: usize,
}

/// user_data of the eventfd poll (slots are small indices).
const WAKE_TAG: u64 = u64::MAX;

/// Starts the ring thread; it ends when every sender is dropped (and the eventfd written)
/// and nothing is in flight.
///
/// With `punt`, reads are marked `IOSQE_ASYNC`: io_uring hands them straight to its worker
/// threads, which read like `pread` does (with the page cache's readahead of the whole
/// record). Without it, io_uring first tries a non-blocking read and completes cold ones
/// through its async buffered-read path; for records that are not page aligned (64 KiB + a
/// 96-byte header) that measured at half the IOPS here (see docs/benchmarks.md).
pub fn spawn_uring(
    depth: u32,
    punt: bool,
) -> Result<(Reader, std::thread::JoinHandle<()>), StoreError> {
    let flags = if punt {
        io_uring::squeue::Flags::ASYNC
    } else {
        io_uring::squeue::Flags::empty()
    };
    let ring = IoUring::new((depth + 1).next_power_of_two())
        .map_err(|e| StoreError::io("creating the read ring", e))?;
    // SAFETY: eventfd returns a new descriptor or -1.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if raw < 0 {
        return Err(StoreError::io("eventfd", io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor owned by nobody else.
    let efd = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
    let (tx, rx) = std::sync::mpsc::channel();
    let thread_efd = efd.clone();
    let handle = std::thread::Builder::new()
        .name("shard-reader".into())
        .spawn(move || run(ring, rx, &thread_efd, depth as usize, flags))
        .map_err(|e| StoreError::io("starting the read thread", e))?;
    Ok((Reader::Uring { tx, wake: efd }, handle))
}

fn arm_wake(ring: &mut IoUring, efd: &OwnedFd) -> io::Result<()> {
    let sqe = opcode::PollAdd::new(types::Fd(efd.as_raw_fd()), libc::POLLIN as u32)
        .build()
        .user_data(WAKE_TAG);
    // SAFETY: the poll references only the eventfd, which outlives the ring (owned by `run`'s
    // caller for the thread's whole life).
    while unsafe { ring.submission().push(&sqe) }.is_err() {
        ring.submit()?;
    }
    Ok(())
}

fn run(
    mut ring: IoUring,
    rx: Receiver<ReadRequest>,
    efd: &OwnedFd,
    depth: usize,
    flags: io_uring::squeue::Flags,
) {
    let mut slots: Vec<Option<InFlight>> = (0..depth).map(|_| None).collect();
    let mut in_flight = 0usize;
    let mut open = true;
    if let Err(e) = arm_wake(&mut ring, efd) {
        tracing::error!(error = %e, "read ring: cannot poll the wake eventfd");
        return;
    }
    loop {
        // Take every queued request the ring has room for.
        while open && in_flight < depth {
            match rx.try_recv() {
                Ok(req) => {
                    if req.len == 0 {
                        let _ = req.done.send(Ok(Vec::new()));
                        continue;
                    }
                    let slot = slots.iter().position(Option::is_none).unwrap_or(0);
                    slots[slot] = Some(InFlight {
                        buf: Vec::with_capacity(req.len),
                        req,
                        filled: 0,
                    });
                    if let Err(e) = submit_slot(&mut ring, &mut slots, slot, flags) {
                        if let Some(f) = slots[slot].take() {
                            let _ = f.req.done.send(Err(e));
                        }
                        continue;
                    }
                    in_flight += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        if !open && in_flight == 0 {
            return;
        }
        // Submit what was queued and sleep until a read completes or a request arrives.
        if let Err(e) = wait(&ring) {
            for f in slots.iter_mut().filter_map(Option::take) {
                let _ = f
                    .req
                    .done
                    .send(Err(io::Error::new(e.kind(), e.to_string())));
            }
            tracing::error!(error = %e, "read ring failed");
            return;
        }
        let done: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (tag, res) in done {
            if tag == WAKE_TAG {
                let mut count = [0u8; 8];
                // SAFETY: reads 8 bytes into a local from our non-blocking eventfd.
                let _ = unsafe { libc::read(efd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
                if open {
                    if let Err(e) = arm_wake(&mut ring, efd) {
                        tracing::error!(error = %e, "read ring: cannot re-arm the wake poll");
                    }
                }
                continue;
            }
            let slot = tag as usize;
            let Some(f) = slots.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let outcome = if res < 0 {
                Some(Err(io::Error::from_raw_os_error(-res)))
            } else if res == 0 {
                Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "record extends past the end of its segment",
                )))
            } else {
                f.filled += res as usize;
                if f.filled >= f.req.len {
                    None
                } else {
                    // Short read: ask for the rest.
                    match submit_slot(&mut ring, &mut slots, slot, flags) {
                        Ok(()) => continue,
                        Err(e) => Some(Err(e)),
                    }
                }
            };
            if let Some(f) = slots[slot].take() {
                in_flight -= 1;
                let answer = match outcome {
                    Some(err) => err,
                    None => {
                        let mut buf = f.buf;
                        // SAFETY: the kernel wrote all `len` bytes (filled >= len) into the
                        // spare capacity reserved with `with_capacity(len)`.
                        unsafe { buf.set_len(f.req.len) };
                        Ok(buf)
                    }
                };
                let _ = f.req.done.send(answer);
            }
        }
    }
}

fn submit_slot(
    ring: &mut IoUring,
    slots: &mut [Option<InFlight>],
    slot: usize,
    flags: io_uring::squeue::Flags,
) -> io::Result<()> {
    let Some(f) = slots.get_mut(slot).and_then(Option::as_mut) else {
        return Ok(());
    };
    let rest = f.req.len - f.filled;
    // SAFETY: `filled < len <= capacity`: the pointer stays inside the allocation.
    let ptr = unsafe { f.buf.as_mut_ptr().add(f.filled) };
    let sqe = opcode::Read::new(
        types::Fd(f.req.file.as_raw_fd()),
        ptr,
        u32::try_from(rest.min(1 << 30)).unwrap_or(1 << 30),
    )
    .offset(f.req.offset + f.filled as u64)
    .build()
    .flags(flags)
    .user_data(slot as u64);
    // SAFETY: the buffer and the file live in `slots` until the completion is reaped.
    while unsafe { ring.submission().push(&sqe) }.is_err() {
        ring.submit()?;
    }
    Ok(())
}

fn wait(ring: &IoUring) -> io::Result<()> {
    loop {
        match ring.submit_and_wait(1) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(()),
        }
    }
}
