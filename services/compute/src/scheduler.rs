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
//!
//! Quorum mode (`Policy::replicas = 3`): every tile is computed by up to three distinct
//! workers; the runner votes on the returned results (`crate::quorum`) and reports the
//! agreeing workers as verified and the dissenters as rejected, so a liar loses trust and is
//! quarantined exactly as with Freivalds' check.
//!
//! Parity tiles (`crate::parity`): the runner groups each tile row's slots with its parity slot
//! ([`Scheduler::group`]); groups are dispatched in order, parity first, and a worker that runs a
//! slot of a group is not given another slot of that group while another usable worker exists,
//! so a dead worker takes at most one tile of a row with it (one parity tile repairs one loss).
//! A lost tile waiting for its row's rebuild is [`Scheduler::hold`]-ed off the workers.

use std::collections::{BTreeMap, BTreeSet};

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
    /// The result failed verification (or disagreed with the quorum's result).
    Rejected,
    /// The call failed (error, timeout, unreachable).
    Failed,
    /// Quorum mode: every replica came back and no two agreed, so nobody can be blamed; the
    /// replica is dropped and the worker is not asked for this tile again.
    Inconclusive,
}

/// A tile's state, as the job record and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TileState {
    /// Waiting for a worker.
    Pending,
    /// Dispatched (quorum mode: every replica running or waiting for the vote).
    Running {
        /// To whom.
        workers: Vec<String>,
    },
    /// Verified and kept.
    Done {
        /// Who computed it (quorum mode: every worker that agreed; empty when the tile was
        /// restored from a checkpoint after the job changed hands).
        workers: Vec<String>,
    },
    /// Lost with its worker; waits for its row's parity to rebuild it.
    Held,
    /// Rebuilt from its row's parity tile and verified, not computed again.
    Rebuilt,
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
    /// Copies of every tile computed on distinct workers: 1 (Freivalds mode) or 3 (quorum
    /// mode, where the runner accepts a result two of them agree on).
    pub replicas: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            per_worker: 2,
            quarantine_after: 2,
            max_failures: 3,
            replicas: 1,
        }
    }
}

/// Where one replica of a tile is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replica {
    /// The call is in flight (counts against the worker's `per_worker`).
    Running,
    /// The result is back and waits for the quorum vote.
    Returned,
}

/// One tile's bookkeeping.
#[derive(Debug, Clone, Default)]
struct Slot {
    replicas: BTreeMap<String, Replica>,
    /// Workers never asked for this tile again (inconclusive votes).
    excluded: BTreeSet<String>,
    /// Set once the tile is kept: who computed it.
    done: Option<Vec<String>>,
    /// Kept off the workers (lost, waiting for its row's rebuild).
    held: bool,
    /// Kept because it was rebuilt from parity.
    rebuilt: bool,
    /// The group (tile row with its parity slot) whose slots go to distinct workers.
    group: Option<usize>,
}

/// The scheduler of one job.
#[derive(Debug, Clone)]
pub struct Scheduler {
    slots: Vec<Slot>,
    workers: BTreeMap<String, WorkerState>,
    policy: Policy,
    /// Dispatch order of the slots.
    order: Vec<usize>,
    /// Slots of every group.
    groups: Vec<Vec<usize>>,
}

impl Scheduler {
    /// A job of `tiles` tiles over `workers` (name, self-benchmark GFLOP/s).
    pub fn new(
        tiles: usize,
        workers: impl IntoIterator<Item = (String, f64)>,
        policy: Policy,
    ) -> Scheduler {
        Scheduler {
            order: (0..tiles).collect(),
            groups: Vec::new(),
            slots: vec![Slot::default(); tiles],
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
            policy: Policy {
                replicas: policy.replicas.max(1),
                ..policy
            },
        }
    }

    fn usable(&self, w: &WorkerState) -> bool {
        !w.quarantined && w.failures < self.policy.max_failures
    }

    /// Groups slots (a tile row and its parity slot): groups are dispatched in this order
    /// (slots outside every group last), and while two or more workers are usable a worker
    /// runs at most one slot of a group at a time.
    pub fn group(&mut self, groups: Vec<Vec<usize>>) {
        let mut order = Vec::with_capacity(self.slots.len());
        for (g, members) in groups.iter().enumerate() {
            for &s in members {
                if let Some(slot) = self.slots.get_mut(s) {
                    if slot.group.is_none() {
                        slot.group = Some(g);
                        order.push(s);
                    }
                }
            }
        }
        order.extend((0..self.slots.len()).filter(|&s| self.slots[s].group.is_none()));
        self.order = order;
        self.groups = groups;
    }

