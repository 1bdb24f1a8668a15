//! The Raft log and vote, fsync'd before openraft is told they are durable (the log's fsyncs
//! grouped by [`WalSyncer`]).

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, OptionalSend, RaftLogReader, StorageError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};

use super::wal_sync::WalSyncer;
use super::{cf, decode, encode, read_err, synced, write_err, StoreTypes, CF_LOG, CF_RAFT_META};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";

/// The log store: entries keyed by big-endian index, so key order is log order.
pub struct LogStore<C: StoreTypes> {
    db: Arc<DB>,
    syncer: Arc<WalSyncer<C>>,
    _types: PhantomData<C>,
}

impl<C: StoreTypes> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl<C: StoreTypes> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            db: self.db.clone(),
            syncer: self.syncer.clone(),
            _types: PhantomData,
        }
    }
}

impl<C: StoreTypes> LogStore<C> {
    /// A log store over an open database; starts its WAL-sync thread.
    pub fn new(db: Arc<DB>) -> std::io::Result<Self> {
        Ok(LogStore {
            syncer: Arc::new(WalSyncer::start(db.clone())?),
            db,
            _types: PhantomData,
        })
    }

    fn meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError<C::NodeId>> {
        let cf = cf(&self.db, CF_RAFT_META)?;
        match self.db.get_cf(cf, key).map_err(read_err)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError<C::NodeId>> {
        let cf = cf(&self.db, CF_RAFT_META)?;
        let bytes = encode(value)?;
        let opts = if sync {
            synced()
        } else {
            rocksdb::WriteOptions::default()
        };
        self.db.put_cf_opt(cf, key, bytes, &opts).map_err(write_err)
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn start_of(bound: Bound<&u64>) -> Option<u64> {
    match bound {
        Bound::Included(i) => Some(*i),
        Bound::Excluded(i) => i.checked_add(1),
        Bound::Unbounded => Some(0),
    }
}

impl<C: StoreTypes> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let Some(start) = start_of(range.start_bound()) else {
            return Ok(Vec::new());
        };
        let cf = cf(&self.db, CF_LOG)?;
        let key = index_key(start);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&key, Direction::Forward))
        {
            let (k, v) = item.map_err(read_err)?;
            let Ok(raw) = <[u8; 8]>::try_from(&k[..]) else {
                continue;
            };
            let index = u64::from_be_bytes(raw);
            if !range.contains(&index) {
                break;
            }
            out.push(decode::<openraft::Entry<C>, _>(&v)?);
        }
        Ok(out)
    }
}

impl<C: StoreTypes> RaftLogStorage<C> for LogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let last_purged: Option<LogId<C::NodeId>> = self.meta(KEY_PURGED)?;
        let cf = cf(&self.db, CF_LOG)?;
        let last = match self.db.iterator_cf(cf, IteratorMode::End).next() {
            Some(item) => {
                let (_, v) = item.map_err(read_err)?;
                Some(decode::<openraft::Entry<C>, _>(&v)?.log_id)
            }
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: last_purged.clone(),
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.put_meta(KEY_VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.meta(KEY_VOTE)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        // Unsynced: losing it only means re-learning the commit index from the queen.
        self.put_meta(KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self
            .meta::<Option<LogId<C::NodeId>>>(KEY_COMMITTED)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = cf(&self.db, CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(cf, index_key(entry.log_id.index), encode(&entry)?);
        }
        // Written now (readable at once), made durable by the syncer's next grouped fsync.
        match self.db.write(batch) {
            Ok(()) => {
                self.syncer.submit(callback);
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let cf = cf(&self.db, CF_LOG)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, index_key(log_id.index), index_key(u64::MAX));
        batch.delete_cf(cf, index_key(u64::MAX));
        self.db.write_opt(batch, &synced()).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        // Record the purge point first: a crash in between leaves extra entries, never a hole.
        self.put_meta(KEY_PURGED, &log_id, true)?;
        let cf = cf(&self.db, CF_LOG)?;
        let end = log_id.index.saturating_add(1);
        self.db
            .delete_range_cf(cf, index_key(0), index_key(end))
            .map_err(write_err)
    }
}
