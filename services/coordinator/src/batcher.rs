//! Group commit for writes. openraft 0.9 appends and fsyncs every client write on its own, one
//! after another, so concurrent writes would each wait for a whole fsync in turn. The batcher
//! gives Raft one entry ([`Command::Batch`]) holding every write that arrived while the
//! previous entry was being committed — the group commit etcd does under load — and hands each
//! caller its own result. A lone write goes through as itself, at the same latency as before.

use hyphae_core::NodeId;
use openraft::error::{ClientWriteError, Fatal, RaftError};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::command::{Command, CommandResult};
use crate::types::{Raft, RaftPeer};

/// The most writes one Raft entry carries.
const MAX_BATCH: usize = 512;

/// What a write through Raft returns: openraft's error type, so callers handle "forward to the
/// queen" exactly as with `client_write`.
pub type WriteOutcome = Result<Committed, RaftError<NodeId, ClientWriteError<NodeId, RaftPeer>>>;

/// A committed write's result and the index of the Raft entry that carried it: a member that
/// forwarded the write waits until it has applied that entry, so that its own reads see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The state machine's answer to this write.
    pub result: CommandResult,
    /// The log index of its entry (a batch's writes share one).
    pub log_index: u64,
}

struct Pending {
    command: Command,
    reply: oneshot::Sender<WriteOutcome>,
}

/// The queue of writes waiting for their entry; cheap to clone.
#[derive(Debug, Clone)]
pub struct WriteBatcher {
    queue: mpsc::UnboundedSender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl WriteBatcher {
    /// Starts the task that feeds `raft`; it ends when every handle is dropped.
    pub fn start(raft: Raft) -> WriteBatcher {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(feed(raft, rx));
        WriteBatcher { queue }
    }

    /// Writes `command` through Raft (this node must be the queen to commit it; otherwise the
    /// error says where the queen is, as `client_write` does).
    pub async fn write(&self, command: Command) -> WriteOutcome {
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Pending { command, reply }).is_err() {
            return Err(RaftError::Fatal(Fatal::Stopped));
        }
        answer
            .await
            .unwrap_or(Err(RaftError::Fatal(Fatal::Stopped)))
    }
}

async fn feed(raft: Raft, mut rx: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if batch.len() == 1 {
            let Pending { command, reply } = batch.remove(0);
            let outcome = raft.client_write(command).await.map(|r| Committed {
                result: r.data,
                log_index: r.log_id.index,
            });
            let _ = reply.send(outcome);
            continue;
        }
        let (commands, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|p| (p.command, p.reply)).unzip();
        match raft.client_write(Command::Batch(commands)).await {
            Ok(response) => {
                let log_index = response.log_id.index;
                match response.data {
                    CommandResult::Batch(results) if results.len() == replies.len() => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            let _ = reply.send(Ok(Committed { result, log_index }));
                        }
                    }
                    // The state machine answers a batch with one result per write; anything
                    // else means it refused the batch as a whole.
                    other => {
                        for reply in replies {
                            let result = other.clone();
                            let _ = reply.send(Ok(Committed { result, log_index }));
                        }
                    }
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
