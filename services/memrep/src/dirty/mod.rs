//! Dirty-page tracking behind one trait: which guest pages changed since the last epoch.
//! Soft-dirty bits (`/proc/PID/clear_refs` + `pagemap`) are used only when a start-up probe
//! proves them working on this kernel; otherwise a compare scan against a shadow copy, which
//! works everywhere at the price of reading all of RAM during the pause.

pub mod compare_scan;
pub mod soft_dirty;

pub use compare_scan::CompareScan;
pub use soft_dirty::SoftDirty;

/// Guest page size.
pub const PAGE: usize = 4096;

/// The pages of one epoch: indices in ascending order and their contents, concatenated.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DirtyPages {
    /// Page indices (offset / PAGE) into the RAM file.
    pub indices: Vec<u32>,
    /// `indices.len() * PAGE` bytes.
    pub data: Vec<u8>,
}

impl DirtyPages {
    /// Empties it, keeping the allocations.
    pub fn clear(&mut self) {
        self.indices.clear();
        self.data.clear();
    }

    /// Adds a page.
    pub fn push(&mut self, index: u32, page: &[u8]) {
        self.indices.push(index);
        self.data.extend_from_slice(page);
    }

    /// Bytes of page data.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// Which tracker is in use (shown in status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrackerKind {
    /// Kernel soft-dirty bits.
    SoftDirty,
    /// Shadow copy compare scan.
    CompareScan,
}

/// Why dirty pages could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum DirtyError {
    /// Reading /proc failed (QEMU gone?).
    #[error("dirty tracking: {0}")]
    Io(#[from] std::io::Error),
    /// The RAM mapping of the QEMU process was not found.
    #[error("dirty tracking: {0}")]
    Mapping(String),
}

/// Collects the pages changed since the previous call (everything on the first call). Called
/// only while the guest is paused.
pub trait DirtyTracker: Send {
    /// Which tracker this is.
    fn kind(&self) -> TrackerKind;
    /// Appends the changed pages of `ram` to `out`.
    fn collect(&mut self, ram: &[u8], out: &mut DirtyPages) -> Result<(), DirtyError>;
}

/// The tracker for a QEMU process: soft-dirty if the probe passes, else the compare scan.
pub fn choose(qemu_pid: u32, ram_path: &std::path::Path, ram_len: usize) -> Box<dyn DirtyTracker> {
    if soft_dirty::probe().is_ok() {
        if let Ok(t) = SoftDirty::new(qemu_pid, ram_path) {
            return Box::new(t);
        }
    }
    Box::new(CompareScan::new(ram_len))
}
