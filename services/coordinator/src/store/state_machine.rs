//! The state machine: applies committed commands to the `state` column family, builds and
//! installs snapshots (RocksDB checkpoints, see `checkpoint`).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::marker::PhantomData;
use std::sync::Arc;

use hyphae_core::pki::{Revocation, RevocationList, Revocations};
use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StoredMembership,
};
use rocksdb::{IteratorMode, WriteBatch, DB};
use tokio::sync::watch;

use super::checkpoint::{CheckpointError, Checkpoints, SnapshotPairs};
use super::{cf, decode, encode, read_err, synced, write_err, StoreTypes, CF_SM_META, CF_STATE};
use crate::command::{self, CommandResult, Kv, Versioned};
use crate::directory::{table, RevocationRecord};

pub(crate) const KEY_APPLIED: &[u8] = b"last_applied";
pub(crate) const KEY_MEMBERSHIP: &[u8] = b"membership";
const KEY_SNAPSHOT_META: &[u8] = b"snapshot_meta";
/// Where snapshots lived before they were checkpoints; removed when the next one is taken.
const KEY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";

fn state_key(table: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(table.len() + 1 + key.len());
    k.extend_from_slice(table.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn split_key(raw: &[u8]) -> Option<(String, String)> {
    let pos = raw.iter().position(|b| *b == 0)?;
    let table = std::str::from_utf8(&raw[..pos]).ok()?;
    let key = std::str::from_utf8(&raw[pos + 1..]).ok()?;
    Some((table.to_string(), key.to_string()))
}

/// A read-only view of the key space as applied on this node (not linearizable by itself:
/// callers that need that go through the queen's read index first).
#[derive(Clone)]
pub struct StateView {
    db: Arc<DB>,
}

impl std::fmt::Debug for StateView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateView")
    }
}

impl StateView {
    fn raw_get(&self, table: &str, key: &str) -> Option<Versioned> {
        let cf = self.db.cf_handle(CF_STATE)?;
        let bytes = self.db.get_cf(cf, state_key(table, key)).ok()??;
        postcard::from_bytes(&bytes).ok()
    }

    fn raw_scan(&self, table: &str) -> Vec<(String, Versioned)> {
        let Some(cf) = self.db.cf_handle(CF_STATE) else {
            return Vec::new();
        };
        let prefix = state_key(table, "");
        let mut out = Vec::new();
        let iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&prefix, rocksdb::Direction::Forward));
        for item in iter {
            let Ok((k, v)) = item else { break };
            if !k.starts_with(&prefix) {
                break;
            }
            if let (Some((_, key)), Ok(value)) = (split_key(&k), postcard::from_bytes(&v)) {
                out.push((key, value));
            }
        }
        out
    }
}

impl Kv for StateView {
    fn get(&self, table: &str, key: &str) -> Option<Versioned> {
        self.raw_get(table, key)
    }
    fn put(&mut self, _table: &str, _key: &str, _value: Versioned) {}
    fn delete(&mut self, _table: &str, _key: &str) {}
    fn scan(&self, table: &str) -> Vec<(String, Versioned)> {
        self.raw_scan(table)
    }
}

/// Pending writes of one apply batch over the database: reads see earlier writes of the batch.
struct Overlay<'a> {
    base: &'a StateView,
    pending: BTreeMap<(String, String), Option<Versioned>>,
}

impl Kv for Overlay<'_> {
    fn get(&self, table: &str, key: &str) -> Option<Versioned> {
        match self.pending.get(&(table.to_string(), key.to_string())) {
            Some(v) => v.clone(),
            None => self.base.raw_get(table, key),
        }
    }
    fn put(&mut self, table: &str, key: &str, value: Versioned) {
        self.pending
            .insert((table.to_string(), key.to_string()), Some(value));
    }
    fn delete(&mut self, table: &str, key: &str) {
        self.pending
            .insert((table.to_string(), key.to_string()), None);
    }
    fn scan(&self, table: &str) -> Vec<(String, Versioned)> {
        let mut merged: BTreeMap<String, Option<Versioned>> = self
            .base
            .raw_scan(table)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for ((t, k), v) in &self.pending {
            if t == table {
                merged.insert(k.clone(), v.clone());
            }
        }
        merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}

