//! The cost model that decides between independent tiles and Cannon's systolic mode.
//!
//! Both modes do the same `2·m·k·n` flops; they differ in who sends what over which link.
//! The job's node (the origin) holds `A` and `B` and its one link is the bottleneck:
//!
//! - **Tiles** (`t × t` tiles of `C`): every tile carries its `t` rows of `A` and `t` columns of
//!   `B` out of the origin, `4·k·(m·⌈n/t⌉ + n·⌈m/t⌉)` bytes in all, and its `C` block back
//!   (`4·m·n`, on the other direction of the full-duplex link). Compute runs on every worker at
//!   once and overlaps the transfers: `T = max(compute, network) + one tile's transfer`.
//! - **Cannon** on `q × q` workers: the origin sends each worker one skewed block of `A` and of
//!   `B` (`4·(m·k + k·n)` bytes in all, the least any distribution can send), then `q − 1` steps
//!   in which every worker multiplies and, at the same time, sends its blocks to its neighbours
//!   over its own link (`4·(m·k + k·n)/q²` bytes per worker per step, all links in parallel);
//!   the pulse goes at the pace of the slowest worker. Then the `C` blocks come back:
//!   `T = distribute + Σ_steps max(compute_step, shift_step) + compute_last + collect`.
//!
//! Each call or pulse step also costs a fixed latency (default 2 ms), which keeps small
//! products on tiles.
//!
//! Rates: each worker's GFLOP/s is its pheromone score (its self-benchmark until it has verified
//! tiles); the link rate is configured per job (`link_mbps`, default 1000 Mbit/s). The scheduler
//! picks Cannon when its estimate is lower, the grid has at least 2×2 workers, and each block
//! dimension is at least one row.

use serde::Serialize;

/// Which way a GEMM job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Let the model decide (the default).
    #[default]
    Auto,
    /// Independent verified tiles.
    Tiles,
    /// Cannon's systolic algorithm.
    Cannon,
}

/// What the model needs to know.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Rows of `A`.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of `B`.
    pub n: usize,
    /// Tile edge of the tile mode.
    pub tile: usize,
    /// Every usable worker's rate, GFLOP/s.
    pub gflops: Vec<f64>,
    /// Link rate between nodes, bytes per second.
    pub link_bytes_per_sec: f64,
    /// Fixed cost of one call or one pulse step (round trip, stream set-up, task hand-off).
    pub latency_secs: f64,
}

/// The default per-call cost: a LAN round trip plus a QUIC stream and a task hand-off.
pub const DEFAULT_LATENCY_SECS: f64 = 0.002;

/// A mode's estimate, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Time spent computing on the critical path.
    pub compute_secs: f64,
    /// Time spent moving bytes on the critical path.
    pub network_secs: f64,
    /// The estimated wall time.
    pub total_secs: f64,
}

/// Both estimates and the choice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Decision {
    /// Independent tiles.
    pub tiles: Estimate,
    /// Cannon on the largest square grid, if there is one (≥ 2×2 workers).
    pub cannon: Option<Estimate>,
    /// Workers per side of that grid.
    pub q: usize,
    /// The pick.
    pub mode: Mode,
}

fn grid_side(p: usize) -> usize {
    let mut q = 1;
    while (q + 1) * (q + 1) <= p {
        q += 1;
    }
    q
}

/// The tile mode's estimate.
pub fn tiles(i: &Inputs) -> Estimate {
    let (m, k, n) = (i.m as f64, i.k as f64, i.n as f64);
    let t = i.tile.max(1);
    let (tr, tc) = (i.m.div_ceil(t) as f64, i.n.div_ceil(t) as f64);
    let bw = i.link_bytes_per_sec.max(1.0);
    let total_rate: f64 = i.gflops.iter().map(|g| g.max(0.0)).sum::<f64>().max(1e-3) * 1e9;
    let compute = 2.0 * m * k * n / total_rate;
    let out = 4.0 * k * (m * tc + n * tr) / bw;
    let back = 4.0 * m * n / bw;
    let network = out.max(back);
    let first_tile = 4.0 * k * 2.0 * (t as f64).min(m.max(n)) / bw;
    // Calls are pipelined two per worker: their fixed costs add up in rounds.
    let rounds = (tr * tc / (2.0 * i.gflops.len().max(1) as f64)).ceil();
    Estimate {
        compute_secs: compute,
        network_secs: network,
        total_secs: compute.max(network) + first_tile + rounds * i.latency_secs,
    }
}

