//! Durable Raft storage in RocksDB: the log, the vote and the state machine.
//!
//! One database per node under `<state>/coordinator/raft`, with a column family per concern:
//! `log` (entries by index), `raft_meta` (vote, committed, purge point), `sm_meta` (last applied,
//! membership, current snapshot) and `state` (the versioned key space of every table, keys
//! `table \0 key`). Tables share the `state` family so a later service adds a table without a
//! schema change. The log and the vote are written with `sync` (fsync) before openraft is told
//! they are durable; state-machine writes go through RocksDB's WAL unsynced, because a lost
//! apply is re-applied from the synced log on restart (the committed index is saved too).
//!
//! Both stores are generic over the Raft type configuration so that openraft's storage test
//! suite (which needs integer node ids) runs against exactly this code.

// openraft's traits fix the error type (`StorageError`, ~185 bytes); our helpers return it too.
#![allow(clippy::result_large_err)]

mod log;
mod state_machine;

pub use log::LogStore;
pub use state_machine::{StateMachineStore, StateView};

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use openraft::{AnyError, RaftTypeConfig, StorageError, StorageIOError};
use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::command::{Command, CommandResult};

/// Column family of the log entries.
pub(crate) const CF_LOG: &str = "log";
/// Column family of the vote, committed index and purge point.
pub(crate) const CF_RAFT_META: &str = "raft_meta";
/// Column family of the state machine's bookkeeping.
pub(crate) const CF_SM_META: &str = "sm_meta";
/// Column family of the key space.
pub(crate) const CF_STATE: &str = "state";

/// The type configurations the stores work with: ours, and the storage suite's.
pub trait StoreTypes:
    RaftTypeConfig<
    D = Command,
    R = CommandResult,
    Entry = openraft::Entry<Self>,
    SnapshotData = Cursor<Vec<u8>>,
>
{
}

impl<T> StoreTypes for T where
    T: RaftTypeConfig<
        D = Command,
        R = CommandResult,
        Entry = openraft::Entry<T>,
        SnapshotData = Cursor<Vec<u8>>,
    >
{
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("RocksDB at {path}: {source}")]
pub struct OpenError {
    path: String,
    source: rocksdb::Error,
}

/// Opens (or creates) the coordinator's database with its column families.
pub fn open_db(path: &Path) -> Result<Arc<DB>, OpenError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // The coordinator's data is small; keep RocksDB's footprint small on a Pi.
    opts.set_max_background_jobs(2);
    opts.set_keep_log_file_num(4);
    let cfs = [CF_LOG, CF_RAFT_META, CF_SM_META, CF_STATE]
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    DB::open_cf_descriptors(&opts, path, cfs)
        .map(Arc::new)
        .map_err(|source| OpenError {
            path: path.display().to_string(),
            source,
        })
}

pub(crate) fn cf<'a, NID: openraft::NodeId>(
    db: &'a DB,
    name: &str,
) -> Result<&'a rocksdb::ColumnFamily, StorageError<NID>> {
    db.cf_handle(name).ok_or_else(|| {
        StorageIOError::read(AnyError::error(format!("column family {name} missing"))).into()
    })
}

pub(crate) fn encode<T: serde::Serialize, NID: openraft::NodeId>(
    value: &T,
) -> Result<Vec<u8>, StorageError<NID>> {
    postcard::to_stdvec(value).map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
}

pub(crate) fn decode<T: serde::de::DeserializeOwned, NID: openraft::NodeId>(
    bytes: &[u8],
) -> Result<T, StorageError<NID>> {
    postcard::from_bytes(bytes).map_err(|e| StorageIOError::read(AnyError::new(&e)).into())
}

pub(crate) fn read_err<NID: openraft::NodeId>(e: rocksdb::Error) -> StorageError<NID> {
    StorageIOError::read(AnyError::new(&e)).into()
}

pub(crate) fn write_err<NID: openraft::NodeId>(e: rocksdb::Error) -> StorageError<NID> {
    StorageIOError::write(AnyError::new(&e)).into()
}

/// Write options that fsync before returning: what "durable" means for the log and the vote.
pub(crate) fn synced() -> rocksdb::WriteOptions {
    let mut w = rocksdb::WriteOptions::default();
    w.set_sync(true);
    w
}

#[cfg(test)]
mod suite;
