//! The queen's side of a job's parity tiles (the I/O edge of `crate::parity`): the summed
//! column block the parity tiles multiply, the verified parity tiles, and the decisions of the
//! tracker carried out on the scheduler and the result (hold, release, skip, rebuild and verify
//! a lost tile).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};

use super::metrics::JobMetrics;
use super::tables::JobRecord;
use crate::parity::{self, Decision, Layout, ParityFate, Tracker};
use crate::scheduler::{Scheduler, TileSpec};
use crate::{freivalds, Matrix};

/// One job's parity state on the queen.
pub(crate) struct ParityJob {
    tracker: Tracker,
    /// `Σ_j B_j` (`k × width`): what every parity tile multiplies its rows of `A` by.
    parity_b: Arc<Matrix>,
    /// `‖B_j‖_F` per column block, and `‖Σ_j B_j‖_F`: the rebuilt tiles' widened bound.
    norms: Vec<f64>,
    parity_norm: f64,
    /// Verified parity tiles by tile row.
    verified: HashMap<usize, Matrix>,
}

impl ParityJob {
    /// The parity of a job whose data tiles are `plan` (tile edge `tile`) over `b`. Appends the
    /// parity tiles' specs (in [`Self::b_for`]'s coordinates) to `plan`.
    pub(crate) fn new(
        plan: &mut Vec<TileSpec>,
        tile: usize,
        b: &Matrix,
    ) -> Result<ParityJob, String> {
        let layout = Layout::new(plan, tile).map_err(|e| e.to_string())?;
        let parity_b = layout.parity_b(b).map_err(|e| e.to_string())?;
        let norms = layout.column_norms(b);
        let specs: Vec<TileSpec> = (0..layout.row_count())
            .filter_map(|r| layout.parity_spec(plan, r))
            .collect();
        plan.extend(specs);
        Ok(ParityJob {
            parity_norm: parity::frobenius(&parity_b),
            parity_b: Arc::new(parity_b),
            norms,
            verified: HashMap::new(),
            tracker: Tracker::new(layout),
        })
    }

    /// The scheduler's groups (each tile row with its parity slot).
    pub(crate) fn groups(&self) -> Vec<Vec<usize>> {
        self.tracker.layout().groups()
    }

    /// The matrix a slot's `B` block comes from: `Σ_j B_j` for a parity slot, else `None`
    /// (`B` itself).
    pub(crate) fn b_for(&self, slot: usize) -> Option<Arc<Matrix>> {
        self.tracker
            .layout()
            .parity_row(slot)
            .map(|_| self.parity_b.clone())
    }

    /// Whether `slot` is a parity slot.
    pub(crate) fn is_parity(&self, slot: usize) -> bool {
        self.tracker.layout().parity_row(slot).is_some()
    }

    /// A data slot was verified (computed or restored).
    pub(crate) fn data_verified(&mut self, slot: usize) -> Vec<Decision> {
        self.tracker.on_verified(slot)
    }

    /// A parity slot's tile was verified.
    pub(crate) fn parity_verified(
        &mut self,
        slot: usize,
        tile: Matrix,
        metrics: &JobMetrics,
    ) -> Vec<Decision> {
        if let Some(row) = self.tracker.layout().parity_row(slot) {
            self.verified.insert(row, tile);
            metrics.parity_tiles.inc();
        }
        self.tracker.on_verified(slot)
    }

    /// A slot's call failed: its tile is lost with the worker.
    pub(crate) fn lost(&mut self, slot: usize) -> Vec<Decision> {
        self.tracker.on_lost(slot)
    }