/// Cannon's estimate on a `q × q` grid of the fastest `q²` workers.
pub fn cannon(i: &Inputs, q: usize) -> Estimate {
    let q = q.max(1);
    let (m, k, n) = (i.m as f64, i.k as f64, i.n as f64);
    let bw = i.link_bytes_per_sec.max(1.0);
    let mut rates: Vec<f64> = i.gflops.iter().map(|g| g.max(1e-3)).collect();
    rates.sort_by(|a, b| b.total_cmp(a));
    let slowest = rates
        .get(q * q - 1)
        .or(rates.last())
        .copied()
        .unwrap_or(1e-3)
        * 1e9;
    let qf = q as f64;
    let step_compute = 2.0 * (m / qf) * (k / qf) * (n / qf) / slowest;
    let distribute = 4.0 * (m * k + k * n) / bw;
    let shift = 4.0 * (m * k + k * n) / (qf * qf) / bw;
    let collect = 4.0 * m * n / bw;
    let steps = (q - 1) as f64;
    let pulse = steps * step_compute.max(shift) + step_compute;
    Estimate {
        compute_secs: qf * step_compute,
        network_secs: distribute + steps * shift + collect,
        // Start, every step, collect: each a synchronisation of the whole grid.
        total_secs: distribute + pulse + collect + (qf + 1.0) * i.latency_secs,
    }
}

/// Estimates both modes and picks one; `forced` overrides the pick (Cannon only if a grid of
/// at least 2×2 exists).
pub fn decide(i: &Inputs, forced: Mode) -> Decision {
    let t = tiles(i);
    let q = grid_side(i.gflops.len());
    let fits = q >= 2 && i.m >= q && i.k >= q && i.n >= q;
    let c = fits.then(|| cannon(i, q));
    let mode = match (forced, c) {
        (Mode::Tiles, _) | (_, None) => Mode::Tiles,
        (Mode::Cannon, Some(_)) => Mode::Cannon,
        (Mode::Auto, Some(c)) if c.total_secs < t.total_secs => Mode::Cannon,
        (Mode::Auto, Some(_)) => Mode::Tiles,
    };
    Decision {
        tiles: t,
        cannon: c,
        q,
        mode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GBIT: f64 = 1e9 / 8.0;

    fn inputs(n: usize, p: usize, gflops: f64, bw: f64) -> Inputs {
        Inputs {
            m: n,
            k: n,
            n,
            tile: 256,
            gflops: vec![gflops; p],
            link_bytes_per_sec: bw,
            latency_secs: DEFAULT_LATENCY_SECS,
        }
    }

    #[test]
    fn large_products_on_slow_links_pick_cannon() {
        // n = 4096 at 50 GFLOP/s per worker over 1 Gbit/s: tiles ship A and B sixteen times.
        let d = decide(&inputs(4096, 4, 50.0, GBIT), Mode::Auto);
        assert_eq!(d.mode, Mode::Cannon, "{d:?}");
        assert!(d.tiles.network_secs > 10.0 * d.cannon.unwrap().network_secs / 2.0);
    }

    #[test]
    fn small_products_or_fast_links_or_few_workers_pick_tiles() {
        // Tiny product: the initial distribution alone dominates; tiles pipeline it.
        let d = decide(&inputs(64, 4, 50.0, GBIT), Mode::Auto);
        assert_eq!(d.mode, Mode::Tiles, "{d:?}");
        // Three workers make no 2×2 grid, even when forced.
        let d = decide(&inputs(4096, 3, 50.0, GBIT), Mode::Cannon);
        assert_eq!((d.mode, d.cannon), (Mode::Tiles, None));
        // A product smaller than the grid.
        let d = decide(&inputs(1, 4, 50.0, GBIT), Mode::Cannon);
        assert_eq!(d.mode, Mode::Tiles);
    }

    #[test]
    fn a_slow_worker_slows_the_whole_pulse_but_not_the_tiles() {
        let mut i = inputs(2048, 4, 50.0, 100.0 * GBIT);
        let even = decide(&i, Mode::Auto);
        i.gflops[3] = 0.5;
        let skewed = decide(&i, Mode::Auto);
        let (c0, c1) = (even.cannon.unwrap(), skewed.cannon.unwrap());
        assert!(c1.total_secs > 20.0 * c0.total_secs, "{c0:?} {c1:?}");
        assert!(skewed.tiles.total_secs < 2.0 * even.tiles.total_secs);
        assert_eq!(skewed.mode, Mode::Tiles);
    }

    #[test]
    fn forcing_a_mode_and_the_estimates_add_up() {
        let i = inputs(1024, 9, 10.0, GBIT);
        let d = decide(&i, Mode::Tiles);
        assert_eq!((d.mode, d.q), (Mode::Tiles, 3));
        let c = cannon(&i, 3);
        // 2·1024³ flops over 9 workers at 10 GFLOP/s.
        assert!((c.compute_secs - 2.0 * 1024f64.powi(3) / 9.0 / 1e10).abs() < 1e-9);
        assert!(c.total_secs >= c.network_secs.max(c.compute_secs));
        let t = tiles(&i);
        assert!(t.total_secs >= t.network_secs.max(t.compute_secs));
    }
}
