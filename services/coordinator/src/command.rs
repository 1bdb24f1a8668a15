//! The replicated commands and the deterministic logic that applies them.
//!
//! This is the state machine without storage: [`apply`] turns a committed [`Command`] into
//! changes of a [`Kv`] (the generic versioned key space), so it is tested with a map, and the
//! RocksDB state machine only supplies the map. Everything time-dependent comes inside the
//! command (the queen's clock), never from the applying node, so every replica agrees.

use std::collections::BTreeMap;

use hyphae_core::NodeId;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::directory::{table, Event, NodeRecord, NodeStatus, RevocationRecord, TokenRecord};

/// A value in the key space with the log index that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The bytes (JSON for the coordinator's own tables).
    pub value: Vec<u8>,
    /// Raft log index of the write: increases with every change of this key.
    pub version: u64,
}

/// The generic versioned key space: `(table, key) → Versioned`.
pub trait Kv {
    /// The current value of a key.
    fn get(&self, table: &str, key: &str) -> Option<Versioned>;
    /// Sets a key.
    fn put(&mut self, table: &str, key: &str, value: Versioned);
    /// Removes a key.
    fn delete(&mut self, table: &str, key: &str);
    /// Every key of a table, in key order.
    fn scan(&self, table: &str) -> Vec<(String, Versioned)>;
}

/// An in-memory [`Kv`] (tests, and the overlay of a batch being applied).
pub type MemKv = BTreeMap<(String, String), Versioned>;

