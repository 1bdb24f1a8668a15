//! One worker's side of Cannon's systolic pulse, sans-IO.
//!
//! The worker holds an `A` and a `B` block, multiplies them, passes them on (`A` west, `B`
//! north) and waits for the next pair from its east and south neighbours. The driver feeds it
//! events (started, product done, block received, wait timed out) and carries out its
//! [`Action`]s (multiply, send, fetch from the origin). Blocks are opaque (`T`), so the tests run
//! it on block coordinates as well as on real matrices.
//!
//! The quorum-timeout: when the driver's step deadline passes and a neighbour's block has not
//! come, [`Pulse::on_timeout`] asks for the missing block from the job's **origin** (the node
//! that holds `A` and `B`). A block from the origin and one from the neighbour are the same
//! block, so whichever arrives first is used and the other is ignored; a slow or dead neighbour
//! costs one extra transfer from the origin instead of stalling the pulse. The block fetched
//! from the origin is passed on like any other, so the ring keeps moving past the hole.

use std::collections::{BTreeMap, BTreeSet};

use super::grid::{Grid, Kind, Pos};

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<T> {
    /// Multiply `a·b` and add it to `C`; report with [`Pulse::on_multiplied`].
    Multiply {
        /// The step.
        step: usize,
        /// `A`'s block.
        a: T,
        /// `B`'s block.
        b: T,
    },
    /// Send `block` to the worker at `to`, for its step `step`.
    Send {
        /// Which input.
        kind: Kind,
        /// The receiver.
        to: Pos,
        /// The receiver's step that uses it.
        step: usize,
        /// The block.
        block: T,
    },
    /// Fetch block `(block_row, block_col)` of `kind` from the origin (the neighbour is late);
    /// deliver it with [`Pulse::on_block`].
    Fetch {
        /// Which input.
        kind: Kind,
        /// The step that needs it.
        step: usize,
        /// Block row and column in the input.
        block: (usize, usize),
    },
    /// Every step is multiplied: `C` is complete.
    Finished,
}

/// Where the pulse stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started.
    Idle,
    /// Multiplying the operands of `step`.
    Multiplying(usize),
    /// Waiting for the operands of `step`.
    Waiting(usize),
    /// Done.
    Finished,
}

/// Why an event was refused (the driver logs it and carries on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PulseError {
    /// A block for a step this grid does not have.
    #[error("block for step {step} of a {q}-step pulse")]
    NoSuchStep {
        /// The step named.
        step: usize,
        /// Steps in the pulse.
        q: usize,
    },
    /// An event that does not fit the phase.
    #[error("unexpected {event} in phase {phase:?}")]
    OutOfOrder {
        /// What happened.
        event: &'static str,
        /// The phase.
        phase: Phase,
    },
}

/// One worker's pulse.
#[derive(Debug, Clone)]
pub struct Pulse<T> {
    grid: Grid,
    pos: Pos,
    phase: Phase,
    inbox: BTreeMap<(Kind, usize), T>,
    fetching: BTreeSet<(Kind, usize)>,
    fetched: usize,
}

impl<T: Clone> Pulse<T> {
    /// The pulse of the worker at `pos` in `grid`.
    pub fn new(grid: Grid, pos: Pos) -> Pulse<T> {
        Pulse {
            grid,
            pos,
            phase: Phase::Idle,
            inbox: BTreeMap::new(),
            fetching: BTreeSet::new(),
            fetched: 0,
        }
    }

    /// Where the pulse stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Blocks asked from the origin so far.
    pub fn fetched(&self) -> usize {
        self.fetched
    }

    /// Starts with the skewed blocks `A_{i,i+j}` and `B_{i+j,j}`.
    pub fn start(&mut self, a: T, b: T) -> Result<Vec<Action<T>>, PulseError> {
        if self.phase != Phase::Idle {
            return Err(PulseError::OutOfOrder {
                event: "start",
                phase: self.phase,
            });
        }
        Ok(self.begin(0, a, b))
    }

    fn begin(&mut self, step: usize, a: T, b: T) -> Vec<Action<T>> {
        self.phase = Phase::Multiplying(step);
        let mut out = Vec::with_capacity(3);
        if step + 1 < self.grid.q {
            out.push(Action::Send {
                kind: Kind::A,
                to: self.grid.next_hop(Kind::A, self.pos),
                step: step + 1,
                block: a.clone(),
            });
            out.push(Action::Send {
                kind: Kind::B,
                to: self.grid.next_hop(Kind::B, self.pos),
                step: step + 1,
                block: b.clone(),
            });
        }
        out.insert(0, Action::Multiply { step, a, b });
        out
    }

