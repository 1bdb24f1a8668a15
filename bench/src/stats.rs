//! Summaries of latency samples.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of round trips, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl Latency {
    /// Summarises samples (sorted in place).
    pub fn of(samples: &mut [Duration]) -> Latency {
        samples.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(i).copied().map(us).unwrap_or(0.0)
        };
        let mean = if samples.is_empty() {
            0.0
        } else {
            samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64
        };
        Latency {
            samples: samples.len(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p95_us: at(0.95),
            p99_us: at(0.99),
            max_us: at(1.0),
            mean_us: mean,
        }
    }
}

/// The median of a few throughput runs.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The `q`-th percentile (0-100, nearest rank) of values already sorted ascending.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q / 100.0).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
