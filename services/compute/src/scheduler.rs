//! The job scheduler, sans-IO: which tile goes to which worker, what happens when a worker
//! answers, fails, lies or dies. The job runner (`service::job`) does the I/O around it.
//!
//! Ranking ("pheromone"): every worker has a score, its running throughput in GFLOP/s
//! (seeded from its published self-benchmark, then an exponential moving average of verified
//! tiles: deposit), times its trust. A failure (error, timeout, unreachable) evaporates half the
//! score; a rejected result (failed verification) cuts trust to a quarter and counts an offence;
//! `quarantine_after` offences quarantine the worker (the runner writes the flag to the
//! coordinator's key space, which every node reads). `max_failures` consecutive failures mark
//! a worker gone for this job. A free worker with the best score gets the next pending tile;
//! a worker runs at most `per_worker` tiles at once.

use std::collections::BTreeMap;

/// One tile of `C`: rows `r0..r0+rows`, columns `c0..c0+cols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TileSpec {
    /// Row of the tile's first element.
    pub r0: usize,
    /// Rows.
    pub rows: usize,
    /// Column of the tile's first element.
    pub c0: usize,
    /// Columns.
    pub cols: usize,
}

/// Splits an `m × n` result into tiles of at most `tile × tile`, row-major order.
pub fn plan(m: usize, n: usize, tile: usize) -> Vec<TileSpec> {
    let tile = tile.max(1);
    let mut out = Vec::new();
    for r0 in (0..m).step_by(tile) {
        for c0 in (0..n).step_by(tile) {
            out.push(TileSpec {
                r0,
                rows: tile.min(m - r0),
                c0,
                cols: tile.min(n - c0),
            });
        }
    }
    out
}

/// What happened to one dispatched tile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Verified; the worker took `seconds` for `flops` floating-point operations.
    Verified {
        /// Wall time of the call.
        seconds: f64,
        /// `2·rows·k·cols`.
        flops: f64,
    },
    /// The result failed verification.
    Rejected,
    /// The call failed (error, timeout, unreachable).
    Failed,
}

/// A tile's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TileState {
    /// Waiting for a worker.
    Pending,
    /// Dispatched.
    Running {
        /// To whom.
        worker: String,
    },
    /// Verified and kept.
    Done {
        /// Who computed it.
        worker: String,
    },
}

/// A worker as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerState {
    /// Running throughput, GFLOP/s (the pheromone deposit).
    pub score: f64,
    /// 1.0 for an honest worker; cut on every rejected result.
    pub trust: f64,
    /// Rejected results in this job.
    pub offences: u32,
    /// Consecutive failed calls.
    pub failures: u32,
    /// Tiles running there now.
    pub running: usize,
    /// Quarantined (never given work again).
    pub quarantined: bool,
    /// Tiles it computed and that were kept.
    pub verified: usize,
}

impl WorkerState {
    fn rank(&self) -> f64 {
        self.score * self.trust / (1.0 + self.running as f64)
    }
}

/// What the runner must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the quarantine flag of this worker to the key space.
    Quarantine(String),
}

/// Tunables of the scheduler.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Tiles one worker runs at once.
    pub per_worker: usize,
    /// Offences before quarantine.
    pub quarantine_after: u32,
    /// Consecutive failures before a worker is dropped from the job.
    pub max_failures: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            per_worker: 2,
            quarantine_after: 2,
            max_failures: 3,
        }
    }
}

/// The scheduler of one job.
#[derive(Debug, Clone)]
pub struct Scheduler {
    tiles: Vec<TileState>,
    workers: BTreeMap<String, WorkerState>,
    policy: Policy,
}

impl Scheduler {
    /// A job of `tiles` tiles over `workers` (name, self-benchmark GFLOP/s).
    pub fn new(
        tiles: usize,
        workers: impl IntoIterator<Item = (String, f64)>,
        policy: Policy,
    ) -> Scheduler {
        Scheduler {
            tiles: vec![TileState::Pending; tiles],
            workers: workers
                .into_iter()
                .map(|(name, gflops)| {
                    (
                        name,
                        WorkerState {
                            score: gflops.max(0.001),
                            trust: 1.0,
                            offences: 0,
                            failures: 0,
                            running: 0,
                            quarantined: false,
                            verified: 0,
                        },
                    )
                })
                .collect(),
            policy,
        }
    }

    fn usable(&self, w: &WorkerState) -> bool {
        !w.quarantined && w.failures < self.policy.max_failures
    }

    /// The next (tile, worker) to dispatch, if a tile is pending and a worker is free.
    pub fn next_assignment(&mut self) -> Option<(usize, String)> {
        let tile = self.tiles.iter().position(|t| *t == TileState::Pending)?;
        let worker = self
            .workers
            .iter()
            .filter(|(_, w)| self.usable(w) && w.running < self.policy.per_worker)
            .max_by(|a, b| a.1.rank().total_cmp(&b.1.rank()))
            .map(|(n, _)| n.clone())?;
        if let Some(w) = self.workers.get_mut(&worker) {
            w.running += 1;
        }
        self.tiles[tile] = TileState::Running {
            worker: worker.clone(),
        };
        Some((tile, worker))
    }

