//! Group commit for the Raft log. Appends go into RocksDB at once (unsynced: visible to reads,
//! in the OS's page cache), and one thread confirms their durability in batches: it takes every
//! append waiting, syncs the WAL once, then tells openraft that all of them are on disk. Under
//! many concurrent writes one fsync covers many entries, as etcd's WAL does; a lone write pays
//! exactly one fsync, as before.

use std::sync::mpsc::{self, Receiver, SendError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use openraft::storage::LogFlushed;
use rocksdb::DB;

use super::StoreTypes;

/// The syncing thread and the queue of appends waiting for it.
pub(crate) struct WalSyncer<C: StoreTypes> {
    queue: Mutex<Option<Sender<LogFlushed<C>>>>,
    thread: Option<JoinHandle<()>>,
}

impl<C: StoreTypes> WalSyncer<C> {
    /// Starts the syncing thread over `db`.
    pub(crate) fn start(db: Arc<DB>) -> std::io::Result<WalSyncer<C>> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raft-wal-sync".into())
            .spawn(move || sync_loop(&db, rx))?;
        Ok(WalSyncer {
            queue: Mutex::new(Some(tx)),
            thread: Some(thread),
        })
    }

    /// Hands over an append already written (unsynced); `done` is called once it is durable.
    pub(crate) fn submit(&self, done: LogFlushed<C>) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let refused = match queue.as_ref() {
            Some(tx) => tx.send(done).err().map(|SendError(done)| done),
            None => Some(done),
        };
        if let Some(done) = refused {
            done.log_io_completed(Err(std::io::Error::other(
                "the WAL sync thread has stopped",
            )));
        }
    }
}

fn sync_loop<C: StoreTypes>(db: &DB, rx: Receiver<LogFlushed<C>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let synced = db.flush_wal(true);
        for done in batch {
            let result = match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(format!("syncing the Raft log: {e}"))),
            };
            done.log_io_completed(result);
        }
    }
}

impl<C: StoreTypes> Drop for WalSyncer<C> {
    fn drop(&mut self) {
        // Closing the queue ends the thread after its last batch; joining it releases its
        // handle on the database before the caller may reopen it.
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
