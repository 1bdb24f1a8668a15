//! The revocation list: nodes whose certificates the mesh no longer honours.
//!
//! Certificates are long-lived, so revocation is how a stolen or retired node is cut off. The
//! list is versioned (a higher `version` wins, so lists can be gossiped or replicated in any
//! order), and the transport consults the shared [`Revocations`] handle on every handshake.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::PkiError;
use crate::identity::NodeId;
use crate::secret_file::{self, Visibility};

/// One revoked node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When it was revoked (Unix seconds).
    pub at_unix: u64,
    /// Why, in the administrator's words.
    pub reason: String,
}

/// A versioned set of revoked node ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// Increases with every change; the higher version of two lists is the newer one.
    pub version: u64,
    /// The revoked nodes.
    pub revoked: BTreeMap<NodeId, Revocation>,
}

impl RevocationList {
    /// Whether this node id is revoked.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.revoked.contains_key(id)
    }
}

/// The node's live revocation list, shared by every endpoint and updated in place.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    inner: Arc<RwLock<RevocationList>>,
}

impl Revocations {
    /// A handle over an initial list.
    pub fn new(list: RevocationList) -> Revocations {
        Revocations {
            inner: Arc::new(RwLock::new(list)),
        }
    }

    /// Loads the last list this node saw, or an empty one.
    pub fn load_or_empty(path: &Path) -> Result<Revocations, PkiError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let list: RevocationList =
                    serde_json::from_slice(&bytes).map_err(|e| PkiError::invalid(path, e))?;
                Ok(Revocations::new(list))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Revocations::default()),
            Err(e) => Err(PkiError::io(path)(e)),
        }
    }

    /// Writes the current list.
    pub fn store(&self, path: &Path) -> Result<(), PkiError> {
        let list = self.snapshot();
        let bytes = serde_json::to_vec_pretty(&list).map_err(|e| PkiError::invalid(path, e))?;
        secret_file::write_atomic(path, &bytes, Visibility::Public).map_err(PkiError::io(path))
    }

    /// Whether this node id is revoked right now.
    pub fn is_revoked(&self, id: &NodeId) -> bool {
        self.read().contains(id)
    }

    /// A copy of the current list.
    pub fn snapshot(&self) -> RevocationList {
        self.read().clone()
    }

    /// Adopts `list` if it is newer than the current one; returns whether it was adopted.
    pub fn replace_if_newer(&self, list: RevocationList) -> bool {
        let mut current = self.write();
        if list.version > current.version {
            *current = list;
            true
        } else {
            false
        }
    }

    /// Revokes a node locally (bumping the version).
    pub fn revoke(&self, id: NodeId, reason: impl Into<String>) {
        let mut current = self.write();
        current.version += 1;
        let at_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        current.revoked.insert(
            id,
            Revocation {
                at_unix,
                reason: reason.into(),
            },
        );
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RevocationList> {
        // A panic while holding the lock cannot leave the list half-written (every writer
        // replaces whole values), so a poisoned lock is still safe to read.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RevocationList> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeKey;

    #[test]
    fn newer_lists_win() {
        let id = NodeKey::generate().unwrap().node_id();
        let r = Revocations::default();
        assert!(!r.is_revoked(&id));
        r.revoke(id, "stolen");
        assert!(r.is_revoked(&id));
        assert!(!r.replace_if_newer(RevocationList::default()));
        assert!(r.is_revoked(&id));
        let newer = RevocationList {
            version: 5,
            revoked: BTreeMap::new(),
        };
        assert!(r.replace_if_newer(newer));
        assert!(!r.is_revoked(&id));
    }

    #[test]
    fn persists() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("revocations.json");
        let id = NodeKey::generate().unwrap().node_id();
        let r = Revocations::default();
        r.revoke(id, "retired");
        r.store(&p).unwrap();
        assert!(Revocations::load_or_empty(&p).unwrap().is_revoked(&id));
    }
}
