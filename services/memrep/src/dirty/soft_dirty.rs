//! Soft-dirty tracking: writing `4` to `/proc/PID/clear_refs` clears the soft-dirty bit of
//! every page of the process; bit 55 of a page's `/proc/PID/pagemap` entry is then set when the
//! page is written (KVM guest writes included, through MMU notifiers). Kernels without
//! CONFIG_MEM_SOFT_DIRTY accept the write but never set the bit, so [`probe`] checks on this
//! process before memrep trusts it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{DirtyError, DirtyPages, DirtyTracker, TrackerKind, PAGE};

const SOFT_DIRTY_BIT: u64 = 1 << 55;

fn clear_refs(pid: &str) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/clear_refs"))?
        .write_all(b"4")
}

fn pagemap_entry(pagemap: &File, vaddr: usize) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    pagemap.read_exact_at(&mut b, (vaddr / PAGE * 8) as u64)?;
    Ok(u64::from_le_bytes(b))
}

/// Proves soft-dirty works here: a page written after `clear_refs` must show the bit, and one
/// not written must not.
pub fn probe() -> Result<(), String> {
    let mut pages = vec![0u8; PAGE * 4];
    let base = (pages.as_ptr() as usize).div_ceil(PAGE) * PAGE;
    let off = base - pages.as_ptr() as usize;
    pages[off] = 1;
    pages[off + PAGE] = 1;
    clear_refs("self").map_err(|e| format!("clear_refs: {e}"))?;
    let pagemap = File::open("/proc/self/pagemap").map_err(|e| format!("pagemap: {e}"))?;
    // SAFETY-free volatile write through the vector: the compiler must not elide it.
    unsafe { std::ptr::write_volatile(pages.as_mut_ptr().add(off), 2) };
    let written = pagemap_entry(&pagemap, base).map_err(|e| e.to_string())?;
    let untouched = pagemap_entry(&pagemap, base + PAGE).map_err(|e| e.to_string())?;
    std::hint::black_box(&pages);
    if written & SOFT_DIRTY_BIT == 0 {
        return Err(
            "soft-dirty bit not set after a write (kernel without CONFIG_MEM_SOFT_DIRTY?)".into(),
        );
    }
    if untouched & SOFT_DIRTY_BIT != 0 {
        return Err("soft-dirty bit set on a page that was not written".into());
    }
    Ok(())
}

/// Soft-dirty tracking of QEMU's mapping of the RAM file.
#[derive(Debug)]
pub struct SoftDirty {
    pid: String,
    ram_path: PathBuf,
    first: bool,
}

impl SoftDirty {
    /// Tracks the RAM file `ram_path` as mapped by process `pid`.
    pub fn new(pid: u32, ram_path: &Path) -> Result<SoftDirty, DirtyError> {
        let t = SoftDirty {
            pid: pid.to_string(),
            ram_path: ram_path.to_path_buf(),
            first: true,
        };
        t.mapping()?;
        Ok(t)
    }

    /// The start address of QEMU's mapping of the RAM file.
    fn mapping(&self) -> Result<usize, DirtyError> {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", self.pid))?;
        let want = self.ram_path.display().to_string();
        for line in maps.lines() {
            if line.ends_with(&want) {
                let start = line.split('-').next().unwrap_or("");
                if let Ok(a) = usize::from_str_radix(start, 16) {
                    return Ok(a);
                }
            }
        }
        Err(DirtyError::Mapping(format!(
            "{want} is not mapped by process {}",
            self.pid
        )))
    }
}

impl DirtyTracker for SoftDirty {
    fn kind(&self) -> TrackerKind {
        TrackerKind::SoftDirty
    }

    fn collect(&mut self, ram: &[u8], out: &mut DirtyPages) -> Result<(), DirtyError> {
        let base = self.mapping()?;
        let pages = ram.len() / PAGE;
        if self.first {
            // Everything non-zero goes in the first epoch (the replica starts zeroed).
            for (i, p) in ram.chunks_exact(PAGE).enumerate() {
                if p.iter().any(|&b| b != 0) {
                    out.push(i as u32, p);
                }
            }
        } else {
            let pagemap = File::open(format!("/proc/{}/pagemap", self.pid))?;
            let mut entries = vec![0u8; pages * 8];
            pagemap.read_exact_at(&mut entries, (base / PAGE * 8) as u64)?;
            for (i, e) in entries.chunks_exact(8).enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(e);
                if u64::from_le_bytes(b) & SOFT_DIRTY_BIT != 0 {
                    out.push(i as u32, &ram[i * PAGE..(i + 1) * PAGE]);
                }
            }
        }
        self.first = false;
        clear_refs(&self.pid)?;
        Ok(())
    }
}