impl Kv for MemKv {
    fn get(&self, table: &str, key: &str) -> Option<Versioned> {
        BTreeMap::get(self, &(table.to_string(), key.to_string())).cloned()
    }
    fn put(&mut self, table: &str, key: &str, value: Versioned) {
        self.insert((table.to_string(), key.to_string()), value);
    }
    fn delete(&mut self, table: &str, key: &str) {
        self.remove(&(table.to_string(), key.to_string()));
    }
    fn scan(&self, table: &str) -> Vec<(String, Versioned)> {
        self.iter()
            .filter(|((t, _), _)| t == table)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A replicated command. Variants are only ever added (the log outlives the binary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Generic key space: set a key, optionally only if its version is still `expect_version`
    /// (0 = must not exist).
    Put {
        table: String,
        key: String,
        value: Vec<u8>,
        expect_version: Option<u64>,
    },
    /// Generic key space: remove a key.
    Delete { table: String, key: String },
    /// Adds an admitted node directly (the first node at `init`).
    RegisterNode { node: NodeRecord },
    /// Stores a join token (hashed).
    CreateToken { id: String, token: TokenRecord },
    /// Admits a node with a token: checks and spends the token, then adds the node.
    AdmitWithToken {
        token_id: String,
        secret_hash: [u8; 32],
        now_unix: u64,
        node: NodeRecord,
    },
    /// Records a node that asked to join without a token.
    AddPending { node: NodeRecord },
    /// Admits a pending node with its freshly signed certificate.
    Admit {
        node: NodeId,
        cert_pem: String,
        now_unix: u64,
    },
    /// Revokes a node.
    Revoke {
        node: NodeId,
        reason: String,
        now_unix: u64,
    },
    /// A node left cleanly.
    Leave { node: NodeId, now_unix: u64 },
    /// A liveness transition (suspect, down, back up), with the node's latest figures.
    SetStatus {
        node: NodeId,
        status: NodeStatus,
        now_unix: u64,
        last_seen_unix: u64,
        uptime_s: u64,
        jitter_ms: u32,
    },
    /// A member's hardware profile (issue 4's "spike protocol"), as JSON text: log entries are
    /// postcard, which cannot carry a free-form JSON value.
    SetHardware { node: NodeId, hardware_json: String },
    /// Several writes committed as one log entry (group commit, see `batcher`), applied in
    /// order at the entry's index; each gets its own result.
    Batch(Vec<Command>),
}

impl Command {
    /// Whether applying this command revokes a node (the transport's list must be refreshed).
    pub fn revokes(&self) -> bool {
        match self {
            Command::Revoke { .. } => true,
            Command::Batch(commands) => commands.iter().any(Command::revokes),
            _ => false,
        }
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Done; the version (log index) of the write.
    Ok { version: u64 },
    /// Refused, with the reason in words (shown to the operator or joiner).
    Refused { reason: String },
    /// The results of a [`Command::Batch`], in its order.
    Batch(Vec<CommandResult>),
}

/// The (impossible) answer of a batch result to one write: the batcher splits batches.
pub const BATCH_FOR_ONE: &str = "internal error: a batch result for a single write";

impl Default for CommandResult {
    fn default() -> Self {
        CommandResult::Ok { version: 0 }
    }
}

fn refused(reason: impl Into<String>) -> CommandResult {
    CommandResult::Refused {
        reason: reason.into(),
    }
}

/// Reads a JSON record from a table.
pub fn read<T: DeserializeOwned>(kv: &dyn Kv, table: &str, key: &str) -> Option<T> {
    kv.get(table, key)
        .and_then(|v| serde_json::from_slice(&v.value).ok())
}

/// Every JSON record of a table (records that do not decode are skipped).
pub fn read_all<T: DeserializeOwned>(kv: &dyn Kv, table: &str) -> Vec<T> {
    kv.scan(table)
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v.value).ok())
        .collect()
}

fn write<T: Serialize>(kv: &mut dyn Kv, table: &str, key: &str, value: &T, version: u64) {
    // Serialising our own plain records cannot fail; if it ever did, store nothing rather
    // than panic inside the state machine.
    if let Ok(bytes) = serde_json::to_vec(value) {
        kv.put(
            table,
            key,
            Versioned {
                value: bytes,
                version,
            },
        );
    }
}

fn event(kv: &mut dyn Kv, index: u64, at_unix: u64, node: NodeId, kind: &str) {
    let e = Event {
        at_unix,
        node,
        kind: kind.to_string(),
    };
    write(kv, table::EVENTS, &format!("{index:020}"), &e, index);
}

/// Applies one committed command at log `index`. Deterministic: same inputs, same outputs.
pub fn apply(kv: &mut dyn Kv, index: u64, command: &Command) -> CommandResult {
    let ok = CommandResult::Ok { version: index };
    match command {
        Command::Put {
            table,
            key,
            value,
            expect_version,
        } => {
            if let Some(expected) = expect_version {
                let current = kv.get(table, key).map(|v| v.version).unwrap_or(0);
                if current != *expected {
                    return refused(format!(
                        "version conflict on {table}/{key}: expected {expected}, found {current}"
                    ));
                }
            }
            kv.put(
                table,
                key,
                Versioned {
                    value: value.clone(),
                    version: index,
                },
            );
            ok
        }
        Command::Delete { table, key } => {
            kv.delete(table, key);
            ok
        }
        Command::Batch(commands) => CommandResult::Batch(
            commands
                .iter()
                .map(|c| match c {
                    Command::Batch(_) => refused("a batch cannot hold another batch"),
                    c => apply(kv, index, c),
                })
                .collect(),
        ),
        Command::RegisterNode { node } => {
            write(kv, table::NODES, &node.id.to_string(), node, index);
            event(kv, index, node.admitted_unix, node.id, "admitted");
            ok
        }
        Command::CreateToken { id, token } => {
            if kv.get(table::TOKENS, id).is_some() {
                return refused("a token with this id exists already");
            }
            write(kv, table::TOKENS, id, token, index);
            ok
        }
        Command::AdmitWithToken {
            token_id,
            secret_hash,
            now_unix,
            node,
        } => {
            let Some(mut token) = read::<TokenRecord>(kv, table::TOKENS, token_id) else {
                return refused("unknown join token");
            };
            if &token.secret_hash != secret_hash {
                return refused("invalid join token");
            }
            if token.expires_unix <= *now_unix {
                return refused("join token expired");
            }
            if token.uses_left == 0 {
                return refused("join token already used up");
            }
            if let Some(r) = refusal_for_existing(kv, &node.id) {
                return r;
            }
            token.uses_left -= 1;
            write(kv, table::TOKENS, token_id, &token, index);
            write(kv, table::NODES, &node.id.to_string(), node, index);
            event(kv, index, *now_unix, node.id, "admitted");
            ok
        }
        Command::AddPending { node } => {
            if let Some(existing) = read::<NodeRecord>(kv, table::NODES, &node.id.to_string()) {
                if existing.status != NodeStatus::Pending {
                    return refused(format!("node {} is already {:?}", node.id, existing.status));
                }
            }
            write(kv, table::NODES, &node.id.to_string(), node, index);
            event(kv, index, node.last_seen_unix, node.id, "pending");
            ok
        }
        Command::Admit {
            node,
            cert_pem,
            now_unix,
        } => {
            let key = node.to_string();
            let Some(mut record) = read::<NodeRecord>(kv, table::NODES, &key) else {
                return refused(format!("no pending node {node}"));
            };
            if record.status != NodeStatus::Pending {
                return refused(format!("node {node} is {:?}, not pending", record.status));
            }
            record.status = NodeStatus::Up;
            record.cert_pem = Some(cert_pem.clone());
            record.admitted_unix = *now_unix;
            record.last_seen_unix = *now_unix;
            write(kv, table::NODES, &key, &record, index);
            event(kv, index, *now_unix, *node, "admitted");
            ok
        }
        Command::Revoke {
            node,
            reason,
            now_unix,
        } => {
            let key = node.to_string();
            let rec = RevocationRecord {
                at_unix: *now_unix,
                reason: reason.clone(),
            };
            write(kv, table::REVOCATIONS, &key, &rec, index);
            if let Some(mut record) = read::<NodeRecord>(kv, table::NODES, &key) {
                record.status = NodeStatus::Revoked;
                write(kv, table::NODES, &key, &record, index);
            }
            event(kv, index, *now_unix, *node, "revoked");
            ok
        }
        Command::Leave { node, now_unix } => {
            let key = node.to_string();
            let Some(mut record) = read::<NodeRecord>(kv, table::NODES, &key) else {
                return refused(format!("no node {node}"));
            };
            record.status = NodeStatus::Left;
            write(kv, table::NODES, &key, &record, index);
            event(kv, index, *now_unix, *node, "left");
            ok
        }
        Command::SetStatus {
            node,
            status,
            now_unix,
            last_seen_unix,
            uptime_s,
            jitter_ms,
        } => {
            let key = node.to_string();
            let Some(mut record) = read::<NodeRecord>(kv, table::NODES, &key) else {
                return refused(format!("no node {node}"));
            };
            if !record.status.is_member() {
                return refused(format!("node {node} is {:?}", record.status));
            }
            let changed = record.status != *status;
            record.status = *status;
            record.last_seen_unix = *last_seen_unix;
            record.uptime_s = *uptime_s;
            record.jitter_ms = *jitter_ms;
            write(kv, table::NODES, &key, &record, index);
            if changed {
                let kind = match status {
                    NodeStatus::Up => "up",
                    NodeStatus::Suspect => "suspect",
                    NodeStatus::Down => "down",
                    _ => "status",
                };
                event(kv, index, *now_unix, *node, kind);
            }
            ok
        }
        Command::SetHardware {
            node,
            hardware_json,
        } => {
            let key = node.to_string();
            let Some(mut record) = read::<NodeRecord>(kv, table::NODES, &key) else {
                return refused(format!("no node {node}"));
            };
            if !record.status.is_member() {
                return refused(format!("node {node} is {:?}", record.status));
            }
            let Ok(hardware) = serde_json::from_str::<serde_json::Value>(hardware_json) else {
                return refused("the hardware profile is not JSON");
            };
            if !hardware.is_object() {
                return refused("the hardware profile must be a JSON object");
            }
            record.hardware = Some(hardware);
            write(kv, table::NODES, &key, &record, index);
            ok
        }
    }
}

/// A token admission of a node that is already known is refused unless it is pending.
fn refusal_for_existing(kv: &dyn Kv, id: &NodeId) -> Option<CommandResult> {
    if kv.get(table::REVOCATIONS, &id.to_string()).is_some() {
        return Some(refused(format!("node {id} is revoked")));
    }
    match read::<NodeRecord>(kv, table::NODES, &id.to_string()) {
        Some(existing) if existing.status != NodeStatus::Pending => Some(refused(format!(
            "node {id} is already in the directory ({:?})",
            existing.status
        ))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyphae_core::NodeKey;

    fn node(status: NodeStatus) -> NodeRecord {
        let id = NodeKey::generate().unwrap().node_id();
        NodeRecord {
            id,
            name: "n".into(),
            addresses: vec![],
            coordinator_addr: "10.0.0.1:7441".into(),
            status,
            admitted_unix: 1,
            last_seen_unix: 1,
            uptime_s: 0,
            jitter_ms: 0,
            hardware: None,
            csr_pem: None,
            cert_pem: None,
        }
    }

    fn token(kv: &mut MemKv, uses: u32, expires: u64) {
        let t = TokenRecord {
            secret_hash: *blake3::hash(b"s").as_bytes(),
            expires_unix: expires,
            uses_left: uses,
        };
        let r = apply(
            kv,
            1,
            &Command::CreateToken {
                id: "t".into(),
                token: t,
            },
        );
        assert_eq!(r, CommandResult::Ok { version: 1 });
    }

    fn admit(kv: &mut MemKv, index: u64, secret: &[u8], now: u64) -> CommandResult {
        apply(
            kv,
            index,
            &Command::AdmitWithToken {
                token_id: "t".into(),
                secret_hash: *blake3::hash(secret).as_bytes(),
                now_unix: now,
                node: node(NodeStatus::Up),
            },
        )
    }

    #[test]
    fn token_admits_until_used_up() {
        let mut kv = MemKv::new();
        token(&mut kv, 2, 100);
        assert_eq!(
            admit(&mut kv, 2, b"s", 10),
            CommandResult::Ok { version: 2 }
        );
        assert_eq!(
            admit(&mut kv, 3, b"s", 10),
            CommandResult::Ok { version: 3 }
        );
        let third = admit(&mut kv, 4, b"s", 10);
        assert!(
            matches!(third, CommandResult::Refused { ref reason } if reason.contains("used up"))
        );
        assert_eq!(read_all::<NodeRecord>(&kv, table::NODES).len(), 2);
    }

    #[test]
    fn forged_and_expired_tokens_are_refused() {
        let mut kv = MemKv::new();
        token(&mut kv, 5, 100);
        let forged = admit(&mut kv, 2, b"wrong", 10);
        assert!(
            matches!(forged, CommandResult::Refused { ref reason } if reason.contains("invalid"))
        );
        let expired = admit(&mut kv, 3, b"s", 100);
        assert!(
            matches!(expired, CommandResult::Refused { ref reason } if reason.contains("expired"))
        );
        assert!(read_all::<NodeRecord>(&kv, table::NODES).is_empty());
        // Refusals spend nothing.
        let t: TokenRecord = read(&kv, table::TOKENS, "t").unwrap();
        assert_eq!(t.uses_left, 5);
    }

    #[test]
    fn pending_then_admit_then_revoke() {
        let mut kv = MemKv::new();
        let n = node(NodeStatus::Pending);
        apply(&mut kv, 1, &Command::AddPending { node: n.clone() });
        let r = apply(
            &mut kv,
            2,
            &Command::Admit {
                node: n.id,
                cert_pem: "CERT".into(),
                now_unix: 5,
            },
        );
        assert_eq!(r, CommandResult::Ok { version: 2 });
        let rec: NodeRecord = read(&kv, table::NODES, &n.id.to_string()).unwrap();
        assert_eq!(rec.status, NodeStatus::Up);
        // Admitting twice is refused.
        let again = apply(
            &mut kv,
            3,
            &Command::Admit {
                node: n.id,
                cert_pem: "CERT".into(),
                now_unix: 5,
            },
        );
        assert!(matches!(again, CommandResult::Refused { .. }));
        apply(
            &mut kv,
            4,
            &Command::Revoke {
                node: n.id,
                reason: "stolen".into(),
                now_unix: 6,
            },
        );
        let rec: NodeRecord = read(&kv, table::NODES, &n.id.to_string()).unwrap();
        assert_eq!(rec.status, NodeStatus::Revoked);
        let events = read_all::<Event>(&kv, table::EVENTS);
        let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["pending", "admitted", "revoked"]);
    }

    #[test]
    fn versioned_put_checks_expected_version() {
        let mut kv = MemKv::new();
        let put = |v: Option<u64>| Command::Put {
            table: "files".into(),
            key: "a".into(),
            value: b"x".to_vec(),
            expect_version: v,
        };
        assert_eq!(
            apply(&mut kv, 7, &put(Some(0))),
            CommandResult::Ok { version: 7 }
        );
        assert!(matches!(
            apply(&mut kv, 8, &put(Some(0))),
            CommandResult::Refused { .. }
        ));
        assert_eq!(
            apply(&mut kv, 9, &put(Some(7))),
            CommandResult::Ok { version: 9 }
        );
        assert_eq!(Kv::get(&kv, "files", "a").unwrap().version, 9);
    }

    #[test]
    fn liveness_transitions_make_events() {
        let mut kv = MemKv::new();
        let n = node(NodeStatus::Up);
        apply(&mut kv, 1, &Command::RegisterNode { node: n.clone() });
        let set = |status| Command::SetStatus {
            node: n.id,
            status,
            now_unix: 9,
            last_seen_unix: 3,
            uptime_s: 10,
            jitter_ms: 2,
        };
        apply(&mut kv, 2, &set(NodeStatus::Suspect));
        apply(&mut kv, 3, &set(NodeStatus::Suspect));
        apply(&mut kv, 4, &set(NodeStatus::Down));
        apply(&mut kv, 5, &set(NodeStatus::Up));
        let kinds: Vec<_> = read_all::<Event>(&kv, table::EVENTS)
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["admitted", "suspect", "down", "up"]);
    }

    fn put(key: &str, value: &str, expect_version: Option<u64>) -> Command {
        Command::Put {
            table: "t".into(),
            key: key.into(),
            value: value.as_bytes().to_vec(),
            expect_version,
        }
    }

    #[test]
    fn a_batch_applies_in_order_with_one_result_per_write() {
        let mut kv = MemKv::new();
        let batch = Command::Batch(vec![
            put("a", "1", Some(0)),
            // Sees the write before it in the same entry: "a" now has version 7.
            put("a", "2", Some(0)),
            put("a", "3", Some(7)),
            Command::Batch(vec![]),
            put("b", "x", None),
        ]);
        let CommandResult::Batch(results) = apply(&mut kv, 7, &batch) else {
            panic!("not a batch result");
        };
        assert_eq!(results.len(), 5);
        assert_eq!(results[0], CommandResult::Ok { version: 7 });
        assert!(matches!(results[1], CommandResult::Refused { .. }));
        assert_eq!(results[2], CommandResult::Ok { version: 7 });
        assert!(
            matches!(results[3], CommandResult::Refused { .. }),
            "nested batch"
        );
        assert_eq!(results[4], CommandResult::Ok { version: 7 });
        assert_eq!(Kv::get(&kv, "t", "a").map(|v| v.value), Some(b"3".to_vec()));
        assert_eq!(Kv::get(&kv, "t", "b").map(|v| v.value), Some(b"x".to_vec()));
    }

    #[test]
    fn a_revoke_inside_a_batch_is_seen() {
        let revoke = Command::Revoke {
            node: node(NodeStatus::Up).id,
            reason: "r".into(),
            now_unix: 1,
        };
        assert!(revoke.revokes());
        assert!(Command::Batch(vec![put("a", "1", None), revoke]).revokes());
        assert!(!Command::Batch(vec![put("a", "1", None)]).revokes());
    }

    #[test]
    fn hardware_profiles_are_stored_for_members_only() {
        let mut kv = MemKv::new();
        let n = node(NodeStatus::Up);
        apply(&mut kv, 1, &Command::RegisterNode { node: n.clone() });
        let set = |json: &str| Command::SetHardware {
            node: n.id,
            hardware_json: json.into(),
        };
        // The command survives the log's encoding (postcard) with its JSON as text.
        let bytes = postcard::to_stdvec(&set("{\"cpu\":{\"cores\":4}}")).unwrap();
        let back: Command = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, set("{\"cpu\":{\"cores\":4}}"));
        assert_eq!(apply(&mut kv, 2, &back), CommandResult::Ok { version: 2 });
        let rec: NodeRecord = read(&kv, table::NODES, &n.id.to_string()).unwrap();
        assert_eq!(rec.hardware.unwrap()["cpu"]["cores"], 4);
        assert!(matches!(
            apply(&mut kv, 3, &set("nope")),
            CommandResult::Refused { .. }
        ));
        assert!(matches!(
            apply(&mut kv, 4, &set("[1]")),
            CommandResult::Refused { .. }
        ));
        let pending = node(NodeStatus::Pending);
        let other = Command::SetHardware {
            node: pending.id,
            hardware_json: "{}".into(),
        };
        assert!(matches!(
            apply(&mut kv, 5, &other),
            CommandResult::Refused { .. }
        ));
    }
}
