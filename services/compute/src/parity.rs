//! Parity tiles, sans-IO: one checksum tile per tile row of `C`, so that a tile lost with its
//! worker is rebuilt from the row's parity and its other tiles instead of being computed again.
//!
//! Bitwise XOR of result tiles cannot be formed before the lost tile exists, so the parity of
//! tile row `i` is the checksum tile `P_i = A_i · Σ_j B_j` (algorithm-based fault tolerance, the
//! arithmetic analogue of XOR parity): `B_j` is the column block of tile `j`, zero-padded to the
//! widest block, so `P_i = Σ_j C_ij` and any one tile is `C_ij = P_i − Σ_{k≠j} C_ik`. A worker
//! computes `P_i` like any tile (rows of `A`, and the summed column block instead of one of `B`),
//! in parallel with the row, and it is verified with Freivalds' check like any tile.
//!
//! When is a tile rebuilt? ([`Tracker`]) A data tile whose call failed (worker dead,
//! unreachable, stalled past the tile timeout) is **lost**. When it is the only lost tile of its
//! row it is **held** (not re-run) until the row's other tiles and `P_i` are verified (they are
//! computed anyway), then rebuilt. A second loss in the row (one parity tile repairs one
//! erasure), or a rebuilt tile that fails its check, sends the held tile back to be re-run as
//! usual. A wrong result (failed verification) is not a loss: it is re-run and counts against
//! the worker. A parity tile still pending when its row is complete is skipped.
//!
//! The rebuilt tile carries the rounding errors of `P_i` and of every other tile of the row, so
//! its Freivalds check widens the bound by their scale ([`extra_frobenius`]).

use serde::Serialize;

use crate::error::ComputeError;
use crate::matrix::Matrix;
use crate::scheduler::TileSpec;

/// Why a job cannot have parity tiles.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParityError {
    /// A row of one tile has nothing to protect: its parity would be the tile itself.
    #[error(
        "parity needs at least 2 tiles per tile row, but the {cols} columns of C fit one tile of \
         {tile}; use a smaller --tile (at most {max_tile})"
    )]
    RowTooShort {
        /// Columns of `C`.
        cols: usize,
        /// The tile edge.
        tile: usize,
        /// The largest tile edge that gives two tiles per row.
        max_tile: usize,
    },
    /// The plan is not a row-major grid of tiles (the runner's plans always are).
    #[error("parity: the tiles do not form a row-major grid")]
    NotAGrid,
}

/// Where the parity tiles of a plan go. Slots `0..data` are the plan's tiles; slot `data + r`
/// is the parity tile of tile row `r`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    data: usize,
    /// Data slots of every tile row, left to right.
    rows: Vec<Vec<usize>>,
    /// The column blocks of a row (`c0`, `cols`), the same for every row.
    columns: Vec<(usize, usize)>,
    /// The widest column block: the parity tiles' width.
    width: usize,
}

impl Layout {
    /// The layout of `plan` (row-major tiles of `m × n`, as `scheduler::plan` makes them) for
    /// tile edge `tile`.
    pub fn new(plan: &[TileSpec], tile: usize) -> Result<Layout, ParityError> {
        let mut rows: Vec<Vec<usize>> = Vec::new();
        let mut starts: Vec<usize> = Vec::new();
        for (slot, spec) in plan.iter().enumerate() {
            if starts.last() != Some(&spec.r0) {
                starts.push(spec.r0);
                rows.push(Vec::new());
            }
            if let Some(row) = rows.last_mut() {
                row.push(slot);
            }
        }
        let columns: Vec<(usize, usize)> = rows
            .first()
            .map(|r| r.iter().map(|&s| (plan[s].c0, plan[s].cols)).collect())
            .unwrap_or_default();
        let same_columns = rows.iter().all(|r| {
            r.len() == columns.len()
                && r.iter()
                    .zip(&columns)
                    .all(|(&s, &(c0, cols))| plan[s].c0 == c0 && plan[s].cols == cols)
        });
        if !same_columns {
            return Err(ParityError::NotAGrid);
        }
        if columns.len() < 2 {
            let cols: usize = columns.iter().map(|c| c.1).sum();
            return Err(ParityError::RowTooShort {
                cols,
                tile,
                max_tile: cols.saturating_sub(1).max(1),
            });
        }
        let width = columns.iter().map(|c| c.1).max().unwrap_or(0);
        Ok(Layout {
            data: plan.len(),
            rows,
            columns,
            width,
        })
    }

