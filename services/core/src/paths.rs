//! Where a node keeps its files.
//!
//! A production node uses the FHS locations that the systemd units set up
//! (`/var/lib/hyphae`, `/run/hyphae`, `/etc/hyphae/hyphae.toml`). Tests and `make run` pass
//! `--state-dir DIR` instead, which moves everything under `DIR` so that many nodes can run side
//! by side on one machine and the CLI finds the node it belongs to by the same flag.

use std::path::{Path, PathBuf};

/// Default state directory of a node installed by the image.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hyphae";
/// Default directory of the local sockets.
pub const DEFAULT_RUN_DIR: &str = "/run/hyphae";
/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/hyphae/hyphae.toml";

/// The resolved file locations of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    /// Root of persistent state; each service owns `state/<service>/`.
    pub state: PathBuf,
    /// Directory of the local Unix sockets (`<service>.sock`).
    pub run: PathBuf,
    /// The configuration file to read.
    pub config: PathBuf,
    /// True when the config path was given explicitly (`--config`): then it must exist.
    pub config_explicit: bool,
}

impl NodePaths {
    /// Resolves the locations from the two global CLI options.
    pub fn resolve(state_dir: Option<&Path>, config: Option<&Path>) -> Self {
        let (state, run, default_config) = match state_dir {
            Some(dir) => (dir.to_path_buf(), dir.join("run"), dir.join("hyphae.toml")),
            None => (
                PathBuf::from(DEFAULT_STATE_DIR),
                PathBuf::from(DEFAULT_RUN_DIR),
                PathBuf::from(DEFAULT_CONFIG),
            ),
        };
        NodePaths {
            state,
            run,
            config: config.map(Path::to_path_buf).unwrap_or(default_config),
            config_explicit: config.is_some(),
        }
    }

    /// The identity directory: node key, node certificate, CA certificate, mesh secrets.
    pub fn identity_dir(&self) -> PathBuf {
        self.state.join("identity")
    }

    /// A service's private state directory (`StateDirectory=hyphae/<service>` under systemd).
    pub fn service_state(&self, service: &str) -> PathBuf {
        self.state.join(service)
    }

    /// The Unix socket a service answers its local HTTP API on.
    pub fn socket(&self, service: &str) -> PathBuf {
        self.run.join(format!("{service}.sock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_moves_everything() {
        let p = NodePaths::resolve(Some(Path::new("/tmp/n1")), None);
        assert_eq!(p.state, PathBuf::from("/tmp/n1"));
        assert_eq!(p.run, PathBuf::from("/tmp/n1/run"));
        assert_eq!(p.config, PathBuf::from("/tmp/n1/hyphae.toml"));
        assert!(!p.config_explicit);
        assert_eq!(p.socket("node"), PathBuf::from("/tmp/n1/run/node.sock"));
    }

    #[test]
    fn defaults_are_fhs() {
        let p = NodePaths::resolve(None, Some(Path::new("/x.toml")));
        assert_eq!(p.state, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(p.run, PathBuf::from(DEFAULT_RUN_DIR));
        assert_eq!(p.config, PathBuf::from("/x.toml"));
        assert!(p.config_explicit);
    }
}
