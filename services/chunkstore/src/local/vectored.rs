//! `pwritev` until every byte is written: the pread backend's append, and the finishing of a
//! short io_uring write.

use std::io;
use std::os::fd::RawFd;

/// Writes all of `bufs`, in order, at `offset` of `fd`, retrying short writes and EINTR.
pub fn pwritev_all(fd: RawFd, bufs: &[&[u8]], mut offset: u64) -> io::Result<()> {
    let mut bufs: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
    let mut start = 0;
    while start < bufs.len() {
        let iov: Vec<libc::iovec> = bufs[start..]
            .iter()
            .take(1024)
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: every iovec points into a live slice of `bufs` for the duration of the call.
        let n = unsafe { libc::pwritev(fd, iov.as_ptr(), iov.len() as libc::c_int, off) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut n = n as usize;
        offset += n as u64;
        while n > 0 && start < bufs.len() {
            if n >= bufs[start].len() {
                n -= bufs[start].len();
                start += 1;
            } else {
                bufs[start] = &bufs[start][n..];
                n = 0;
            }
        }
    }
    Ok(())
}

/// Skips the first `n` bytes of `bufs` (what a short write already wrote).
pub fn skip<'a>(bufs: &[&'a [u8]], mut n: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(bufs.len());
    for b in bufs {
        if n >= b.len() {
            n -= b.len();
        } else {
            out.push(&b[n..]);
            n = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn writes_everything_in_order() -> io::Result<()> {
        let f = tempfile::tempfile()?;
        pwritev_all(f.as_raw_fd(), &[b"abc", b"", b"defg"], 3)?;
        let mut buf = vec![0u8; 10];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 0)?;
        assert_eq!(&buf, b"\0\0\0abcdefg");
        assert_eq!(skip(&[b"abc", b"defg"], 4), vec![&b"efg"[..]]);
        assert_eq!(skip(&[b"abc", b"defg"], 3), vec![&b"defg"[..]]);
        Ok(())
    }
}