    /// Data tiles (slots `0..data`).
    pub fn data(&self) -> usize {
        self.data
    }

    /// Tile rows (= parity tiles).
    pub fn row_count(&self) -> usize {
        self.rows.len()
    }

    /// Data and parity slots together.
    pub fn slots(&self) -> usize {
        self.data + self.rows.len()
    }

    /// The parity slot of tile row `row`.
    pub fn parity_slot(&self, row: usize) -> usize {
        self.data + row
    }

    /// The tile row of a parity slot, or `None` for a data slot.
    pub fn parity_row(&self, slot: usize) -> Option<usize> {
        slot.checked_sub(self.data).filter(|r| *r < self.rows.len())
    }

    /// The tile row and column index of a data slot.
    pub fn position(&self, slot: usize) -> Option<(usize, usize)> {
        let cols = self.columns.len();
        (slot < self.data && cols > 0).then(|| (slot / cols, slot % cols))
    }

    /// Data slots of tile row `row`, left to right.
    pub fn row(&self, row: usize) -> &[usize] {
        self.rows.get(row).map_or(&[], Vec::as_slice)
    }

    /// The parity tile of tile row `row` in the coordinates of [`parity_b`]'s matrix: the
    /// row's rows of `A`, all `width` columns.
    pub fn parity_spec(&self, plan: &[TileSpec], row: usize) -> Option<TileSpec> {
        let first = *self.rows.get(row)?.first()?;
        Some(TileSpec {
            r0: plan.get(first)?.r0,
            rows: plan.get(first)?.rows,
            c0: 0,
            cols: self.width,
        })
    }

    /// The scheduler's groups: per tile row its parity slot first (so it runs alongside the
    /// row), then the row's data slots.
    pub fn groups(&self) -> Vec<Vec<usize>> {
        self.rows
            .iter()
            .enumerate()
            .map(|(r, slots)| {
                std::iter::once(self.parity_slot(r))
                    .chain(slots.iter().copied())
                    .collect()
            })
            .collect()
    }

