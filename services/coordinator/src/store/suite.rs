//! openraft's storage test suite against the RocksDB stores.

use std::io::Cursor;

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

use super::{open_db, LogStore, StateMachineStore};
use crate::command::{Command, CommandResult};
use crate::types::RaftPeer;

openraft::declare_raft_types!(
    /// The suite's configuration: integer node ids (the suite builds ids from numbers).
    pub SuiteConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = RaftPeer,
        SnapshotData = Cursor<Vec<u8>>,
);

struct Builder;

impl
    StoreBuilder<
        SuiteConfig,
        LogStore<SuiteConfig>,
        StateMachineStore<SuiteConfig>,
        tempfile::TempDir,
    > for Builder
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            LogStore<SuiteConfig>,
            StateMachineStore<SuiteConfig>,
        ),
        StorageError<u64>,
    > {
        let dir = tempfile::tempdir().map_err(|e| {
            StorageError::from_io_error(
                openraft::ErrorSubject::Store,
                openraft::ErrorVerb::Write,
                e,
            )
        })?;
        // The database one level down, so its `<db>.snapshots/` sibling is inside the
        // temporary directory and goes with it.
        let db = open_db(&dir.path().join("raft")).map_err(|e| {
            StorageError::from_io_error(
                openraft::ErrorSubject::Store,
                openraft::ErrorVerb::Write,
                std::io::Error::other(e.to_string()),
            )
        })?;
        let log = LogStore::new(db.clone()).map_err(|e| {
            StorageError::from_io_error(
                openraft::ErrorSubject::Store,
                openraft::ErrorVerb::Write,
                e,
            )
        })?;
        Ok((dir, log, StateMachineStore::new(db, None)))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("storage suite");
}