/// The RocksDB state machine.
pub struct StateMachineStore<C: StoreTypes> {
    view: StateView,
    revocations: Option<Revocations>,
    applied: watch::Sender<u64>,
    _types: PhantomData<C>,
}

impl<C: StoreTypes> StateMachineStore<C> {
    /// A state machine over an open database. With `revocations`, every committed revocation
    /// is applied to that live list at once (so new handshakes with the node are refused).
    pub fn new(db: Arc<DB>, revocations: Option<Revocations>) -> Self {
        let (applied, _) = watch::channel(0);
        let sm = StateMachineStore {
            view: StateView { db },
            revocations,
            applied,
            _types: PhantomData,
        };
        sm.sync_revocations(0);
        sm
    }

    /// A read view of the applied state.
    pub fn view(&self) -> StateView {
        self.view.clone()
    }

    /// The last applied log index, as it moves.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    fn db(&self) -> &DB {
        &self.view.db
    }

    fn sync_revocations(&self, version: u64) {
        let Some(handle) = &self.revocations else {
            return;
        };
        let mut list = RevocationList {
            version: version.max(1),
            revoked: BTreeMap::new(),
        };
        for (key, value) in self.view.raw_scan(table::REVOCATIONS) {
            let (Ok(id), Ok(rec)) = (
                key.parse(),
                serde_json::from_slice::<RevocationRecord>(&value.value),
            ) else {
                continue;
            };
            list.revoked.insert(
                id,
                Revocation {
                    at_unix: rec.at_unix,
                    reason: rec.reason,
                },
            );
        }
        let current = handle.snapshot();
        if current.revoked != list.revoked {
            list.version = list.version.max(current.version + 1);
            handle.replace_if_newer(list);
        }
    }

    fn meta_get<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError<C::NodeId>> {
        let cf = cf(self.db(), CF_SM_META)?;
        match self.db().get_cf(cf, key).map_err(read_err)? {
            Some(b) => Ok(Some(decode(&b)?)),
            None => Ok(None),
        }
    }
}

