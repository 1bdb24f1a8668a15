//! What every request handler shares: the local services, the configuration, the login limiter
//! and a short cache of the session keys.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyphae_core::config::GatewaySection;

use crate::auth::rate_limit::LoginLimiter;
use crate::auth::session::SessionKeys;
use crate::auth::{AUTH_TABLE, PASSWORD_KEY, SESSION_KEY};
use crate::error::ApiError;
use crate::local::LocalServices;

/// How long session keys are reused before being read again (a password change takes effect
/// on every node within this).
const KEYS_TTL: Duration = Duration::from_secs(2);

/// The gateway's shared state.
#[derive(Debug)]
pub struct GatewayState {
    /// The node's services.
    pub local: LocalServices,
    /// `[gateway]`.
    pub config: GatewaySection,
    /// This node's id.
    pub node_id: String,
    /// This node's name.
    pub node_name: String,
    /// The configured ports of the node's services (`[ports]`), for the service registry.
    pub service_ports: Vec<(String, u16)>,
    /// Login attempts per client address.
    pub limiter: Mutex<LoginLimiter>,
    /// The directory and names as name resolution sees them (shared with the DNS server).
    pub names: std::sync::Arc<crate::dns::server::SnapshotCache>,
    keys: Mutex<Option<(Instant, Option<SessionKeys>)>>,
}

impl GatewayState {
    /// A state over `local` for this node.
    pub fn new(
        local: LocalServices,
        config: GatewaySection,
        node_id: String,
        node_name: String,
    ) -> GatewayState {
        GatewayState {
            limiter: Mutex::new(LoginLimiter::new(
                config.login_burst,
                config.login_per_minute,
            )),
            names: std::sync::Arc::new(crate::dns::server::SnapshotCache::new(local.clone())),
            local,
            config,
            node_id,
            node_name,
            service_ports: vec![],
            keys: Mutex::new(None),
        }
    }

    /// The admin password's PHC string, if one is set.
    pub async fn password_hash(&self) -> Result<Option<String>, ApiError> {
        Ok(self
            .local
            .kv_get(AUTH_TABLE, PASSWORD_KEY)
            .await?
            .map(|v| v.value))
    }

    /// The current session keys (`None` while no password is set), cached for a moment.
    pub async fn session_keys(&self) -> Result<Option<SessionKeys>, ApiError> {
        if let Ok(guard) = self.keys.lock() {
            if let Some((at, keys)) = guard.as_ref() {
                if at.elapsed() < KEYS_TTL {
                    return Ok(keys.clone());
                }
            }
        }
        let password = self.password_hash().await?;
        let session_key = self.local.kv_get(AUTH_TABLE, SESSION_KEY).await?;
        let keys = match (password, session_key) {
            (Some(p), Some(k)) => Some(SessionKeys::derive(&k.value, &p)),
            _ => None,
        };
        if let Ok(mut guard) = self.keys.lock() {
            *guard = Some((Instant::now(), keys.clone()));
        }
        Ok(keys)
    }

    /// Forgets the cached keys (after a login changes nothing, but a test or passwd might).
    pub fn forget_keys(&self) {
        if let Ok(mut guard) = self.keys.lock() {
            *guard = None;
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
