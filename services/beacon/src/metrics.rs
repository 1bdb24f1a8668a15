//! The beacon's Prometheus families (`hyphae_beacon_…` on `/metrics`).

use hyphae_core::metrics::MetricsRegistry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::discovery::Verdict;

type Labels = Vec<(String, String)>;

/// Counters of what the beacon sent and received, and why it dropped packets.
#[derive(Clone, Default)]
pub struct BeaconMetrics {
    sent: Counter,
    sent_bytes: Counter,
    received: Counter,
    received_bytes: Counter,
    dropped: Family<Labels, Counter>,
    hellos: Counter,
    /// Members (or candidates) currently heard.
    pub members: Gauge,
}

impl BeaconMetrics {
    /// Registers the families.
    pub fn register(registry: &MetricsRegistry) -> BeaconMetrics {
        let m = BeaconMetrics::default();
        registry.register("beacon", |r| {
            r.register("packets_sent", "Beacon packets sent", m.sent.clone());
            r.register("sent_bytes", "Beacon bytes sent", m.sent_bytes.clone());
            r.register(
                "packets_received",
                "Beacon packets received",
                m.received.clone(),
            );
            r.register(
                "received_bytes",
                "Beacon bytes received",
                m.received_bytes.clone(),
            );
            r.register(
                "packets_dropped",
                "Beacon packets dropped, by reason (malformed, other_mesh, forged, replayed)",
                m.dropped.clone(),
            );
            r.register(
                "hellos",
                "Unauthenticated hellos of unadmitted nodes",
                m.hellos.clone(),
            );
            r.register("members", "Members heard on the LAN", m.members.clone());
        });
        for reason in ["malformed", "other_mesh", "forged", "replayed"] {
            let _ = m.dropped.get_or_create(&label(reason));
        }
        m
    }

    /// Counts a packet sent.
    pub fn sent(&self, bytes: usize) {
        self.sent.inc();
        self.sent_bytes.inc_by(bytes as u64);
    }

    /// Counts a packet received and what it was.
    pub fn received(&self, bytes: usize, verdict: Verdict) {
        self.received.inc();
        self.received_bytes.inc_by(bytes as u64);
        let reason = match verdict {
            Verdict::Malformed => "malformed",
            Verdict::OtherMesh => "other_mesh",
            Verdict::Forged => "forged",
            Verdict::Replayed => "replayed",
            Verdict::Hello { .. } => {
                self.hellos.inc();
                return;
            }
            _ => return,
        };
        self.dropped.get_or_create(&label(reason)).inc();
    }

    /// Dropped packets for one reason (for `/status`).
    pub fn dropped(&self, reason: &str) -> u64 {
        self.dropped.get_or_create(&label(reason)).get()
    }

    /// Totals (for `/status`): sent, sent bytes, received, received bytes.
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        (
            self.sent.get(),
            self.sent_bytes.get(),
            self.received.get(),
            self.received_bytes.get(),
        )
    }
}

fn label(reason: &str) -> Labels {
    vec![("reason".to_string(), reason.to_string())]
}