    /// The product of `step` is in `C`.
    pub fn on_multiplied(&mut self, step: usize) -> Result<Vec<Action<T>>, PulseError> {
        if self.phase != Phase::Multiplying(step) {
            return Err(PulseError::OutOfOrder {
                event: "product",
                phase: self.phase,
            });
        }
        if step + 1 == self.grid.q {
            self.phase = Phase::Finished;
            self.inbox.clear();
            return Ok(vec![Action::Finished]);
        }
        self.phase = Phase::Waiting(step + 1);
        Ok(self.advance())
    }

    /// A block for `step` arrived (from the neighbour or the origin). Late duplicates and
    /// blocks of steps already multiplied are ignored.
    pub fn on_block(
        &mut self,
        kind: Kind,
        step: usize,
        block: T,
    ) -> Result<Vec<Action<T>>, PulseError> {
        if step == 0 || step >= self.grid.q {
            return Err(PulseError::NoSuchStep {
                step,
                q: self.grid.q,
            });
        }
        let current = match self.phase {
            Phase::Idle => 0,
            Phase::Multiplying(s) => s,
            Phase::Waiting(s) => s,
            Phase::Finished => return Ok(Vec::new()),
        };
        let used = match self.phase {
            Phase::Waiting(s) => step < s,
            _ => step <= current && self.phase != Phase::Idle,
        };
        if used {
            return Ok(Vec::new());
        }
        self.inbox.entry((kind, step)).or_insert(block);
        Ok(self.advance())
    }

    /// The step deadline passed: fetch whatever is still missing from the origin (once per
    /// block; a second timeout asks again, in case the first fetch was lost).
    pub fn on_timeout(&mut self) -> Vec<Action<T>> {
        let Phase::Waiting(step) = self.phase else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for kind in [Kind::A, Kind::B] {
            if !self.inbox.contains_key(&(kind, step)) {
                if self.fetching.insert((kind, step)) {
                    self.fetched += 1;
                }
                out.push(Action::Fetch {
                    kind,
                    step,
                    block: self.grid.block(kind, self.pos, step),
                });
            }
        }
        out
    }

    /// The step the driver is waiting for blocks of, if any (it runs the deadline then).
    pub fn waiting_for(&self) -> Option<usize> {
        match self.phase {
            Phase::Waiting(s) => Some(s),
            _ => None,
        }
    }

    fn advance(&mut self) -> Vec<Action<T>> {
        let Phase::Waiting(step) = self.phase else {
            return Vec::new();
        };
        if !(self.inbox.contains_key(&(Kind::A, step)) && self.inbox.contains_key(&(Kind::B, step)))
        {
            return Vec::new();
        }
        let (Some(a), Some(b)) = (
            self.inbox.remove(&(Kind::A, step)),
            self.inbox.remove(&(Kind::B, step)),
        ) else {
            return Vec::new();
        };
        self.begin(step, a, b)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};

    use super::*;

    type Block = (Kind, usize, usize);
    /// Per worker: the pairs it multiplied, and its origin fetches.
    type Runs = HashMap<Pos, (Vec<(Block, Block)>, usize)>;

    fn start_blocks(g: Grid, pos: Pos) -> (Block, Block) {
        let (ai, aj) = g.block(Kind::A, pos, 0);
        let (bi, bj) = g.block(Kind::B, pos, 0);
        ((Kind::A, ai, aj), (Kind::B, bi, bj))
    }

