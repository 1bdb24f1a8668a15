//! Snapshots as RocksDB checkpoints. A checkpoint is a consistent copy of the whole database
//! made of hard links to its immutable files (cheap, and on the same filesystem by
//! construction); the current snapshot is kept on disk as one, next to the database
//! (`<db>.snapshots/<snapshot id>`), instead of as a blob inside the database that would double
//! its size. What a lagging node receives is the `state` family read back from the checkpoint,
//! with the applied index and membership of the same instant.

use std::path::{Path, PathBuf};

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{IteratorMode, Options, DB};

use super::{CF_LOG, CF_RAFT_META, CF_SM_META, CF_STATE};

/// Every raw key/value of the `state` family: the snapshot's wire format.
pub(crate) type SnapshotPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What a checkpoint holds that a snapshot needs.
pub(crate) struct CheckpointContents {
    /// The `state` family.
    pub pairs: SnapshotPairs,
    /// The raw `sm_meta` value of the last applied log id, if any.
    pub applied: Option<Vec<u8>>,
    /// The raw `sm_meta` value of the membership, if any.
    pub membership: Option<Vec<u8>>,
}

/// Why a checkpoint could not be taken or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckpointError {
    #[error("RocksDB checkpoint: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("checkpoint directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The directory of a database's checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    /// The checkpoints of `db`: `<db path>.snapshots/`.
    pub(crate) fn of(db: &DB) -> Checkpoints {
        let mut dir = db.path().as_os_str().to_owned();
        dir.push(".snapshots");
        Checkpoints {
            dir: PathBuf::from(dir),
        }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
        move |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Where the checkpoint of snapshot `id` lives (ids are made safe as file names).
    pub(crate) fn path(&self, id: &str) -> PathBuf {
        let name: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(name)
    }

    /// Takes a checkpoint of `db` now, under a temporary name; [`Checkpoints::keep`] names it.
    pub(crate) fn take(&self, db: &DB) -> Result<PathBuf, CheckpointError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let tmp = self.dir.join(format!("tmp-{:016x}", rand::random::<u64>()));
        Checkpoint::new(db)?.create_checkpoint(&tmp)?;
        Ok(tmp)
    }

    /// Makes the checkpoint at `taken` the current snapshot `id` and removes every other one.
    pub(crate) fn keep(&self, taken: &Path, id: &str) -> Result<PathBuf, CheckpointError> {
        let target = self.path(id);
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(Self::io(&target))?;
        }
        std::fs::rename(taken, &target).map_err(Self::io(&target))?;
        let entries = std::fs::read_dir(&self.dir).map_err(Self::io(&self.dir))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path != target {
                // A leftover is harmless; the next snapshot tries again.
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        Ok(target)
    }

    /// Reads the snapshot's contents back from a checkpoint (opened read-only).
    pub(crate) fn read(path: &Path) -> Result<CheckpointContents, CheckpointError> {
        let cfs = ["default", CF_LOG, CF_RAFT_META, CF_SM_META, CF_STATE];
        let db = DB::open_cf_for_read_only(&Options::default(), path, cfs, false)?;
        let missing = |name: &str| CheckpointError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("column family {name} missing")),
        };
        let state = db.cf_handle(CF_STATE).ok_or_else(|| missing(CF_STATE))?;
        let meta = db
            .cf_handle(CF_SM_META)
            .ok_or_else(|| missing(CF_SM_META))?;
        let mut pairs = Vec::new();
        for item in db.iterator_cf(state, IteratorMode::Start) {
            let (k, v) = item?;
            pairs.push((k.to_vec(), v.to_vec()));
        }
        Ok(CheckpointContents {
            pairs,
            applied: db.get_cf(meta, super::state_machine::KEY_APPLIED)?,
            membership: db.get_cf(meta, super::state_machine::KEY_MEMBERSHIP)?,
        })
    }
}
