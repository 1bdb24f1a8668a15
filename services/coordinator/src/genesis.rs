//! The genesis window: for a while after an `auto_init`, the founder admits without a token
//! exactly the unadmitted `auto_init` nodes it heard during its election round.
//!
//! Three fresh nodes with `auto_init` booting together elect one founder; without this the
//! other two would wait as pending for an operator. The window is narrow on purpose: only ids
//! the founder's beacon heard *before* it founded the mesh (the electorate), only for
//! `[discovery] genesis_window` (10 min by default, 0 disables), and only on the founder (it
//! is stored in its coordinator state, not replicated). Any other node still needs a token or
//! `hyphae admit`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use hyphae_core::NodeId;
use serde::{Deserialize, Serialize};

/// The file in the coordinator's state directory.
pub const FILE: &str = "genesis.json";

/// Which nodes the founder admits by itself, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// The electorate: node ids from the `auto_init` hellos heard when this node founded.
    pub nodes: BTreeSet<NodeId>,
    /// End of the window (Unix seconds).
    pub until_unix: u64,
}

/// Why the genesis file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not the format this code writes.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
}

impl Genesis {
    /// A window of `window` starting at `now_unix`; `None` when the window is zero (disabled)
    /// or nobody was heard.
    pub fn open(nodes: BTreeSet<NodeId>, now_unix: u64, window: Duration) -> Option<Genesis> {
        if window.is_zero() || nodes.is_empty() {
            return None;
        }
        Some(Genesis {
            nodes,
            until_unix: now_unix.saturating_add(window.as_secs().max(1)),
        })
    }

    /// Whether `node` is admitted without a token at `now_unix`.
    pub fn admits(&self, node: &NodeId, now_unix: u64) -> bool {
        now_unix < self.until_unix && self.nodes.contains(node)
    }

    /// Writes the window to `dir/genesis.json`.
    pub fn save(&self, dir: &Path) -> Result<(), GenesisError> {
        let path = dir.join(FILE);
        let io = |source| GenesisError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = serde_json::to_vec_pretty(self).map_err(|source| GenesisError::Format {
            path: path.display().to_string(),
            source,
        })?;
        std::fs::write(&path, text).map_err(io)
    }

    /// Reads `dir/genesis.json`; `None` when this node never founded through `auto_init`.
    pub fn load(dir: &Path) -> Result<Option<Genesis>, GenesisError> {
        let path = dir.join(FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(GenesisError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| GenesisError::Format {
                path: path.display().to_string(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId::from_raw([b; 10])
    }

    #[test]
    fn admits_exactly_the_electorate_within_the_window() {
        let g = Genesis::open([id(2), id(3)].into(), 1000, Duration::from_secs(600)).unwrap();
        assert!(g.admits(&id(2), 1000));
        assert!(g.admits(&id(3), 1599));
        assert!(!g.admits(&id(4), 1000), "not heard during the election");
        assert!(!g.admits(&id(2), 1600), "the window is over");
    }

    #[test]
    fn zero_window_or_nobody_heard_opens_nothing() {
        assert!(Genesis::open([id(2)].into(), 1000, Duration::ZERO).is_none());
        assert!(Genesis::open(BTreeSet::new(), 1000, Duration::from_secs(600)).is_none());
    }

    #[test]
    fn survives_a_restart_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Genesis::load(dir.path()).unwrap(), None);
        let g = Genesis::open([id(7)].into(), 5, Duration::from_secs(60)).unwrap();
        g.save(dir.path()).unwrap();
        assert_eq!(Genesis::load(dir.path()).unwrap(), Some(g));
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert!(Genesis::load(dir.path()).is_err());
    }
}
