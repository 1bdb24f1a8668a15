//! The compare scan: a shadow copy of guest RAM, compared page by page with the live RAM while
//! the guest is paused. Page comparison is a slice equality, which the standard library lowers
//! to `memcmp` (vectorised by libc); only changed pages are copied.

use super::{DirtyError, DirtyPages, DirtyTracker, TrackerKind, PAGE};

/// Shadow-copy dirty tracking.
#[derive(Debug)]
pub struct CompareScan {
    shadow: Vec<u8>,
    base: u32,
}

impl CompareScan {
    /// A tracker for `len` bytes of RAM. The shadow starts zeroed, matching a fresh sparse
    /// replica file, so the first epoch carries exactly the non-zero pages.
    pub fn new(len: usize) -> CompareScan {
        Self::with_base(len, 0)
    }

    /// A tracker whose pages are numbered from `base` on: how a VM's disk shares the epoch's
    /// page index space with its RAM (disk page `i` is index `base + i`, `base` = RAM pages).
    pub fn with_base(len: usize, base: u32) -> CompareScan {
        CompareScan {
            shadow: vec![0; len],
            base,
        }
    }
}

impl DirtyTracker for CompareScan {
    fn kind(&self) -> TrackerKind {
        TrackerKind::CompareScan
    }

    fn collect(&mut self, ram: &[u8], out: &mut DirtyPages) -> Result<(), DirtyError> {
        let len = ram.len().min(self.shadow.len()) / PAGE * PAGE;
        for (i, (live, shadow)) in ram[..len]
            .chunks_exact(PAGE)
            .zip(self.shadow[..len].chunks_exact_mut(PAGE))
            .enumerate()
        {
            if live != shadow {
                shadow.copy_from_slice(live);
                out.push(self.base + i as u32, live);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_changed_pages() {
        let mut ram = vec![0u8; PAGE * 16];
        let mut t = CompareScan::new(ram.len());
        let mut out = DirtyPages::default();
        t.collect(&ram, &mut out).unwrap();
        assert!(out.indices.is_empty());
        ram[PAGE * 3 + 17] = 1;
        ram[PAGE * 9] = 2;
        ram[PAGE * 16 - 1] = 3;
        t.collect(&ram, &mut out).unwrap();
        assert_eq!(out.indices, vec![3, 9, 15]);
        assert_eq!(&out.data[PAGE..2 * PAGE], &ram[PAGE * 9..PAGE * 10]);
        out.clear();
        t.collect(&ram, &mut out).unwrap();
        assert!(out.indices.is_empty());
    }

    #[test]
    fn a_base_shifts_the_indices() {
        let mut disk = vec![0u8; PAGE * 4];
        disk[PAGE * 2] = 9;
        let mut t = CompareScan::with_base(disk.len(), 100);
        let mut out = DirtyPages::default();
        t.collect(&disk, &mut out).unwrap();
        assert_eq!(out.indices, vec![102]);
    }
}
