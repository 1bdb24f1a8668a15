//! Cannon's pulse run in one process: every worker's [`Pulse`] driven over real matrices with
//! blocks handed over in memory. It checks the algorithm end to end against the reference GEMM
//! without sockets, and is the baseline the distributed run is compared with.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::grid::{Grid, Kind, Pos, Split};
use super::pulse::{Action, Pulse};
use crate::cpu::CpuBackend;
use crate::error::ComputeError;
use crate::matrix::{product_shape, Matrix};

/// Adds `x` into `acc` element by element (shapes must match).
pub fn accumulate(acc: &mut Matrix, x: &Matrix) -> Result<(), ComputeError> {
    if acc.rows() != x.rows() || acc.cols() != x.cols() {
        return Err(ComputeError::Shape(format!(
            "cannot add {}x{} into {}x{}",
            x.rows(),
            x.cols(),
            acc.rows(),
            acc.cols()
        )));
    }
    for (a, b) in acc.data_mut().iter_mut().zip(x.data()) {
        *a += *b;
    }
    Ok(())
}

/// Cuts block `(bi, bj)` of `kind` out of `m` under `split`.
pub fn cut(
    m: &Matrix,
    split: &Split,
    kind: Kind,
    bi: usize,
    bj: usize,
) -> Result<Matrix, ComputeError> {
    let (r0, rows, c0, cols) = split.block(kind, bi, bj);
    m.block(r0, rows, c0, cols)
}

/// `a × b` by Cannon's algorithm on a `q × q` grid in this process. `lost` names workers whose
/// outgoing blocks are dropped (a dead neighbour): the others fetch those blocks from `a` and
/// `b` on their step timeout, as the distributed run fetches them from the origin.
pub fn gemm(
    a: &Matrix,
    b: &Matrix,
    q: usize,
    cpu: &CpuBackend,
    lost: &[Pos],
) -> Result<Matrix, ComputeError> {
    let (m, k, n) = product_shape(a, b)?;
    let grid = Grid::new(q);
    let split = Split { m, k, n, q: grid.q };
    let mut pulses: HashMap<Pos, Pulse<Arc<Matrix>>> = HashMap::new();
    let mut c_blocks: HashMap<Pos, Matrix> = HashMap::new();
    let mut queue: VecDeque<(Pos, Action<Arc<Matrix>>)> = VecDeque::new();
    for pos in grid.positions() {
        let mut pulse = Pulse::new(grid, pos);
        let (ai, aj) = grid.block(Kind::A, pos, 0);
        let (bi, bj) = grid.block(Kind::B, pos, 0);
        let acts = pulse
            .start(
                Arc::new(cut(a, &split, Kind::A, ai, aj)?),
                Arc::new(cut(b, &split, Kind::B, bi, bj)?),
            )
            .map_err(|e| ComputeError::Shape(e.to_string()))?;
        queue.extend(acts.into_iter().map(|x| (pos, x)));
        let (_, rows, _, cols) = split.c_block(pos);
        c_blocks.insert(pos, Matrix::zeros(rows, cols)?);
        pulses.insert(pos, pulse);
    }
    let mut finished = 0;
    let bad = |e: super::pulse::PulseError| ComputeError::Shape(e.to_string());
    while finished < q * q {
        let Some((pos, act)) = queue.pop_front() else {
            for pos in grid.positions() {
                if let Some(p) = pulses.get_mut(&pos) {
                    queue.extend(p.on_timeout().into_iter().map(|x| (pos, x)));
                }
            }
            if queue.is_empty() {
                return Err(ComputeError::Shape("pulse stalled".into()));
            }
            continue;
        };
        let Some(pulse) = pulses.get_mut(&pos) else {
            continue;
        };
        match act {
            Action::Multiply { step, a, b } => {
                let prod = cpu.sgemm(&a, &b)?;
                if let Some(c) = c_blocks.get_mut(&pos) {
                    accumulate(c, &prod)?;
                }
                let next = pulse.on_multiplied(step).map_err(bad)?;
                queue.extend(next.into_iter().map(|x| (pos, x)));
            }
            Action::Send {
                kind,
                to,
                step,
                block,
            } => {
                if lost.contains(&pos) {
                    continue;
                }
                if let Some(p) = pulses.get_mut(&to) {
                    let next = p.on_block(kind, step, block).map_err(bad)?;
                    queue.extend(next.into_iter().map(|x| (to, x)));
                }
            }
            Action::Fetch { kind, step, block } => {
                let src = if kind == Kind::A { a } else { b };
                let blk = Arc::new(cut(src, &split, kind, block.0, block.1)?);
                let next = pulse.on_block(kind, step, blk).map_err(bad)?;
                queue.extend(next.into_iter().map(|x| (pos, x)));
            }
            Action::Finished => finished += 1,
        }
    }
    let mut c = Matrix::zeros(m, n)?;
    for (pos, blk) in c_blocks {
        let (r0, _, c0, _) = split.c_block(pos);
        c.set_block(r0, c0, &blk)?;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tolerance;

    #[test]
    fn matches_the_reference_for_odd_shapes_and_p4_p9() {
        let cpu = CpuBackend::new(1);
        for (m, k, n, q) in [
            (64, 64, 64, 2),
            (17, 33, 9, 2),
            (100, 7, 55, 3),
            (3, 3, 3, 3),
        ] {
            let a = Matrix::random(m, k, 1).unwrap();
            let b = Matrix::random(k, n, 2).unwrap();
            let c = gemm(&a, &b, q, &cpu, &[]).unwrap();
            assert_eq!(
                tolerance::check_product(&a, &b, &c).unwrap(),
                None,
                "{m}x{k}x{n} q={q}"
            );
        }
    }

    #[test]
    fn survives_a_silent_worker_through_the_origin() {
        let cpu = CpuBackend::new(1);
        let a = Matrix::random(90, 60, 3).unwrap();
        let b = Matrix::random(60, 45, 4).unwrap();
        for q in [2, 3] {
            let c = gemm(&a, &b, q, &cpu, &[Pos { row: 0, col: 1 }]).unwrap();
            assert_eq!(tolerance::check_product(&a, &b, &c).unwrap(), None, "q={q}");
        }
    }
}