impl<C: StoreTypes> RaftStateMachine<C> for StateMachineStore<C> {
    type SnapshotBuilder = SnapshotBuilder<C>;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<C::NodeId>>,
            StoredMembership<C::NodeId, C::Node>,
        ),
        StorageError<C::NodeId>,
    > {
        let applied = self
            .meta_get::<Option<LogId<C::NodeId>>>(KEY_APPLIED)?
            .flatten();
        let membership = self.meta_get(KEY_MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut overlay = Overlay {
            base: &self.view,
            pending: BTreeMap::new(),
        };
        let mut results = Vec::new();
        let mut last: Option<LogId<C::NodeId>> = None;
        let mut membership: Option<StoredMembership<C::NodeId, C::Node>> = None;
        let mut revoked = false;
        for entry in entries {
            let index = entry.log_id.index;
            last = Some(entry.log_id.clone());
            match &entry.payload {
                EntryPayload::Blank => results.push(CommandResult::Ok { version: index }),
                EntryPayload::Normal(cmd) => {
                    revoked |= cmd.revokes();
                    results.push(command::apply(&mut overlay, index, cmd));
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id.clone()), m.clone()));
                    results.push(CommandResult::Ok { version: index });
                }
            }
        }
        let pending = overlay.pending;
        let state = cf(self.db(), CF_STATE)?;
        let meta = cf(self.db(), CF_SM_META)?;
        let mut batch = WriteBatch::default();
        for ((t, k), v) in pending {
            match v {
                Some(v) => batch.put_cf(state, state_key(&t, &k), encode(&v)?),
                None => batch.delete_cf(state, state_key(&t, &k)),
            }
        }
        if let Some(last) = &last {
            batch.put_cf(meta, KEY_APPLIED, encode(&Some(last.clone()))?);
        }
        if let Some(m) = &membership {
            batch.put_cf(meta, KEY_MEMBERSHIP, encode(m)?);
        }
        self.db().write(batch).map_err(write_err)?;
        if let Some(last) = last {
            if revoked {
                self.sync_revocations(last.index);
            }
            self.applied.send_replace(last.index);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.view.db.clone(),
            _types: PhantomData,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<C::NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let data = snapshot.into_inner();
        let pairs: SnapshotPairs = decode(&data)?;
        let state = cf(self.db(), CF_STATE)?;
        let sm_meta = cf(self.db(), CF_SM_META)?;
        let mut batch = WriteBatch::default();
        for item in self.db().iterator_cf(state, IteratorMode::Start) {
            let (k, _) = item.map_err(read_err)?;
            batch.delete_cf(state, k);
        }
        for (k, v) in pairs {
            batch.put_cf(state, k, v);
        }
        batch.put_cf(sm_meta, KEY_APPLIED, encode(&meta.last_log_id)?);
        batch.put_cf(sm_meta, KEY_MEMBERSHIP, encode(&meta.last_membership)?);
        batch.put_cf(sm_meta, KEY_SNAPSHOT_META, encode(meta)?);
        batch.delete_cf(sm_meta, KEY_SNAPSHOT_DATA);
        self.db().write_opt(batch, &synced()).map_err(write_err)?;
        // Keep what was installed as this node's current snapshot, so it can serve it too.
        let checkpoints = Checkpoints::of(self.db());
        let taken = checkpoints.take(self.db()).map_err(checkpoint_err)?;
        checkpoints
            .keep(&taken, &meta.snapshot_id)
            .map_err(checkpoint_err)?;
        let index = meta.last_log_id.as_ref().map(|l| l.index).unwrap_or(0);
        self.sync_revocations(index);
        self.applied.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        let Some(meta) = self.meta_get::<SnapshotMeta<C::NodeId, C::Node>>(KEY_SNAPSHOT_META)?
        else {
            return Ok(None);
        };
        let path = Checkpoints::of(self.db()).path(&meta.snapshot_id);
        if !path.exists() {
            // Recorded but never kept (a crash in between): openraft builds a new one.
            return Ok(None);
        }
        let contents = Checkpoints::read(&path).map_err(checkpoint_err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(encode(&contents.pairs)?)),
        }))
    }
}

fn checkpoint_err<NID: openraft::NodeId>(e: CheckpointError) -> StorageError<NID> {
    openraft::StorageIOError::write_snapshot(None, openraft::AnyError::new(&e)).into()
}

/// Builds snapshots from a RocksDB checkpoint of the database.
pub struct SnapshotBuilder<C> {
    db: Arc<DB>,
    _types: PhantomData<C>,
}

impl<C: StoreTypes> RaftSnapshotBuilder<C> for SnapshotBuilder<C> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<C::NodeId>> {
        let db = &self.db;
        let sm_meta = cf(db, CF_SM_META)?;
        let checkpoints = Checkpoints::of(db);
        // The checkpoint fixes one instant: its state, applied index and membership agree.
        let taken = checkpoints.take(db).map_err(checkpoint_err)?;
        let contents = Checkpoints::read(&taken).map_err(checkpoint_err)?;
        let applied: Option<LogId<C::NodeId>> = match &contents.applied {
            Some(b) => decode::<Option<LogId<C::NodeId>>, _>(b)?,
            None => None,
        };
        let membership: StoredMembership<C::NodeId, C::Node> = match &contents.membership {
            Some(b) => decode(b)?,
            None => StoredMembership::default(),
        };
        let snapshot_id = format!(
            "{:020}-{:08x}",
            applied.as_ref().map(|l| l.index).unwrap_or(0),
            rand::random::<u32>()
        );
        checkpoints
            .keep(&taken, &snapshot_id)
            .map_err(checkpoint_err)?;
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(sm_meta, KEY_SNAPSHOT_META, encode(&meta)?);
        batch.delete_cf(sm_meta, KEY_SNAPSHOT_DATA);
        db.write(batch).map_err(write_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(encode(&contents.pairs)?)),
        })
    }
}