    /// `Σ_j B_j`: every column block of `b`, zero-padded to the widest, summed in `f64` and
    /// rounded once. `k × width`.
    pub fn parity_b(&self, b: &Matrix) -> Result<Matrix, ComputeError> {
        let k = b.rows();
        let mut sum = vec![0f64; k * self.width];
        for &(c0, cols) in &self.columns {
            if c0 + cols > b.cols() {
                return Err(ComputeError::Shape(format!(
                    "column block {c0}+{cols} outside B's {} columns",
                    b.cols()
                )));
            }
            for p in 0..k {
                let src = &b.row(p)[c0..c0 + cols];
                let dst = &mut sum[p * self.width..p * self.width + cols];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d += f64::from(s);
                }
            }
        }
        Matrix::from_vec(k, self.width, sum.into_iter().map(|x| x as f32).collect())
    }

    /// `‖B_j‖_F` of every column block of `b`, left to right.
    pub fn column_norms(&self, b: &Matrix) -> Vec<f64> {
        self.columns
            .iter()
            .map(|&(c0, cols)| {
                (0..b.rows())
                    .flat_map(|p| b.row(p).get(c0..c0 + cols).unwrap_or(&[]))
                    .map(|&x| f64::from(x) * f64::from(x))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect()
    }
}

/// The Frobenius norm of a matrix, in `f64`.
pub fn frobenius(m: &Matrix) -> f64 {
    m.data()
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// The extra scale the Freivalds check of tile `j` rebuilt from parity allows (added to
/// `‖B_j·diag(r)‖_F` in the bound): the rebuilt tile carries the rounding errors of `P_i` and of
/// every other tile of the row, each bounded like one tile's with its own block of `B`, with
/// `|r| ≤ 1.5`. `norms` are `‖B_k‖_F` of every column block, `parity` is `‖Σ_k B_k‖_F`.
pub fn extra_frobenius(norms: &[f64], j: usize, parity: f64) -> f64 {
    let others: f64 = norms
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != j)
        .map(|(_, n)| n)
        .sum();
    1.5 * (parity + others)
}

/// `C_ij = P_i − Σ_{k≠j} C_ik`, the first `cols` columns (tile `j`'s width), in `f64` and
/// rounded once. `others` are the row's other tiles (each at most as wide as `parity`; a
/// narrower tile counts as zero beyond its width).
pub fn rebuild(parity: &Matrix, others: &[&Matrix], cols: usize) -> Result<Matrix, ComputeError> {
    let rows = parity.rows();
    if cols > parity.cols() {
        return Err(ComputeError::Shape(format!(
            "a tile of {cols} columns cannot come from a parity tile of {}",
            parity.cols()
        )));
    }
    if let Some(o) = others
        .iter()
        .find(|o| o.rows() != rows || o.cols() > parity.cols())
    {
        return Err(ComputeError::Shape(format!(
            "a {}x{} tile does not fit a {}x{} parity tile",
            o.rows(),
            o.cols(),
            rows,
            parity.cols()
        )));
    }
    Matrix::from_fn(rows, cols, |i, c| {
        let mut x = f64::from(parity.get(i, c));
        for o in others {
            if c < o.cols() {
                x -= f64::from(o.get(i, c));
            }
        }
        x as f32
    })
}

/// What the runner must do after a [`Tracker`] event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep this lost data slot off the workers: it waits for its row to be rebuilt.
    Hold(usize),
    /// Give this held slot back to the scheduler: it is re-run.
    Release(usize),
    /// Rebuild data slot `slot` of tile row `row` now, and verify it.
    Rebuild {
        /// The tile row.
        row: usize,
        /// The data slot.
        slot: usize,
    },
    /// This parity slot is no longer needed (its row is complete): mark it done unrun.
    Skip(usize),
}

/// A data tile's fate, as far as parity goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFate {
    /// Not verified yet (pending or running).
    Open,
    /// Verified (computed, or restored from a checkpoint).
    Verified,
    /// Lost with its worker; waits for its row to be rebuilt.
    Held,
    /// Rebuilt from parity and verified.
    Rebuilt,
}

/// A parity tile's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParityFate {
    /// Not verified yet.
    Open,
    /// Verified; its row can rebuild one lost tile.
    Verified,
    /// Not needed (the row was complete first).
    Skipped,
}

/// Which lost tiles are held, when they are rebuilt, when they are re-run instead.
#[derive(Debug, Clone)]
pub struct Tracker {
    layout: Layout,
    data: Vec<DataFate>,
    parity: Vec<ParityFate>,
    /// Rows whose rebuild failed verification: their losses are re-run from now on.
    spoiled: Vec<bool>,
}

impl Tracker {
    /// Nothing verified yet.
    pub fn new(layout: Layout) -> Tracker {
        Tracker {
            data: vec![DataFate::Open; layout.data()],
            parity: vec![ParityFate::Open; layout.row_count()],
            spoiled: vec![false; layout.row_count()],
            layout,
        }
    }

    /// The layout tracked.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Every data tile's fate.
    pub fn data(&self) -> &[DataFate] {
        &self.data
    }

    /// Every parity tile's fate.
    pub fn parity(&self) -> &[ParityFate] {
        &self.parity
    }