    /// Carries out `decisions` (and those they lead to): holds, releases and skips on the
    /// scheduler; rebuilds (verified with the widened Freivalds bound) into `result`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn apply(
        &mut self,
        decisions: Vec<Decision>,
        sched: &mut Scheduler,
        result: &mut Matrix,
        plan: &[TileSpec],
        (a, b): (&Arc<Matrix>, &Arc<Matrix>),
        record: &mut JobRecord,
        metrics: &JobMetrics,
    ) -> Result<(), String> {
        let mut queue: VecDeque<Decision> = decisions.into();
        while let Some(d) = queue.pop_front() {
            match d {
                Decision::Hold(s) => {
                    tracing::info!(
                        tile = s,
                        "lost tile held for a rebuild from its row's parity"
                    );
                    sched.hold(s);
                }
                Decision::Release(s) => {
                    tracing::info!(tile = s, "lost tile re-run (its row cannot rebuild it)");
                    sched.release(s);
                }
                Decision::Skip(s) => {
                    sched.mark_done(s);
                    self.tracker.on_skipped(s);
                }
                Decision::Rebuild { row, slot } => {
                    let rebuilt = self.rebuild(row, slot, plan, a, b, result).await?;
                    let ok = rebuilt.is_some();
                    if let Some(tile) = rebuilt {
                        let spec = plan[slot];
                        result
                            .set_block(spec.r0, spec.c0, &tile)
                            .map_err(|e| e.to_string())?;
                        sched.mark_rebuilt(slot);
                        record.tiles_done += 1;
                        record.rebuilt += 1;
                        metrics.tiles_rebuilt.inc();
                        tracing::info!(tile = slot, row, "lost tile rebuilt from its row's parity");
                    }
                    queue.extend(self.tracker.on_rebuilt(slot, ok));
                }
            }
        }
        Ok(())
    }

    /// `C_ij = P_i − Σ_{k≠j} C_ik` for data slot `slot` of tile row `row`, checked with
    /// Freivalds' bound widened by the other products' rounding. `None`: it failed the check.
    async fn rebuild(
        &self,
        row: usize,
        slot: usize,
        plan: &[TileSpec],
        a: &Arc<Matrix>,
        b: &Arc<Matrix>,
        result: &Matrix,
    ) -> Result<Option<Matrix>, String> {
        let layout = self.tracker.layout();
        let p = self
            .verified
            .get(&row)
            .cloned()
            .ok_or_else(|| format!("no verified parity tile for row {row}"))?;
        let (_, j) = layout
            .position(slot)
            .ok_or_else(|| format!("slot {slot} is not a data tile"))?;
        let others = layout
            .row(row)
            .iter()
            .filter(|&&s| s != slot)
            .map(|&s| {
                let o = plan[s];
                result
                    .block(o.r0, o.rows, o.c0, o.cols)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<Matrix>, String>>()?;
        let spec = plan[slot];
        let extra = parity::extra_frobenius(&self.norms, j, self.parity_norm);
        let (a, b) = (a.clone(), b.clone());
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&Matrix> = others.iter().collect();
            let tile = parity::rebuild(&p, &refs, spec.cols).map_err(|e| e.to_string())?;
            let k = a.cols();
            let ab = a
                .block(spec.r0, spec.rows, 0, k)
                .map_err(|e| e.to_string())?;
            let bb = b
                .block(0, k, spec.c0, spec.cols)
                .map_err(|e| e.to_string())?;
            match freivalds::check_widened(&ab, &bb, &tile, 1, rand::random::<u64>(), extra) {
                Ok(None) => Ok(Some(tile)),
                Ok(Some(rej)) => {
                    tracing::warn!(
                        tile = slot,
                        row = rej.row,
                        error = rej.error,
                        bound = rej.bound,
                        "a tile rebuilt from parity failed its check; it is re-run"
                    );
                    Ok(None)
                }
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .map_err(|e| format!("rebuild task: {e}"))?
    }

    /// The record's `parity` field: counters and every parity tile's state.
    pub(crate) fn view(&self, sched: &Scheduler) -> Value {
        let layout = self.tracker.layout();
        let states = sched.tiles();
        let fates = self.tracker.parity();
        let count = |f: ParityFate| fates.iter().filter(|x| **x == f).count();
        json!({
            "rows": layout.row_count(),
            "verified": count(ParityFate::Verified),
            "skipped": count(ParityFate::Skipped),
            "rebuilt": self.tracker.rebuilt(),
            "tiles": states
                .get(layout.data()..)
                .unwrap_or(&[])
                .iter()
                .zip(fates)
                .map(|(s, f)| match f {
                    ParityFate::Skipped => json!({ "state": "skipped" }),
                    _ => serde_json::to_value(s).unwrap_or_default(),
                })
                .collect::<Vec<Value>>(),
        })
    }
}