    /// Records what `worker` did with `tile`.
    pub fn on_result(&mut self, tile: usize, worker: &str, outcome: Outcome) -> Vec<Action> {
        let mut actions = Vec::new();
        let quarantine_after = self.policy.quarantine_after;
        if let Some(w) = self.workers.get_mut(worker) {
            w.running = w.running.saturating_sub(1);
            match outcome {
                Outcome::Verified { seconds, flops } => {
                    let gflops = flops / seconds.max(1e-9) / 1e9;
                    w.score = 0.7 * w.score + 0.3 * gflops;
                    w.failures = 0;
                    w.verified += 1;
                }
                Outcome::Failed => {
                    w.score *= 0.5;
                    w.failures += 1;
                }
                Outcome::Rejected => {
                    w.trust *= 0.25;
                    w.offences += 1;
                    if w.offences >= quarantine_after && !w.quarantined {
                        w.quarantined = true;
                        actions.push(Action::Quarantine(worker.to_string()));
                    }
                }
            }
        }
        if let Some(state) = self.tiles.get_mut(tile) {
            let mine = matches!(state, TileState::Running { worker: w } if w == worker);
            if mine {
                *state = match outcome {
                    Outcome::Verified { .. } => TileState::Done {
                        worker: worker.to_string(),
                    },
                    _ => TileState::Pending,
                };
            }
        }
        actions
    }

    /// Every tile is done.
    pub fn finished(&self) -> bool {
        self.tiles
            .iter()
            .all(|t| matches!(t, TileState::Done { .. }))
    }

    /// Tiles are pending, nothing runs, and no worker is usable: the job cannot finish.
    pub fn stuck(&self) -> bool {
        !self.finished()
            && self.workers.values().all(|w| w.running == 0)
            && !self.workers.values().any(|w| self.usable(w))
    }

    /// The tiles' states.
    pub fn tiles(&self) -> &[TileState] {
        &self.tiles
    }

    /// The workers' states.
    pub fn workers(&self) -> &BTreeMap<String, WorkerState> {
        &self.workers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> Outcome {
        Outcome::Verified {
            seconds: 1.0,
            flops: 1e9,
        }
    }

    #[test]
    fn plan_covers_the_matrix_exactly_once() {
        for (m, n, t) in [(1, 1, 4), (17, 5, 4), (256, 256, 64), (10, 300, 128)] {
            let tiles = plan(m, n, t);
            let mut seen = vec![0u8; m * n];
            for s in &tiles {
                for i in s.r0..s.r0 + s.rows {
                    for j in s.c0..s.c0 + s.cols {
                        seen[i * n + j] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{m}x{n}/{t}");
        }
    }

    #[test]
    fn best_worker_first_and_a_dead_worker_loses_its_tiles() {
        let mut s = Scheduler::new(
            4,
            [("fast".into(), 10.0), ("slow".into(), 1.0)],
            Policy::default(),
        );
        assert_eq!(s.next_assignment(), Some((0, "fast".into())));
        // fast has one running: 10/2 = 5 still beats slow's 1.
        assert_eq!(s.next_assignment(), Some((1, "fast".into())));
        assert_eq!(s.next_assignment(), Some((2, "slow".into())));
        // fast dies: both its tiles come back.
        s.on_result(0, "fast", Outcome::Failed);
        s.on_result(1, "fast", Outcome::Failed);
        s.on_result(2, "slow", verified());
        let mut done = vec![2];
        while !s.finished() {
            let (t, w) = s.next_assignment().expect("work left");
            if w == "fast" {
                s.on_result(t, &w, Outcome::Failed);
            } else {
                s.on_result(t, &w, verified());
                done.push(t);
            }
        }
        done.sort();
        assert_eq!(done, vec![0, 1, 2, 3]);
        assert_eq!(s.workers()["fast"].failures, 3);
    }

    #[test]
    fn a_lying_worker_is_quarantined_and_its_tiles_recomputed() {
        let mut s = Scheduler::new(
            6,
            [("liar".into(), 100.0), ("honest".into(), 1.0)],
            Policy::default(),
        );
        let mut actions = Vec::new();
        while !s.finished() {
            let (t, w) = s.next_assignment().expect("work left");
            let outcome = if w == "liar" {
                Outcome::Rejected
            } else {
                verified()
            };
            actions.extend(s.on_result(t, &w, outcome));
        }
        assert_eq!(actions, vec![Action::Quarantine("liar".into())]);
        assert!(s.workers()["liar"].quarantined);
        assert!(s.tiles().iter().all(|t| *t
            == TileState::Done {
                worker: "honest".into()
            }));
    }

    #[test]
    fn no_usable_worker_means_stuck() {
        let mut s = Scheduler::new(1, [("only".into(), 1.0)], Policy::default());
        for _ in 0..3 {
            let (t, w) = s.next_assignment().unwrap();
            s.on_result(t, &w, Outcome::Failed);
        }
        assert!(s.stuck());
        assert_eq!(s.next_assignment(), None);
        assert!(Scheduler::new(1, Vec::<(String, f64)>::new(), Policy::default()).stuck());
    }
}