    fn row_of(&self, slot: usize) -> Option<usize> {
        self.layout
            .parity_row(slot)
            .or_else(|| self.layout.position(slot).map(|(r, _)| r))
    }

    /// What the row allows now: a rebuild of its one held tile, or skipping its parity.
    fn settle(&self, row: usize) -> Vec<Decision> {
        let slots = self.layout.row(row);
        let held: Vec<usize> = slots
            .iter()
            .copied()
            .filter(|&s| self.data[s] == DataFate::Held)
            .collect();
        let others_done = slots.iter().all(|&s| {
            matches!(
                self.data[s],
                DataFate::Verified | DataFate::Rebuilt | DataFate::Held
            )
        });
        let mut out = Vec::new();
        if held.len() == 1 && others_done && self.parity[row] == ParityFate::Verified {
            out.push(Decision::Rebuild { row, slot: held[0] });
        }
        if held.is_empty() && others_done && self.parity[row] == ParityFate::Open {
            out.push(Decision::Skip(self.layout.parity_slot(row)));
        }
        out
    }

    /// A slot's result was verified (or restored from a checkpoint).
    pub fn on_verified(&mut self, slot: usize) -> Vec<Decision> {
        let Some(row) = self.row_of(slot) else {
            return Vec::new();
        };
        if self.layout.parity_row(slot).is_some() {
            if self.parity[row] == ParityFate::Open {
                self.parity[row] = ParityFate::Verified;
            }
        } else if self.data[slot] == DataFate::Open {
            self.data[slot] = DataFate::Verified;
        }
        self.settle(row)
    }

    /// A slot's call failed: its result is lost with the worker.
    pub fn on_lost(&mut self, slot: usize) -> Vec<Decision> {
        let Some(row) = self.row_of(slot) else {
            return Vec::new();
        };
        if self.layout.parity_row(slot).is_some() || self.data[slot] != DataFate::Open {
            // A lost parity tile is simply computed again (or skipped once the row is done).
            return self.settle(row);
        }
        let others_held: Vec<usize> = self
            .layout
            .row(row)
            .iter()
            .copied()
            .filter(|&s| s != slot && self.data[s] == DataFate::Held)
            .collect();
        if self.spoiled[row] || !others_held.is_empty() {
            // One parity tile repairs one loss: everything lost in this row is re-run.
            for &s in &others_held {
                self.data[s] = DataFate::Open;
            }
            return others_held.into_iter().map(Decision::Release).collect();
        }
        self.data[slot] = DataFate::Held;
        let mut out = vec![Decision::Hold(slot)];
        out.extend(self.settle(row));
        out
    }

    /// The rebuild of `slot` passed (`true`) or failed (`false`) its check. A failed one is
    /// re-run, and the row rebuilds nothing more.
    pub fn on_rebuilt(&mut self, slot: usize, verified: bool) -> Vec<Decision> {
        let Some(row) = self.row_of(slot) else {
            return Vec::new();
        };
        if self.data.get(slot) != Some(&DataFate::Held) {
            return Vec::new();
        }
        if verified {
            self.data[slot] = DataFate::Rebuilt;
            Vec::new()
        } else {
            self.data[slot] = DataFate::Open;
            self.spoiled[row] = true;
            vec![Decision::Release(slot)]
        }
    }

    /// A skipped parity slot.
    pub fn on_skipped(&mut self, slot: usize) {
        if let Some(row) = self.layout.parity_row(slot) {
            if self.parity[row] == ParityFate::Open {
                self.parity[row] = ParityFate::Skipped;
            }
        }
    }

