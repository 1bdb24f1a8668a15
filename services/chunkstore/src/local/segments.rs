//! Segment files: append-only files of records under `<store>/segments/`, named by number
//! (`00000001.seg`), the highest being the one appended to.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::StoreError;

/// The segment directory and the open file of every segment.
pub struct Segments {
    dir: PathBuf,
    files: RwLock<BTreeMap<u32, Arc<File>>>,
}

/// File name of segment `n`.
pub fn file_name(n: u32) -> String {
    format!("{n:08}.seg")
}

fn parse_name(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 8 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl Segments {
    /// Opens every segment file in `dir` (created if missing) for reading and writing.
    pub fn open(dir: &Path) -> Result<Segments, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        let mut files = BTreeMap::new();
        let rd = std::fs::read_dir(dir)
            .map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        for entry in rd {
            let entry = entry.map_err(|e| StoreError::io("listing segments", e))?;
            let Some(n) = entry.file_name().to_str().and_then(parse_name) else {
                continue;
            };
            let path = entry.path();
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
            files.insert(n, Arc::new(f));
        }
        Ok(Segments {
            dir: dir.to_path_buf(),
            files: RwLock::new(files),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of segment `n`.
    pub fn path(&self, n: u32) -> PathBuf {
        self.dir.join(file_name(n))
    }

    /// The open file of segment `n`.
    pub fn get(&self, n: u32) -> Option<Arc<File>> {
        self.files.read().ok()?.get(&n).cloned()
    }

    /// Segment numbers, ascending.
    pub fn numbers(&self) -> Vec<u32> {
        self.files
            .read()
            .map(|f| f.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Every segment with its file.
    pub fn all(&self) -> Vec<(u32, Arc<File>)> {
        self.files
            .read()
            .map(|f| f.iter().map(|(n, f)| (*n, f.clone())).collect())
            .unwrap_or_default()
    }

    /// Creates segment `n` (durably: the directory is synced), optionally preallocating
    /// `prealloc` bytes without changing the file size.
    pub fn create(&self, n: u32, prealloc: u64) -> Result<Arc<File>, StoreError> {
        let path = self.path(n);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io(format!("creating {}", path.display()), e))?;
        if prealloc > 0 {
            // Best effort: filesystems without fallocate (tmpfs has it) just allocate on write.
            // SAFETY: plain syscall on an fd we own.
            let _ = unsafe {
                libc::fallocate(
                    f.as_raw_fd(),
                    libc::FALLOC_FL_KEEP_SIZE,
                    0,
                    prealloc.min(i64::MAX as u64) as libc::off_t,
                )
            };
        }
        self.sync_dir()?;
        let f = Arc::new(f);
        if let Ok(mut files) = self.files.write() {
            files.insert(n, f.clone());
        }
        Ok(f)
    }

    /// Removes segment `n` from the set and from disk (durably).
    pub fn remove(&self, n: u32) -> Result<(), StoreError> {
        if let Ok(mut files) = self.files.write() {
            files.remove(&n);
        }
        let path = self.path(n);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(format!("removing {}", path.display()), e)),
        }
        self.sync_dir()
    }

    /// fsyncs the directory so that created/removed names survive a power loss.
    pub fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io(format!("syncing {}", self.dir.display()), e))
    }
}

/// Length of a file.
pub fn file_len(f: &File) -> Result<u64, StoreError> {
    f.metadata()
        .map(|m| m.len())
        .map_err(|e| StoreError::io("reading segment size", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(file_name(12), "00000012.seg");
        assert_eq!(parse_name("00000012.seg"), Some(12));
        assert_eq!(parse_name("12.seg"), None);
        assert_eq!(parse_name("0000001a.seg"), None);
        assert_eq!(parse_name("00000012.tmp"), None);
    }
}
