//! Prometheus metrics: one registry per process, encoded as text on `/metrics`.
//!
//! Services register their metric families once at start ([`MetricsRegistry::register`]); the
//! families themselves are cheap atomic handles that hot paths update without locking.

use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;

/// The process-wide registry, shared by every service of the node.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    inner: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsRegistry")
    }
}

impl MetricsRegistry {
    /// An empty registry whose metric names all start with `hyphae_`.
    pub fn new() -> MetricsRegistry {
        MetricsRegistry {
            inner: Arc::new(Mutex::new(Registry::with_prefix("hyphae"))),
        }
    }

    /// Lets a service add its families under its own prefix (`hyphae_<prefix>_…`).
    pub fn register(&self, prefix: &str, f: impl FnOnce(&mut Registry)) {
        let mut registry = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(registry.sub_registry_with_prefix(prefix));
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn encode(&self) -> String {
        let registry = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn families_show_up_with_prefix() {
        let m = MetricsRegistry::new();
        let c: Counter = Counter::default();
        m.register("rpc", |r| {
            r.register("requests", "Requests served", c.clone())
        });
        c.inc();
        let text = m.encode();
        assert!(text.contains("hyphae_rpc_requests_total 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
