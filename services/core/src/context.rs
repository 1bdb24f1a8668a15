//! What every service of a node is handed at start: where things are, the configuration, the
//! node's identity and membership, and the shared metrics registry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::identity::{IdentityError, NodeKey};
use crate::metrics::MetricsRegistry;
use crate::paths::NodePaths;
use crate::pki::{Membership, PkiError};

/// Why a node could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The node key could not be loaded or made.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The mesh credentials are present but unusable.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// The shared, read-only context of one node's services.
#[derive(Debug)]
pub struct NodeContext {
    /// File locations.
    pub paths: NodePaths,
    /// The validated configuration.
    pub config: Config,
    /// The node's key (made on first start).
    pub key: Arc<NodeKey>,
    /// The node's mesh credentials, once it has joined a mesh.
    pub membership: Option<Membership>,
    /// The process-wide metrics registry.
    pub metrics: MetricsRegistry,
    /// The node's display name.
    pub name: String,
    /// When this process started (uptime in `/status`).
    pub started: Instant,
}

impl NodeContext {
    /// Loads (or on first start creates) the node's identity and reads its membership.
    pub fn load(paths: NodePaths, config: Config) -> Result<NodeContext, ContextError> {
        let identity_dir = paths.identity_dir();
        let key = Arc::new(NodeKey::load_or_create(&identity_dir)?);
        let membership = Membership::load(&identity_dir, key.clone())?;
        let name = config.node_name(&key.node_id().to_string());
        Ok(NodeContext {
            paths,
            config,
            key,
            membership,
            metrics: MetricsRegistry::new(),
            name,
            started: Instant::now(),
        })
    }

    /// The node's membership, waiting for it when the node is not a member yet: the node
    /// joins while its services already run (the coordinator writes the credentials), so a
    /// service that needs them polls the identity directory. `None` when shut down first.
    pub async fn wait_membership(&self, shutdown: &CancellationToken) -> Option<Membership> {
        if let Some(m) = &self.membership {
            return Some(m.clone());
        }
        loop {
            match Membership::load(&self.paths.identity_dir(), self.key.clone()) {
                Ok(Some(m)) => return Some(m),
                Ok(None) => {}
                // Half-written files while the coordinator joins: read them again shortly.
                Err(e) => tracing::debug!(error = %e, "membership not readable yet"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}
