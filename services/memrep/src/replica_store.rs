//! A backup's replica of one VM: the RAM file (in /dev/shm, so QEMU can resume on it), the
//! disk file if the VM has one (beside the RAM file, same name ending `.disk`), the device
//! state and what was committed. RAM, disk and device state of an epoch are applied together. An epoch is applied through a redo journal: the
//! verified epoch is written whole to `journal.bin` first, then applied to the RAM file and the
//! device state, then `meta.json` names it committed and the journal goes. If the process dies
//! mid-apply, opening the replica replays the journal, so the replica is always one committed
//! epoch and never a mixture. Epoch 1 of every generation is a base epoch (all non-zero
//! pages): applying it zeroes the replica first.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::epoch::assembler::{Committed, CompleteEpoch};
use crate::epoch::wire::EpochHeader;
use crate::ram_map::RamMap;

const PAGE: usize = 4096;

/// Why the replica could not be read or updated.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// File system error.
    #[error("replica {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A replica file that does not decode.
    #[error("replica {0}: corrupt")]
    Corrupt(String),
    /// No epoch committed yet.
    #[error("replica of {0} has no committed epoch")]
    Empty(String),
    /// The replica moved on (fenced by a takeover, or another epoch committed) while this
    /// epoch arrived: it was checked against a state that is gone.
    #[error("replica of {vm} changed while the epoch arrived (now generation {generation} epoch {epoch})")]
    Changed {
        /// The VM.
        vm: String,
        /// Generation now.
        generation: u64,
        /// Epoch now.
        epoch: u64,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReplicaError + '_ {
    move |source| ReplicaError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What `meta.json` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMeta {
    /// Generation of the committed epoch.
    pub generation: u64,
    /// The committed epoch.
    pub epoch: u64,
    /// RAM size.
    pub ram_bytes: u64,
    /// Disk size (0: the VM has no disk).
    #[serde(default)]
    pub disk_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct JournalRecord {
    header: EpochHeader,
    indices: Vec<u32>,
    data: Vec<u8>,
    device: Vec<u8>,
}

/// One VM's replica on this node.
#[derive(Debug)]
pub struct ReplicaStore {
    vm: String,
    dir: PathBuf,
    ram_path: PathBuf,
    ram: Option<RamMap>,
    disk_path: PathBuf,
    disk: Option<RamMap>,
    meta: Option<ReplicaMeta>,
}

impl ReplicaStore {
    /// Opens (or creates) the replica of `vm`: state under `dir`, RAM file at `ram_path`, disk
    /// file (if the VM has a disk) beside it with the extension `disk`. Replays an unfinished
    /// journal.
    pub fn open(vm: &str, dir: &Path, ram_path: &Path) -> Result<ReplicaStore, ReplicaError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let meta_path = dir.join("meta.json");
        let meta = match std::fs::read(&meta_path) {
            Ok(b) => Some(
                serde_json::from_slice::<ReplicaMeta>(&b)
                    .map_err(|_| ReplicaError::Corrupt(meta_path.display().to_string()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&meta_path)(e)),
        };
        let mut store = ReplicaStore {
            vm: vm.to_string(),
            dir: dir.to_path_buf(),
            ram_path: ram_path.to_path_buf(),
            ram: None,
            disk_path: ram_path.with_extension("disk"),
            disk: None,
            meta,
        };
        let journal = dir.join("journal.bin");
        match std::fs::read(&journal) {
            Ok(b) => {
                let rec: JournalRecord = postcard::from_bytes(&b)
                    .map_err(|_| ReplicaError::Corrupt(journal.display().to_string()))?;
                tracing::info!(vm, epoch = rec.header.epoch, "replaying replica journal");
                store.apply(&rec)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&journal)(e)),
        }
        Ok(store)
    }

    /// What is committed (for the assembler's fencing checks).
    pub fn committed(&self) -> Committed {
        match self.meta {
            Some(m) => Committed {
                generation: m.generation,
                epoch: m.epoch,
                ram_bytes: m.ram_bytes,
                disk_bytes: m.disk_bytes,
            },
            None => Committed {
                generation: 0,
                epoch: 0,
                ram_bytes: 0,
                disk_bytes: 0,
            },
        }
    }

    /// The committed epoch's metadata, if any.
    pub fn meta(&self) -> Option<ReplicaMeta> {
        self.meta
    }

    /// The RAM file.
    pub fn ram_path(&self) -> &Path {
        &self.ram_path
    }

    /// The disk file (present when the committed epochs carry a disk).
    pub fn disk_path(&self) -> &Path {
        &self.disk_path
    }

    /// The committed device state file.
    pub fn device_path(&self) -> PathBuf {
        self.dir.join("device.state")
    }

    /// Raises the fencing generation without an epoch (a new primary took over elsewhere:
    /// anything from older generations is refused from now on).
    pub fn fence(&mut self, generation: u64) -> Result<(), ReplicaError> {
        if let Some(mut m) = self.meta {
            if generation > m.generation {
                m.generation = generation;
                m.epoch = 0;
                self.write_meta(m)?;
            }
        }
        Ok(())
    }

    /// [`Self::commit`] of an epoch that was assembled (checked for fencing, order and sizes)
    /// against `checked_against`, refused if the replica is no longer there: epochs are
    /// received without holding the replica, which stays readable and fenceable meanwhile.
    pub fn commit_onto(
        &mut self,
        checked_against: Committed,
        epoch: CompleteEpoch,
    ) -> Result<ReplicaMeta, ReplicaError> {
        let now = self.committed();
        if now != checked_against {
            return Err(ReplicaError::Changed {
                vm: self.vm.clone(),
                generation: now.generation,
                epoch: now.epoch,
            });
        }
        self.commit(epoch)
    }

    /// Applies a verified epoch atomically (journal first) and records it as committed.
    pub fn commit(&mut self, epoch: CompleteEpoch) -> Result<ReplicaMeta, ReplicaError> {
        let rec = JournalRecord {
            header: epoch.header,
            indices: epoch.indices,
            data: epoch.data,
            device: epoch.device,
        };
        let bytes = postcard::to_stdvec(&rec)
            .map_err(|_| ReplicaError::Corrupt("journal encoding".into()))?;
        let journal = self.dir.join("journal.bin");
        let tmp = self.dir.join("journal.tmp");
        std::fs::write(&tmp, &bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &journal).map_err(io(&journal))?;
        self.apply(&rec)
    }

    fn apply(&mut self, rec: &JournalRecord) -> Result<ReplicaMeta, ReplicaError> {
        let h = &rec.header;
        let len =
            usize::try_from(h.ram_bytes).map_err(|_| ReplicaError::Corrupt("RAM size".into()))?;
        if self.ram.as_ref().is_none_or(|r| r.len() != len) {
            self.ram = Some(RamMap::open_write(&self.ram_path, len).map_err(io(&self.ram_path))?);
        }
        let ram = self
            .ram
            .as_mut()
            .and_then(RamMap::bytes_mut)
            .ok_or_else(|| ReplicaError::Corrupt("replica RAM not writable".into()))?;
        if rec.data.len() != rec.indices.len() * PAGE {
            return Err(ReplicaError::Corrupt("journal page data".into()));
        }
        if h.epoch == 1 {
            // The first epoch of a generation is a base: it carries every non-zero page of
            // the new primary, so the replica starts from zero (replay-safe).
            ram.fill(0);
        }
        let disk_len =
            usize::try_from(h.disk_bytes).map_err(|_| ReplicaError::Corrupt("disk size".into()))?;
        let mut disk: Option<&mut [u8]> = None;
        if disk_len == 0 {
            self.disk = None;
        } else {
            if h.epoch == 1 {
                // Zeroed by truncation: the pages of a sparse tmpfs file are freed, not
                // written (a disk is mostly zeros).
                self.disk = None;
                reset_file(&self.disk_path, disk_len).map_err(io(&self.disk_path))?;
            }
            if self.disk.as_ref().is_none_or(|d| d.len() != disk_len) {
                self.disk = Some(
                    RamMap::open_write(&self.disk_path, disk_len).map_err(io(&self.disk_path))?,
                );
            }
            disk = self.disk.as_mut().and_then(RamMap::bytes_mut);
            if disk.is_none() {
                return Err(ReplicaError::Corrupt("replica disk not writable".into()));
            }
        }
        let ram_pages = len / PAGE;
        for (i, page) in rec.indices.iter().zip(rec.data.chunks_exact(PAGE)) {
            let i = *i as usize;
            let dst = if i < ram_pages {
                ram.get_mut(i * PAGE..(i + 1) * PAGE)
            } else {
                let at = (i - ram_pages) * PAGE;
                disk.as_deref_mut().and_then(|d| d.get_mut(at..at + PAGE))
            }
            .ok_or_else(|| ReplicaError::Corrupt("journal page index".into()))?;
            dst.copy_from_slice(page);
        }
        let dev = self.device_path();
        let dev_tmp = self.dir.join("device.tmp");
        std::fs::write(&dev_tmp, &rec.device).map_err(io(&dev_tmp))?;
        std::fs::rename(&dev_tmp, &dev).map_err(io(&dev))?;
        let meta = ReplicaMeta {
            generation: h.generation,
            epoch: h.epoch,
            ram_bytes: h.ram_bytes,
            disk_bytes: h.disk_bytes,
        };
        self.write_meta(meta)?;
        let journal = self.dir.join("journal.bin");
        std::fs::remove_file(&journal).map_err(io(&journal))?;
        Ok(meta)
    }

    fn write_meta(&mut self, meta: ReplicaMeta) -> Result<(), ReplicaError> {
        let path = self.dir.join("meta.json");
        let tmp = self.dir.join("meta.tmp");
        let body = serde_json::to_vec(&meta).map_err(|_| ReplicaError::Corrupt("meta".into()))?;
        std::fs::write(&tmp, body).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        self.meta = Some(meta);
        Ok(())
    }

    /// The committed RAM, for checks (None before the first epoch).
    pub fn ram(&self) -> Option<&[u8]> {
        self.ram.as_ref().map(RamMap::bytes)
    }

    /// Removes the replica's files (VM deleted, or this node no longer a backup).
    pub fn destroy(mut self) -> Result<(), ReplicaError> {
        self.ram = None;
        self.disk = None;
        let _ = std::fs::remove_file(&self.ram_path);
        let _ = std::fs::remove_file(&self.disk_path);
        std::fs::remove_dir_all(&self.dir).map_err(io(&self.dir))
    }

    /// The committed disk, for checks (None without a disk).
    pub fn disk(&self) -> Option<&[u8]> {
        self.disk.as_ref().map(RamMap::bytes)
    }

    /// The VM this replica belongs to.
    pub fn vm(&self) -> &str {
        &self.vm
    }

    /// Error if nothing is committed yet (a replica that cannot be resumed).
    pub fn require_committed(&self) -> Result<ReplicaMeta, ReplicaError> {
        self.meta
            .filter(|m| m.epoch > 0)
            .ok_or_else(|| ReplicaError::Empty(self.vm.clone()))
    }
}

/// Empties `path` and gives it `len` bytes of zeros (a hole: nothing allocated).
fn reset_file(path: &Path, len: usize) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.set_len(len as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(n: u64, pages: &[(u32, u8)], dev: &[u8]) -> CompleteEpoch {
        CompleteEpoch {
            header: EpochHeader {
                vm: "vm1".into(),
                generation: 1,
                epoch: n,
                ram_bytes: 16 * PAGE as u64,
                disk_bytes: 0,
                pages: pages.len() as u32,
                device_bytes: dev.len() as u32,
            },
            indices: pages.iter().map(|p| p.0).collect(),
            data: pages.iter().flat_map(|p| vec![p.1; PAGE]).collect(),
            device: dev.to_vec(),
        }
    }

    #[test]
    fn an_epoch_checked_against_a_state_that_moved_on_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ram = dir.path().join("r.ram");
        let mut s = ReplicaStore::open("vm1", &dir.path().join("st"), &ram).unwrap();
        s.commit(epoch(1, &[(0, 1)], b"d1")).unwrap();
        // Epoch 2 arrives (checked against epoch 1) while a takeover fences the replica.
        let seen = s.committed();
        s.fence(2).unwrap();
        let e = s.commit_onto(seen, epoch(2, &[(0, 2)], b"d2"));
        assert!(
            matches!(
                e,
                Err(ReplicaError::Changed {
                    generation: 2,
                    epoch: 0,
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(s.ram().unwrap()[0], 1, "nothing applied");
        // Checked against the state it lands on: committed.
        let mut s =
            ReplicaStore::open("vm2", &dir.path().join("st2"), &dir.path().join("r2.ram")).unwrap();
        let seen = s.committed();
        let mut e1 = epoch(1, &[(0, 7)], b"d1");
        e1.header.vm = "vm2".into();
        assert_eq!(s.commit_onto(seen, e1).unwrap().epoch, 1);
    }

    #[test]
    fn commits_apply_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ram = dir.path().join("r.ram");
        let mut s = ReplicaStore::open("vm1", &dir.path().join("st"), &ram).unwrap();
        assert!(s.require_committed().is_err());
        s.commit(epoch(1, &[(0, 1), (3, 3)], b"d1")).unwrap();
        s.commit(epoch(2, &[(3, 4)], b"d2")).unwrap();
        let r = s.ram().unwrap();
        assert_eq!(r[0], 1);
        assert_eq!(r[3 * PAGE], 4);
        drop(s);
        let s = ReplicaStore::open("vm1", &dir.path().join("st"), &ram).unwrap();
        assert_eq!(s.require_committed().unwrap().epoch, 2);
        assert_eq!(std::fs::read(s.device_path()).unwrap(), b"d2");
    }

    #[test]
    fn disk_pages_go_to_the_disk_file_with_the_ram() {
        let dir = tempfile::tempdir().unwrap();
        let ram = dir.path().join("r.ram");
        let mut s = ReplicaStore::open("vm1", &dir.path().join("st"), &ram).unwrap();
        let with_disk = |n: u64, pages: &[(u32, u8)]| {
            let mut e = epoch(n, pages, b"d");
            e.header.disk_bytes = 4 * PAGE as u64;
            e
        };
        // RAM has 16 pages: index 16 is disk page 0, 19 disk page 3.
        s.commit(with_disk(1, &[(2, 1), (16, 5), (19, 6)])).unwrap();
        s.commit(with_disk(2, &[(16, 7)])).unwrap();
        assert_eq!(s.ram().unwrap()[2 * PAGE], 1);
        let d = s.disk().unwrap();
        assert_eq!((d[0], d[3 * PAGE]), (7, 6));
        assert_eq!(
            std::fs::metadata(s.disk_path()).unwrap().len(),
            4 * PAGE as u64
        );
        assert_eq!(s.meta().unwrap().disk_bytes, 4 * PAGE as u64);
        // A new base epoch starts the disk from zero too.
        s.commit(with_disk(1, &[(17, 8)]).tap_generation(2))
            .unwrap();
        let d = s.disk().unwrap();
        assert_eq!((d[0], d[PAGE], d[3 * PAGE]), (0, 8, 0));
        // Beyond the disk (the assembler refuses it before; a corrupt journal): an error, and
        // the committed epoch is still 1.
        assert!(s
            .commit(with_disk(2, &[(20, 1)]).tap_generation(2))
            .is_err());
        assert_eq!(s.meta().unwrap().epoch, 1);
        let disk_path = s.disk_path().to_path_buf();
        s.destroy().unwrap();
        assert!(!disk_path.exists() && !ram.exists());
    }

    trait TapGeneration {
        fn tap_generation(self, g: u64) -> Self;
    }

    impl TapGeneration for CompleteEpoch {
        fn tap_generation(mut self, g: u64) -> Self {
            self.header.generation = g;
            self
        }
    }

    #[test]
    fn an_interrupted_apply_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let ram = dir.path().join("r.ram");
        let st = dir.path().join("st");
        let mut s = ReplicaStore::open("vm1", &st, &ram).unwrap();
        s.commit(epoch(1, &[(0, 1)], b"d1")).unwrap();
        drop(s);
        // Simulate dying right after the journal was written: journal present, RAM, device
        // state and meta still at epoch 1.
        let e2 = epoch(2, &[(0, 9), (5, 9)], b"d2");
        let rec = JournalRecord {
            header: e2.header,
            indices: e2.indices,
            data: e2.data,
            device: e2.device,
        };
        std::fs::write(st.join("journal.bin"), postcard::to_stdvec(&rec).unwrap()).unwrap();
        let s = ReplicaStore::open("vm1", &st, &ram).unwrap();
        assert_eq!(s.meta().unwrap().epoch, 2);
        assert_eq!(s.ram().unwrap()[5 * PAGE], 9);
        assert!(!st.join("journal.bin").exists());
    }

    #[test]
    fn a_corrupt_journal_is_an_error_not_a_replica() {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("st");
        std::fs::create_dir_all(&st).unwrap();
        std::fs::write(st.join("journal.bin"), b"\xff\xff").unwrap();
        assert!(matches!(
            ReplicaStore::open("vm1", &st, &dir.path().join("r.ram")),
            Err(ReplicaError::Corrupt(_))
        ));
    }
}
