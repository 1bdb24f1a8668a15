//! The primary's checkpoint: QMP `stop` (which drains and flushes the block layer, so the
//! VM's disk file holds every write the guest saw complete) → collect the dirty RAM pages, then
//! the changed disk pages (compare scan of the mapped disk file), into a staging buffer →
//! device state through a `migrate` with `x-ignore-shared` (RAM is shared, so only devices are
//! written, a few hundred KB) → `cont`. The pause covers only those steps; encoding and sending
//! happen after the guest runs again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::dirty::{self, CompareScan, DirtyError, DirtyPages, DirtyTracker, TrackerKind, PAGE};
use crate::epoch::wire::{encode_epoch, EpochHeader};
use crate::qemu::{LaunchError, QemuProcess};
use crate::qmp::QmpError;
use crate::ram_map::RamMap;

/// Why a checkpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// QMP failed (QEMU dead or refusing).
    #[error(transparent)]
    Qmp(#[from] QmpError),
    /// Dirty tracking failed.
    #[error(transparent)]
    Dirty(#[from] DirtyError),
    /// File I/O (RAM map, device state file).
    #[error("checkpoint: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding the epoch failed.
    #[error("checkpoint: encoding: {0}")]
    Encode(#[from] postcard::Error),
    /// Start-up failed.
    #[error(transparent)]
    Launch(#[from] LaunchError),
}

/// One checkpoint's result, ready to send.
#[derive(Debug)]
pub struct Checkpoint {
    /// Epoch number.
    pub epoch: u64,
    /// How long the guest was paused.
    pub pause: Duration,
    /// Pages carried.
    pub pages: usize,
    /// Page bytes carried.
    pub bytes: u64,
    /// How many of the pages are disk pages.
    pub disk_pages: usize,
    /// The encoded epoch stream (see `epoch::wire`).
    pub parts: Vec<Vec<u8>>,
}

/// A running VM as the primary sees it.
#[derive(Debug)]
pub struct Primary {
    /// The QEMU.
    pub qemu: QemuProcess,
    ram: RamMap,
    tracker: Box<dyn DirtyTracker>,
    disk: Option<Disk>,
    staging: DirtyPages,
    device_path: PathBuf,
    /// The generation this primary writes under.
    pub generation: u64,
}

/// The VM's disk file as the primary scans it. QEMU writes the file with `pwrite`, not
/// through a mapping of its own, so soft-dirty bits never see those writes: the disk is always
/// compare-scanned.
#[derive(Debug)]
struct Disk {
    map: RamMap,
    tracker: CompareScan,
}

impl Disk {
    fn open(path: &std::path::Path, ram_len: usize) -> Result<Disk, CheckpointError> {
        let map = RamMap::open_read(path)?;
        let base = u32::try_from(ram_len / PAGE)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "RAM too large"))?;
        let tracker = CompareScan::with_base(map.len(), base);
        Ok(Disk { map, tracker })
    }
}

impl std::fmt::Debug for Box<dyn DirtyTracker> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.kind())
    }
}

impl Primary {
    /// Takes over a started QEMU: maps its RAM, picks the dirty tracker, turns on
    /// `x-ignore-shared`.
    pub async fn new(
        mut qemu: QemuProcess,
        generation: u64,
        device_path: PathBuf,
    ) -> Result<Primary, CheckpointError> {
        let ram = RamMap::open_read(&qemu.launch.paths.ram)?;
        let pid = qemu.pid().unwrap_or(0);
        let tracker = dirty::choose(pid, &qemu.launch.paths.ram, ram.len());
        let disk = match &qemu.launch.paths.disk {
            Some(path) => Some(Disk::open(path, ram.len())?),
            None => None,
        };
        qemu.qmp.set_capability("x-ignore-shared", true).await?;
        Ok(Primary {
            qemu,
            ram,
            tracker,
            disk,
            staging: DirtyPages::default(),
            device_path,
            generation,
        })
    }

