//! The compute service's own Prometheus families (`hyphae_compute_…` on `/metrics`), so an
//! operator sees how often parity tiles saved a recomputation.

use hyphae_core::metrics::MetricsRegistry;
use prometheus_client::metrics::counter::Counter;

/// Counters of the jobs this node coordinated.
#[derive(Clone, Default)]
pub struct JobMetrics {
    /// Parity tiles computed and verified.
    pub parity_tiles: Counter,
    /// Tiles lost with their worker and rebuilt from their row's parity tile.
    pub tiles_rebuilt: Counter,
}

impl JobMetrics {
    /// Registers the families in the node's registry.
    pub fn register(registry: &MetricsRegistry) -> JobMetrics {
        let m = JobMetrics::default();
        registry.register("compute", |r| {
            r.register(
                "parity_tiles",
                "Parity tiles computed and verified",
                m.parity_tiles.clone(),
            );
            r.register(
                "tiles_rebuilt",
                "Tiles lost with their worker and rebuilt from their row's parity tile",
                m.tiles_rebuilt.clone(),
            );
        });
        m
    }
}