    /// Tiles rebuilt so far.
    pub fn rebuilt(&self) -> usize {
        self.data
            .iter()
            .filter(|f| **f == DataFate::Rebuilt)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plan;

    /// An `f32`-accumulating product, like a real backend (not the `f64` reference).
    fn gemm_f32(a: &Matrix, b: &Matrix) -> Matrix {
        Matrix::from_fn(a.rows(), b.cols(), |i, j| {
            (0..a.cols()).map(|p| a.get(i, p) * b.get(p, j)).sum()
        })
        .unwrap()
    }

    #[test]
    fn layout_groups_rows_and_refuses_one_tile_rows() {
        let tiles = plan(10, 7, 3);
        let l = Layout::new(&tiles, 3).unwrap();
        assert_eq!((l.data(), l.row_count(), l.slots()), (12, 4, 16));
        assert_eq!(l.row(1), &[3, 4, 5]);
        assert_eq!(l.groups()[1], vec![13, 3, 4, 5]);
        assert_eq!(l.parity_row(13), Some(1));
        assert_eq!(l.parity_row(5), None);
        assert_eq!(l.position(5), Some((1, 2)));
        let spec = l.parity_spec(&tiles, 3).unwrap();
        assert_eq!((spec.r0, spec.rows, spec.c0, spec.cols), (9, 1, 0, 3));
        let err = Layout::new(&plan(10, 7, 8), 8).unwrap_err();
        assert!(matches!(
            err,
            ParityError::RowTooShort {
                cols: 7,
                tile: 8,
                max_tile: 6
            }
        ));
        assert!(
            err.to_string().contains("at least 2 tiles per tile row"),
            "{err}"
        );
    }

    #[cfg(feature = "service")]
    #[test]
    fn a_tile_is_rebuilt_from_parity_and_passes_the_widened_check() {
        // Ragged: n = 70 with tiles of 32 gives widths 32, 32, 6.
        let (m, k, n, t) = (40, 300, 70, 32);
        let a = Matrix::random(m, k, 11).unwrap();
        let b = Matrix::random(k, n, 12).unwrap();
        let tiles = plan(m, n, t);
        let l = Layout::new(&tiles, t).unwrap();
        let pb = l.parity_b(&b).unwrap();
        let norms = l.column_norms(&b);
        for row in 0..l.row_count() {
            let slots = l.row(row);
            let ab = a
                .block(tiles[slots[0]].r0, tiles[slots[0]].rows, 0, k)
                .unwrap();
            let p = gemm_f32(&ab, &pb);
            let cs: Vec<Matrix> = slots
                .iter()
                .map(|&s| gemm_f32(&ab, &b.block(0, k, tiles[s].c0, tiles[s].cols).unwrap()))
                .collect();
            for (j, &s) in slots.iter().enumerate() {
                let others: Vec<&Matrix> = cs
                    .iter()
                    .enumerate()
                    .filter(|(x, _)| *x != j)
                    .map(|(_, c)| c)
                    .collect();
                let rebuilt = rebuild(&p, &others, tiles[s].cols).unwrap();
                let bj = b.block(0, k, tiles[s].c0, tiles[s].cols).unwrap();
                let extra = extra_frobenius(&norms, j, frobenius(&pb));
                assert_eq!(
                    crate::freivalds::check_widened(&ab, &bj, &rebuilt, 3, 9, extra).unwrap(),
                    None,
                    "row {row} tile {j}"
                );
                // Close to the f64 reference too, within the rows' accumulated rounding.
                let want = crate::reference::gemm(&ab, &bj).unwrap();
                for (x, y) in rebuilt.data().iter().zip(want.data()) {
                    assert!((x - y).abs() < 1e-3, "{x} vs {y}");
                }
                // A wrong tile elsewhere in the row spoils the rebuild, and the check sees it.
                let mut bad = cs.clone();
                let o = (j + 1) % cs.len();
                bad[o].data_mut()[0] += 1.0;
                let others: Vec<&Matrix> = bad
                    .iter()
                    .enumerate()
                    .filter(|(x, _)| *x != j)
                    .map(|(_, c)| c)
                    .collect();
                let wrong = rebuild(&p, &others, tiles[s].cols).unwrap();
                if o != j && tiles[slots[o]].cols > 0 {
                    assert!(
                        crate::freivalds::check_widened(&ab, &bj, &wrong, 1, 9, extra)
                            .unwrap()
                            .is_some(),
                        "a wrong neighbour went unnoticed (row {row} tile {j})"
                    );
                }
            }
        }
    }

    #[test]
    fn rebuild_refuses_tiles_that_do_not_fit() {
        let p = Matrix::zeros(4, 8).unwrap();
        let wide = Matrix::zeros(4, 9).unwrap();
        let short = Matrix::zeros(3, 8).unwrap();
        assert!(rebuild(&p, &[&wide], 8).is_err());
        assert!(rebuild(&p, &[&short], 8).is_err());
        assert!(rebuild(&p, &[], 9).is_err());
    }

    // plan(4, 6, 2): 2 rows of 3 tiles; data slots 0..6, parity 6 (row 0) and 7 (row 1).

    #[test]
    fn a_single_loss_is_held_then_rebuilt_once_the_row_and_parity_are_verified() {
        let mut t = Tracker::new(Layout::new(&plan(4, 6, 2), 2).unwrap());
        assert_eq!(t.layout().row_count(), 2);
        assert_eq!(t.on_verified(0), vec![]);
        assert_eq!(t.on_lost(1), vec![Decision::Hold(1)]);
        assert_eq!(t.on_verified(2), vec![], "parity not verified yet");
        assert_eq!(
            t.on_verified(6),
            vec![Decision::Rebuild { row: 0, slot: 1 }]
        );
        assert_eq!(t.on_rebuilt(1, true), vec![]);
        assert_eq!(t.data()[1], DataFate::Rebuilt);
        assert_eq!(t.rebuilt(), 1);
        // Parity first, then the loss: rebuilt at once.
        assert_eq!(t.on_verified(7), vec![]);
        t.on_verified(3);
        t.on_verified(5);
        assert_eq!(
            t.on_lost(4),
            vec![Decision::Hold(4), Decision::Rebuild { row: 1, slot: 4 }]
        );
    }

    #[test]
    fn two_losses_in_a_row_or_a_failed_rebuild_are_re_run() {
        let mut t = Tracker::new(Layout::new(&plan(4, 6, 2), 2).unwrap());
        assert_eq!(t.on_lost(0), vec![Decision::Hold(0)]);
        assert_eq!(t.on_lost(1), vec![Decision::Release(0)]);
        assert_eq!(t.data()[0], DataFate::Open);
        // Row 1: the rebuild fails its check; the tile is re-run and the row holds no more.
        t.on_verified(7);
        t.on_verified(3);
        t.on_verified(4);
        assert_eq!(
            t.on_lost(5),
            vec![Decision::Hold(5), Decision::Rebuild { row: 1, slot: 5 }]
        );
        assert_eq!(t.on_rebuilt(5, false), vec![Decision::Release(5)]);
        assert_eq!(t.on_lost(5), vec![]);
        assert_eq!(t.data()[5], DataFate::Open);
    }

    #[test]
    fn a_lost_parity_is_re_run_and_an_unneeded_one_skipped() {
        let mut t = Tracker::new(Layout::new(&plan(4, 6, 2), 2).unwrap());
        assert_eq!(t.on_lost(6), vec![]);
        t.on_verified(0);
        t.on_verified(1);
        assert_eq!(t.on_verified(2), vec![Decision::Skip(6)]);
        t.on_skipped(6);
        assert_eq!(t.parity()[0], ParityFate::Skipped);
        // A held tile keeps its row's parity needed.
        t.on_verified(3);
        assert_eq!(t.on_lost(4), vec![Decision::Hold(4)]);
        assert_eq!(t.on_verified(5), vec![]);
        assert_eq!(
            t.on_verified(7),
            vec![Decision::Rebuild { row: 1, slot: 4 }]
        );
    }
}