    /// Whether `worker` runs another slot of `tile`'s group.
    fn runs_group_of(&self, tile: usize, worker: &str) -> bool {
        let Some(g) = self.slots[tile].group else {
            return false;
        };
        self.groups.get(g).is_some_and(|members| {
            members.iter().any(|&s| {
                s != tile
                    && self
                        .slots
                        .get(s)
                        .is_some_and(|o| o.replicas.get(worker) == Some(&Replica::Running))
            })
        })
    }

    /// The best free worker that may take `tile` (not already holding a replica of it).
    fn candidate(&self, tile: usize) -> Option<String> {
        let slot = &self.slots[tile];
        if slot.done.is_some() || slot.held || slot.replicas.len() >= self.policy.replicas {
            return None;
        }
        let spread =
            slot.group.is_some() && self.workers.values().filter(|w| self.usable(w)).count() >= 2;
        self.workers
            .iter()
            .filter(|(n, w)| {
                self.usable(w)
                    && w.running < self.policy.per_worker
                    && !slot.replicas.contains_key(*n)
                    && !slot.excluded.contains(*n)
                    && !(spread && self.runs_group_of(tile, n))
            })
            .max_by(|a, b| a.1.rank().total_cmp(&b.1.rank()))
            .map(|(n, _)| n.clone())
    }

    /// The next (tile, worker) to dispatch, if a tile needs a replica and a worker is free.
    pub fn next_assignment(&mut self) -> Option<(usize, String)> {
        let (tile, worker) = self
            .order
            .iter()
            .find_map(|&t| self.candidate(t).map(|w| (t, w)))?;
        if let Some(w) = self.workers.get_mut(&worker) {
            w.running += 1;
        }
        self.slots[tile]
            .replicas
            .insert(worker.clone(), Replica::Running);
        Some((tile, worker))
    }

    /// Quorum mode: `worker`'s result for `tile` is back and waits for the vote. Frees the
    /// worker's slot; the replica still counts for the tile until `on_result` settles it.
    pub fn on_returned(&mut self, tile: usize, worker: &str) {
        let Some(slot) = self.slots.get_mut(tile) else {
            return;
        };
        if let Some(r) = slot.replicas.get_mut(worker) {
            if *r == Replica::Running {
                *r = Replica::Returned;
                if let Some(w) = self.workers.get_mut(worker) {
                    w.running = w.running.saturating_sub(1);
                }
            }
        }
    }