    /// Runs every worker of a grid in lockstep-free order on block coordinates, dropping the
    /// messages `drop` says, and returns each worker's list of multiplied (A, B) pairs and its
    /// origin fetches.
    fn simulate(q: usize, drop: impl Fn(Kind, Pos, usize) -> bool) -> Runs {
        let g = Grid::new(q);
        let mut pulses: HashMap<Pos, Pulse<Block>> =
            g.positions().map(|p| (p, Pulse::new(g, p))).collect();
        let mut done: HashMap<Pos, Vec<(Block, Block)>> = HashMap::new();
        let mut queue: VecDeque<(Pos, Action<Block>)> = VecDeque::new();
        for p in g.positions() {
            let (a, b) = start_blocks(g, p);
            for act in pulses.get_mut(&p).unwrap().start(a, b).unwrap() {
                queue.push_back((p, act));
            }
        }
        let mut finished = 0;
        let mut guard = 0;
        while finished < q * q {
            guard += 1;
            assert!(guard < 10_000, "pulse does not converge");
            let Some((p, act)) = queue.pop_front() else {
                // Nothing in flight: every waiting worker times out.
                for p in g.positions() {
                    for act in pulses.get_mut(&p).unwrap().on_timeout() {
                        queue.push_back((p, act));
                    }
                }
                continue;
            };
            let next = match act {
                Action::Multiply { step, a, b } => {
                    done.entry(p).or_default().push((a, b));
                    pulses.get_mut(&p).unwrap().on_multiplied(step).unwrap()
                }
                Action::Send {
                    kind,
                    to,
                    step,
                    block,
                } => {
                    if drop(kind, p, step) {
                        continue;
                    }
                    let acts = pulses.get_mut(&to).unwrap().on_block(kind, step, block);
                    for a in acts.unwrap() {
                        queue.push_back((to, a));
                    }
                    continue;
                }
                Action::Fetch { kind, step, block } => pulses
                    .get_mut(&p)
                    .unwrap()
                    .on_block(kind, step, (kind, block.0, block.1))
                    .unwrap(),
                Action::Finished => {
                    finished += 1;
                    continue;
                }
            };
            for a in next {
                queue.push_back((p, a));
            }
        }
        g.positions()
            .map(|p| {
                (
                    p,
                    (done.remove(&p).unwrap_or_default(), pulses[&p].fetched()),
                )
            })
            .collect()
    }

    fn assert_complete(q: usize, runs: &Runs) {
        for (pos, (pairs, _)) in runs {
            let mut ks: Vec<usize> = pairs
                .iter()
                .map(|((ka, i, k), (kb, k2, j))| {
                    assert_eq!((*ka, *kb), (Kind::A, Kind::B));
                    assert_eq!((*i, *j), (pos.row, pos.col));
                    assert_eq!(k, k2);
                    *k
                })
                .collect();
            ks.sort();
            assert_eq!(ks, (0..q).collect::<Vec<_>>(), "{pos:?}");
        }
    }

    #[test]
    fn every_worker_multiplies_its_row_by_its_column_for_p4_and_p9() {
        for q in [2, 3] {
            let runs = simulate(q, |_, _, _| false);
            assert_complete(q, &runs);
            assert!(runs.values().all(|(_, f)| *f == 0));
        }
    }

    #[test]
    fn a_silent_neighbour_is_replaced_by_the_origin() {
        // Worker (1,1) never sends anything: its west and north neighbours time out.
        let dead = Pos { row: 1, col: 1 };
        for q in [2, 3] {
            let runs = simulate(q, |_, from, _| from == dead);
            assert_complete(q, &runs);
            let west = Grid::new(q).next_hop(Kind::A, dead);
            assert!(runs[&west].1 >= 1, "q={q}: west neighbour never fetched");
        }
    }

    #[test]
    fn duplicates_and_bad_steps_are_ignored_or_refused() {
        let g = Grid::new(2);
        let p = Pos { row: 0, col: 0 };
        let mut pulse: Pulse<u32> = Pulse::new(g, p);
        // A block that arrives before the start is kept.
        assert!(pulse.on_block(Kind::A, 1, 10).unwrap().is_empty());
        let acts = pulse.start(1, 2).unwrap();
        assert_eq!(acts.len(), 3);
        assert!(pulse.start(1, 2).is_err());
        assert!(pulse.on_block(Kind::A, 2, 0).is_err());
        assert!(pulse.on_block(Kind::B, 0, 0).is_err());
        assert!(pulse.on_multiplied(1).is_err());
        assert!(pulse.on_multiplied(0).unwrap().is_empty());
        assert_eq!(pulse.phase(), Phase::Waiting(1));
        let fetch = pulse.on_timeout();
        assert_eq!(
            fetch,
            vec![Action::Fetch {
                kind: Kind::B,
                step: 1,
                block: (1, 0)
            }]
        );
        let acts = pulse.on_block(Kind::B, 1, 20).unwrap();
        assert_eq!(
            acts,
            vec![Action::Multiply {
                step: 1,
                a: 10,
                b: 20
            }]
        );
        // The neighbour's copy, late: ignored.
        assert!(pulse.on_block(Kind::B, 1, 99).unwrap().is_empty());
        assert_eq!(pulse.on_multiplied(1).unwrap(), vec![Action::Finished]);
        assert_eq!(pulse.phase(), Phase::Finished);
        assert!(pulse.on_timeout().is_empty());
    }
}
