//! Reads of whole records: through an io_uring ring on a dedicated thread (many in flight), or
//! pread on tokio's blocking pool when io_uring is unavailable.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
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
    /// Requests go to the ring thread.
    Uring(Sender<ReadRequest>),
    /// pread on the blocking pool.
    Pread,
}

impl Reader {
    /// Reads exactly `len` bytes at `offset`; fewer bytes in the file is `UnexpectedEof`.
    pub async fn read(&self, file: Arc<File>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        match self {
            Reader::Uring(tx) => {
                let (done, rx) = oneshot::channel();
                tx.send(ReadRequest {
                    file,
                    offset,
                    len,
                    done,
                })
                .map_err(|_| io::Error::other("the read thread is gone"))?;
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

/// Starts the ring thread; it ends when every sender is dropped and nothing is in flight.
pub fn spawn_uring(
    depth: u32,
) -> Result<(Sender<ReadRequest>, std::thread::JoinHandle<()>), StoreError> {
    let ring = IoUring::new(depth.next_power_of_two())
        .map_err(|e| StoreError::io("creating the read ring", e))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("shard-reader".into())
        .spawn(move || run(ring, rx, depth as usize))
        .map_err(|e| StoreError::io("starting the read thread", e))?;
    Ok((tx, handle))
}

fn run(mut ring: IoUring, rx: Receiver<ReadRequest>, depth: usize) {
    let mut slots: Vec<Option<InFlight>> = (0..depth).map(|_| None).collect();
    let mut in_flight = 0usize;
    let mut open = true;
    loop {
        // Take new requests: block only when nothing is in flight.
        while open && in_flight < depth {
            let next = if in_flight == 0 {
                rx.recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                rx.try_recv()
            };
            match next {
                Ok(req) => {
                    let slot = slots.iter().position(Option::is_none).unwrap_or(0);
                    let buf = Vec::with_capacity(req.len);
                    if req.len == 0 {
                        let _ = req.done.send(Ok(Vec::new()));
                        continue;
                    }
                    slots[slot] = Some(InFlight {
                        req,
                        buf,
                        filled: 0,
                    });
                    if let Err(e) = submit_slot(&mut ring, &mut slots, slot) {
                        if let Some(f) = slots[slot].take() {
                            let _ = f.req.done.send(Err(e));
                        }
                        continue;
                    }
                    in_flight += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                }
            }
        }
        if in_flight == 0 {
            if open {
                continue;
            }
            return;
        }
        if let Err(e) = wait(&ring) {
            // The ring itself failed: answer everything in flight and stop.
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
        for (slot, res) in done {
            let slot = slot as usize;
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
                    match submit_slot(&mut ring, &mut slots, slot) {
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

fn submit_slot(ring: &mut IoUring, slots: &mut [Option<InFlight>], slot: usize) -> io::Result<()> {
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
    .user_data(slot as u64);
    // SAFETY: the buffer and the file live in `slots` until the completion is reaped.
    while unsafe { ring.submission().push(&sqe) }.is_err() {
        ring.submit()?;
    }
    ring.submit()?;
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