    /// The disk's size in bytes (0: no disk).
    pub fn disk_bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, |d| d.map.len() as u64)
    }

    /// Which dirty tracker is in use.
    pub fn tracker(&self) -> TrackerKind {
        self.tracker.kind()
    }

    /// Takes checkpoint `epoch`. On error the guest is resumed if possible.
    pub async fn checkpoint(
        &mut self,
        vm: &str,
        epoch: u64,
    ) -> Result<Checkpoint, CheckpointError> {
        let t0 = Instant::now();
        self.qemu.qmp.stop().await?;
        let staged = self.stage().await;
        // Resume whatever happened: a failed checkpoint must not leave the guest paused.
        let resumed = self.qemu.qmp.cont().await;
        let pause = t0.elapsed();
        let device = staged?;
        resumed?;
        self.encode(vm, epoch, &device, pause)
    }

    /// Takes checkpoint `epoch` and leaves the guest paused: the final epoch of a migration's
    /// handover, after which the guest runs on the target (or here again, after `cont`, if
    /// the handover fails).
    pub async fn checkpoint_paused(
        &mut self,
        vm: &str,
        epoch: u64,
    ) -> Result<Checkpoint, CheckpointError> {
        let t0 = Instant::now();
        self.qemu.qmp.stop().await?;
        let device = self.stage().await?;
        self.encode(vm, epoch, &device, t0.elapsed())
    }

    /// Starts writing under a new `generation` with a fresh dirty tracker, so that the next
    /// checkpoint is a base (every non-zero page): how a backup added to a running VM gets a
    /// whole replica (replicas take a base at epoch 1 of each generation).
    pub fn rebase(&mut self, generation: u64) {
        let pid = self.qemu.pid().unwrap_or(0);
        self.tracker = dirty::choose(pid, &self.qemu.launch.paths.ram, self.ram.len());
        if let Some(d) = &mut self.disk {
            d.tracker = CompareScan::with_base(d.map.len(), (self.ram.len() / PAGE) as u32);
        }
        self.generation = generation;
    }

    fn encode(
        &self,
        vm: &str,
        epoch: u64,
        device: &[u8],
        pause: Duration,
    ) -> Result<Checkpoint, CheckpointError> {
        let header = EpochHeader {
            vm: vm.to_string(),
            generation: self.generation,
            epoch,
            ram_bytes: self.ram.len() as u64,
            disk_bytes: self.disk_bytes(),
            pages: self.staging.indices.len() as u32,
            device_bytes: device.len() as u32,
        };
        let parts = encode_epoch(header, &self.staging.indices, &self.staging.data, device)?;
        let ram_pages = (self.ram.len() / PAGE) as u32;
        let disk_pages = self
            .staging
            .indices
            .iter()
            .rev()
            .take_while(|&&i| i >= ram_pages)
            .count();
        Ok(Checkpoint {
            epoch,
            pause,
            disk_pages,
            pages: self.staging.indices.len(),
            bytes: self.staging.bytes() as u64,
            parts,
        })
    }

    /// While paused: dirty pages (RAM, then disk) into staging, device state into a file.
    async fn stage(&mut self) -> Result<Vec<u8>, CheckpointError> {
        self.staging.clear();
        self.tracker.collect(self.ram.bytes(), &mut self.staging)?;
        if let Some(d) = &mut self.disk {
            // `stop` returned after QEMU drained and flushed every block request: the file
            // is exactly the disk the guest (paused) has seen.
            d.tracker.collect(d.map.bytes(), &mut self.staging)?;
        }
        let _ = std::fs::remove_file(&self.device_path);
        self.qemu
            .qmp
            .migrate(&format!("exec:cat > {}", self.device_path.display()))
            .await?;
        self.qemu
            .qmp
            .wait_migration(Duration::from_secs(30))
            .await?;
        Ok(std::fs::read(&self.device_path)?)
    }

    /// Stops QEMU and removes its files.
    pub async fn shutdown(self) {
        let _ = std::fs::remove_file(&self.device_path);
        drop(self.ram);
        drop(self.disk);
        self.qemu.shutdown().await;
    }
}
