//! A shared mapping of a VM's RAM file: the primary reads the guest's pages through it while
//! the guest is paused; a backup writes committed epochs into its replica through it.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::ptr::NonNull;

/// A `MAP_SHARED` mapping of a whole file.
#[derive(Debug)]
pub struct RamMap {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// The mapping is plain memory; access is synchronised by the owner (&self / &mut self).
unsafe impl Send for RamMap {}
unsafe impl Sync for RamMap {}

impl RamMap {
    /// Maps an existing file read-only (the primary's view of QEMU's RAM).
    pub fn open_read(path: &Path) -> std::io::Result<RamMap> {
        let f = File::open(path)?;
        let len = f.metadata()?.len() as usize;
        Self::map(&f, len, false)
    }

    /// Opens (creating it at `len` bytes if absent) a file read-write (a replica).
    pub fn open_write(path: &Path, len: usize) -> std::io::Result<RamMap> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let have = f.metadata()?.len() as usize;
        if have != len {
            if have != 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is {have} bytes, expected {len}", path.display()),
                ));
            }
            f.set_len(len as u64)?;
        }
        Self::map(&f, len, true)
    }

    fn map(f: &File, len: usize, writable: bool) -> std::io::Result<RamMap> {
        use std::os::fd::AsRawFd;
        if len == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "empty RAM file",
            ));
        }
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: mapping a file we hold open; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(p as *mut u8).ok_or_else(std::io::Error::last_os_error)?;
        Ok(RamMap { ptr, len, writable })
    }

    /// The bytes. Another process (QEMU) may change them unless the guest is paused.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, for writing (replicas only).
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        if !self.writable {
            return None;
        }
        // SAFETY: as above, and we hold &mut self.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mapping refuses empty files).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for RamMap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what map() mapped.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len);
        }
    }
}
