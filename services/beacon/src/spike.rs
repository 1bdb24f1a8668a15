//! The "spike protocol": when a hardware report goes to the queen.
//!
//! A report is sent when CPU load, RAM use or VRAM use moved by more than the threshold (5%)
//! since the last report, and at least every period (60 s) regardless. Movements are measured
//! against capacity (5 percentage points of CPU, 5% of total RAM, 5% of total VRAM), not against
//! the last value, so that an idle node near zero does not report every flicker. Sans-IO.

use std::time::{Duration, Instant};

/// The figures the rule watches, each as a fraction of its capacity (0.0 ..= 1.0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// CPU load over all cores.
    pub cpu: f64,
    /// RAM in use / total RAM.
    pub ram: f64,
    /// VRAM in use / total VRAM (0 without a GPU).
    pub vram: f64,
}

/// Decides when the next report is due.
#[derive(Debug, Clone)]
pub struct SpikeGate {
    threshold: f64,
    period: Duration,
    last: Option<(Instant, Figures)>,
}

impl SpikeGate {
    /// The rule: 5% and 60 s.
    pub fn standard() -> SpikeGate {
        SpikeGate::new(0.05, Duration::from_secs(60))
    }

    /// A gate with its own threshold (fraction of capacity) and period.
    pub fn new(threshold: f64, period: Duration) -> SpikeGate {
        SpikeGate {
            threshold,
            period,
            last: None,
        }
    }

    /// Whether to send a report of `now_figures` at `now`.
    pub fn due(&self, now: Instant, figures: Figures) -> bool {
        let Some((at, last)) = self.last else {
            return true;
        };
        if now.saturating_duration_since(at) >= self.period {
            return true;
        }
        let moved = |a: f64, b: f64| (a - b).abs() > self.threshold;
        moved(figures.cpu, last.cpu)
            || moved(figures.ram, last.ram)
            || moved(figures.vram, last.vram)
    }

    /// Records that a report of `figures` went out at `now` (call only when it was delivered,
    /// so that a failed send is retried at the next sample).
    pub fn sent(&mut self, now: Instant, figures: Figures) {
        self.last = Some((now, figures));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(cpu: f64, ram: f64, vram: f64) -> Figures {
        Figures { cpu, ram, vram }
    }

    #[test]
    fn first_sample_is_always_reported() {
        assert!(SpikeGate::standard().due(Instant::now(), f(0.0, 0.0, 0.0)));
    }

    #[test]
    fn small_moves_wait_big_moves_report() {
        let t = Instant::now();
        let mut g = SpikeGate::standard();
        g.sent(t, f(0.20, 0.50, 0.10));
        let s = Duration::from_secs(1);
        assert!(!g.due(t + s, f(0.24, 0.50, 0.10)), "4 points of CPU");
        assert!(!g.due(t + s, f(0.20, 0.549, 0.10)), "4.9% of RAM");
        assert!(
            !g.due(t + s, f(0.20, 0.50, 0.05)),
            "5% of VRAM is not more than 5%"
        );
        assert!(g.due(t + s, f(0.26, 0.50, 0.10)), "6 points of CPU");
        assert!(g.due(t + s, f(0.20, 0.44, 0.10)), "RAM dropped 6%");
        assert!(g.due(t + s, f(0.20, 0.50, 0.20)), "VRAM up 10%");
    }

    #[test]
    fn moves_are_measured_from_the_last_report_not_the_last_sample() {
        let t = Instant::now();
        let mut g = SpikeGate::standard();
        g.sent(t, f(0.10, 0.10, 0.0));
        // Creeping up 2 points per sample: no single step is a spike, the sum is.
        assert!(!g.due(t, f(0.12, 0.10, 0.0)));
        assert!(!g.due(t, f(0.14, 0.10, 0.0)));
        assert!(g.due(t, f(0.16, 0.10, 0.0)));
    }

    #[test]
    fn a_quiet_node_reports_every_period() {
        let t = Instant::now();
        let mut g = SpikeGate::standard();
        g.sent(t, f(0.1, 0.1, 0.1));
        assert!(!g.due(t + Duration::from_secs(59), f(0.1, 0.1, 0.1)));
        assert!(g.due(t + Duration::from_secs(60), f(0.1, 0.1, 0.1)));
        g.sent(t + Duration::from_secs(60), f(0.1, 0.1, 0.1));
        assert!(!g.due(t + Duration::from_secs(61), f(0.1, 0.1, 0.1)));
    }
}