    /// Records what `worker` did with `tile`.
    pub fn on_result(&mut self, tile: usize, worker: &str, outcome: Outcome) -> Vec<Action> {
        let mut actions = Vec::new();
        let quarantine_after = self.policy.quarantine_after;
        let was = self
            .slots
            .get_mut(tile)
            .and_then(|s| s.replicas.remove(worker));
        if let Some(w) = self.workers.get_mut(worker) {
            if was == Some(Replica::Running) {
                w.running = w.running.saturating_sub(1);
            }
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
                Outcome::Rejected => offend(w, worker, quarantine_after, &mut actions),
                Outcome::Inconclusive => {}
            }
        }
        if let Some(slot) = self.slots.get_mut(tile) {
            match outcome {
                Outcome::Verified { .. } => slot
                    .done
                    .get_or_insert_with(Vec::new)
                    .push(worker.to_string()),
                Outcome::Inconclusive => {
                    slot.excluded.insert(worker.to_string());
                }
                Outcome::Rejected | Outcome::Failed => {}
            }
        }
        actions
    }

    /// Counts a wrong result `worker` returned outside this scheduler's tiles (a Cannon `C`
    /// block that failed verification) exactly like a rejected tile: trust cut, an offence,
    /// quarantine at the same threshold. A worker not in this job is ignored.
    pub fn on_offence(&mut self, worker: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        let quarantine_after = self.policy.quarantine_after;
        if let Some(w) = self.workers.get_mut(worker) {
            offend(w, worker, quarantine_after, &mut actions);
        }
        actions
    }

    /// Marks `tile` done without computing it (restored from a checkpoint, a parity tile no
    /// longer needed).
    pub fn mark_done(&mut self, tile: usize) {
        if let Some(slot) = self.slots.get_mut(tile) {
            slot.held = false;
            slot.done.get_or_insert_with(Vec::new);
        }
    }

    /// Keeps `tile` off the workers (lost; its row's parity will rebuild it).
    pub fn hold(&mut self, tile: usize) {
        if let Some(slot) = self.slots.get_mut(tile) {
            if slot.done.is_none() {
                slot.held = true;
            }
        }
    }

    /// Gives a held `tile` back to the workers (it is re-run).
    pub fn release(&mut self, tile: usize) {
        if let Some(slot) = self.slots.get_mut(tile) {
            slot.held = false;
        }
    }

    /// Marks `tile` done: rebuilt from its row's parity tile.
    pub fn mark_rebuilt(&mut self, tile: usize) {
        if let Some(slot) = self.slots.get_mut(tile) {
            slot.held = false;
            slot.rebuilt = true;
            slot.done.get_or_insert_with(Vec::new);
        }
    }

    /// Whether a call of `tile` is in flight.
    pub fn is_running(&self, tile: usize) -> bool {
        self.slots
            .get(tile)
            .is_some_and(|s| s.replicas.values().any(|r| *r == Replica::Running))
    }

    /// Whether `tile` is kept.
    pub fn is_done(&self, tile: usize) -> bool {
        self.slots.get(tile).is_some_and(|s| s.done.is_some())
    }

    /// Every tile is done.
    pub fn finished(&self) -> bool {
        self.slots.iter().all(|s| s.done.is_some())
    }

    /// Tiles are pending, nothing runs, and no tile can be given to any worker: the job
    /// cannot finish.
    pub fn stuck(&self) -> bool {
        !self.finished()
            && self.workers.values().all(|w| w.running == 0)
            && (0..self.slots.len()).all(|t| self.candidate(t).is_none())
    }

    /// The tiles' states.
    pub fn tiles(&self) -> Vec<TileState> {
        self.slots
            .iter()
            .map(|s| match &s.done {
                Some(_) if s.rebuilt => TileState::Rebuilt,
                Some(w) => TileState::Done { workers: w.clone() },
                None if s.held => TileState::Held,
                None if s.replicas.is_empty() => TileState::Pending,
                None => TileState::Running {
                    workers: s.replicas.keys().cloned().collect(),
                },
            })
            .collect()
    }

    /// The workers' states.
    pub fn workers(&self) -> &BTreeMap<String, WorkerState> {
        &self.workers
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// A rejected result: trust cut to a quarter, an offence, quarantine at the threshold.
fn offend(w: &mut WorkerState, name: &str, quarantine_after: u32, actions: &mut Vec<Action>) {
    w.trust *= 0.25;
    w.offences += 1;
    if w.offences >= quarantine_after && !w.quarantined {
        w.quarantined = true;
        actions.push(Action::Quarantine(name.to_string()));
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
                workers: vec!["honest".into()]
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
    #[test]
    fn quorum_replicas_go_to_distinct_workers_and_a_dissenter_is_quarantined() {
        let policy = Policy {
            replicas: 3,
            ..Policy::default()
        };
        let mut s = Scheduler::new(
            4,
            [("a".into(), 1.0), ("b".into(), 1.0), ("liar".into(), 1.0)],
            policy,
        );
        let mut actions = Vec::new();
        while !s.finished() {
            let mut batch = Vec::new();
            while let Some(x) = s.next_assignment() {
                batch.push(x);
            }
            assert!(!batch.is_empty(), "stuck: {:?}", s.tiles());
            // Replicas of one tile never share a worker.
            for (i, (t, w)) in batch.iter().enumerate() {
                assert!(!batch[i + 1..].iter().any(|(t2, w2)| t2 == t && w2 == w));
            }
            for (t, w) in &batch {
                s.on_returned(*t, w);
            }
            for (t, w) in batch {
                let outcome = if w == "liar" {
                    Outcome::Rejected
                } else {
                    verified()
                };
                actions.extend(s.on_result(t, &w, outcome));
            }
        }
        assert_eq!(actions, vec![Action::Quarantine("liar".into())]);
        for t in s.tiles() {
            let TileState::Done { workers } = t else {
                panic!("not done: {t:?}")
            };
            assert!(!workers.contains(&"liar".to_string()));
        }
    }

    #[test]
    fn an_inconclusive_vote_excludes_the_workers_and_may_leave_the_job_stuck() {
        let policy = Policy {
            replicas: 3,
            ..Policy::default()
        };
        let names = ["a", "b", "c"];
        let mut s = Scheduler::new(1, names.map(|n| (n.to_string(), 1.0)), policy);
        for _ in 0..3 {
            let (t, w) = s.next_assignment().expect("a replica");
            s.on_returned(t, &w);
        }
        assert_eq!(s.next_assignment(), None, "three replicas at most");
        for n in names {
            s.on_result(0, n, Outcome::Inconclusive);
        }
        assert!(!s.finished());
        assert!(s.stuck(), "every worker is excluded from the only tile");
    }

    #[test]
    fn groups_go_parity_first_and_spread_over_workers_and_held_tiles_wait() {
        // Two rows of 3 data slots (0..3, 3..6) with parity slots 6 and 7.
        let mut s = Scheduler::new(
            8,
            [("a".into(), 1.0), ("b".into(), 1.0), ("c".into(), 1.0)],
            Policy::default(),
        );
        s.group(vec![vec![6, 0, 1, 2], vec![7, 3, 4, 5]]);
        let mut batch = Vec::new();
        while let Some(x) = s.next_assignment() {
            batch.push(x);
        }
        assert_eq!(batch.len(), 6, "two slots per worker: {batch:?}");
        assert_eq!(batch[0].0, 6, "the row's parity goes first");
        for w in ["a", "b", "c"] {
            let mine: Vec<usize> = batch.iter().filter(|x| x.1 == w).map(|x| x.0).collect();
            let rows: BTreeSet<bool> = mine.iter().map(|&t| t == 6 || t < 3).collect();
            assert_eq!(
                rows.len(),
                mine.len(),
                "{w} runs two slots of one row: {mine:?}"
            );
        }
        // A lost tile is held: never dispatched until released, and rebuilt shows as such.
        let (t, w) = batch[1].clone();
        s.on_result(t, &w, Outcome::Failed);
        s.hold(t);
        assert_eq!(s.tiles()[t], TileState::Held);
        assert!(!s.stuck(), "other slots still run");
        while let Some((x, _)) = s.next_assignment() {
            assert_ne!(x, t);
        }
        s.mark_rebuilt(t);
        assert!(s.is_done(t));
        assert_eq!(s.tiles()[t], TileState::Rebuilt);
        // With one usable worker a group's slots may share it.
        let mut one = Scheduler::new(3, [("only".into(), 1.0)], Policy::default());
        one.group(vec![vec![2, 0, 1]]);
        assert_eq!(one.next_assignment(), Some((2, "only".into())));
        assert_eq!(one.next_assignment(), Some((0, "only".into())));
    }

    #[test]
    fn an_offence_outside_the_tiles_counts_towards_quarantine() {
        let mut s = Scheduler::new(
            4,
            [("liar".into(), 100.0), ("honest".into(), 1.0)],
            Policy::default(),
        );
        assert_eq!(s.on_offence("liar"), vec![]);
        assert_eq!(s.on_offence("stranger"), vec![]);
        assert_eq!(s.workers()["liar"].offences, 1);
        assert_eq!(s.workers()["liar"].trust, 0.25);
        // Its next wrong tile is the second offence: quarantined.
        let (t, w) = s.next_assignment().expect("work");
        assert_eq!(w, "liar", "still the best score (100 × 0.25 > 1)");
        assert_eq!(
            s.on_result(t, &w, Outcome::Rejected),
            vec![Action::Quarantine("liar".into())]
        );
    }

    #[test]
    fn restored_tiles_are_never_dispatched() {
        let mut s = Scheduler::new(3, [("w".into(), 1.0)], Policy::default());
        s.mark_done(0);
        s.mark_done(2);
        assert_eq!(s.next_assignment(), Some((1, "w".into())));
        s.on_result(1, "w", verified());
        assert!(s.finished());
        assert_eq!(s.tiles()[0], TileState::Done { workers: vec![] });
    }
}
