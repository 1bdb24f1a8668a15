//! Free space of the filesystem under the store, for the `Full` check and `stats()`.

use std::path::Path;

use super::StoreError;

/// What statvfs says about a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    /// Size of the filesystem.
    pub total_bytes: u64,
    /// Bytes available to unprivileged writers.
    pub available_bytes: u64,
}

/// statvfs of the filesystem holding `path`.
pub fn fs_space(path: &Path) -> Result<FsSpace, StoreError> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| {
        StoreError::io(
            format!("statvfs {}", path.display()),
            std::io::Error::from(e),
        )
    })?;
    let frsize = s.fragment_size() as u64;
    Ok(FsSpace {
        total_bytes: (s.blocks() as u64).saturating_mul(frsize),
        available_bytes: (s.blocks_available() as u64).saturating_mul(frsize),
    })
}
