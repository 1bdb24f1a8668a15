//! The √p×√p grid of Cannon's algorithm: who sits where, which blocks a worker holds at each
//! step, who its neighbours are, and how `A`, `B` and `C` are cut into blocks.
//!
//! Worker `(i, j)` computes `C_ij = Σ_s A_{i,k(s)} · B_{k(s),j}` with `k(s) = (i + j + s) mod q`.
//! The initial skew gives it `A_{i,(i+j)}` and `B_{(i+j),j}`; after every step it passes its `A`
//! block west (to `(i, j−1)`) and its `B` block north (to `(i−1, j)`), so at step `s + 1` it
//! holds what its east and south neighbours held at step `s`, which is exactly `k(s + 1)`.

use serde::{Deserialize, Serialize};

/// Which input a block belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// A block of `A` (travels west).
    A,
    /// A block of `B` (travels north).
    B,
}

/// A worker's place in the grid: block row and block column of the `C` block it computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pos {
    /// Block row.
    pub row: usize,
    /// Block column.
    pub col: usize,
}

/// A `q × q` grid of workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    /// Workers per side (`√p`).
    pub q: usize,
}

impl Grid {
    /// A grid of `q × q` workers (`q ≥ 1`).
    pub fn new(q: usize) -> Grid {
        Grid { q: q.max(1) }
    }

    /// The largest grid `p` workers fill: `⌊√p⌋` per side.
    pub fn for_workers(p: usize) -> Grid {
        let mut q = 1;
        while (q + 1) * (q + 1) <= p {
            q += 1;
        }
        Grid::new(q)
    }

    /// Every position, row-major.
    pub fn positions(&self) -> impl Iterator<Item = Pos> + '_ {
        (0..self.q).flat_map(move |row| (0..self.q).map(move |col| Pos { row, col }))
    }

    /// The inner block index `k(s)` a worker multiplies at `step`.
    pub fn inner(&self, pos: Pos, step: usize) -> usize {
        (pos.row + pos.col + step) % self.q
    }

    /// The `(block row, block column)` of the block of `kind` that `pos` multiplies at `step`
    /// (at step 0 this is the initial skew).
    pub fn block(&self, kind: Kind, pos: Pos, step: usize) -> (usize, usize) {
        let k = self.inner(pos, step);
        match kind {
            Kind::A => (pos.row, k),
            Kind::B => (k, pos.col),
        }
    }

    /// Where a worker passes its block of `kind` after a step: `A` west, `B` north.
    pub fn next_hop(&self, kind: Kind, pos: Pos) -> Pos {
        let q = self.q;
        match kind {
            Kind::A => Pos {
                row: pos.row,
                col: (pos.col + q - 1) % q,
            },
            Kind::B => Pos {
                row: (pos.row + q - 1) % q,
                col: pos.col,
            },
        }
    }

    /// Who passes a block of `kind` to `pos`: its east neighbour for `A`, south for `B`.
    pub fn source(&self, kind: Kind, pos: Pos) -> Pos {
        let q = self.q;
        match kind {
            Kind::A => Pos {
                row: pos.row,
                col: (pos.col + 1) % q,
            },
            Kind::B => Pos {
                row: (pos.row + 1) % q,
                col: pos.col,
            },
        }
    }
}

/// How the matrices of an `m × k` by `k × n` product are cut into `q` parts per dimension.
/// Parts differ by at most one row or column, so any shape works (a part may be empty when a
/// dimension is smaller than `q`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `A`, rows of `B`.
    pub k: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// Parts per dimension.
    pub q: usize,
}

/// `(start, len)` of part `i` of `len` cut into `q` near-equal parts.
pub fn part(len: usize, q: usize, i: usize) -> (usize, usize) {
    let q = q.max(1);
    let (base, extra) = (len / q, len % q);
    let start = i * base + i.min(extra);
    (start, base + usize::from(i < extra))
}

impl Split {
    /// `(row0, rows, col0, cols)` of block `(bi, bj)` of `kind`'s matrix.
    pub fn block(&self, kind: Kind, bi: usize, bj: usize) -> (usize, usize, usize, usize) {
        let (rows_len, cols_len) = match kind {
            Kind::A => (self.m, self.k),
            Kind::B => (self.k, self.n),
        };
        let (r0, rows) = part(rows_len, self.q, bi);
        let (c0, cols) = part(cols_len, self.q, bj);
        (r0, rows, c0, cols)
    }

    /// `(row0, rows, col0, cols)` of the `C` block that `pos` computes.
    pub fn c_block(&self, pos: Pos) -> (usize, usize, usize, usize) {
        let (r0, rows) = part(self.m, self.q, pos.row);
        let (c0, cols) = part(self.n, self.q, pos.col);
        (r0, rows, c0, cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For p = 4 and 9: every worker multiplies each `A_{i,k}·B_{k,j}` exactly once, and the
    /// block it needs at step s+1 is the one its source neighbour held at step s.
    #[test]
    fn skew_and_rotation_cover_every_inner_block_once() {
        for q in [2usize, 3] {
            let g = Grid::new(q);
            for pos in g.positions() {
                let mut seen = vec![false; q];
                for s in 0..q {
                    let (ai, ak) = g.block(Kind::A, pos, s);
                    let (bk, bj) = g.block(Kind::B, pos, s);
                    assert_eq!((ai, bj), (pos.row, pos.col));
                    assert_eq!(ak, bk, "q={q} {pos:?} step {s}: inner indices differ");
                    assert!(!seen[ak], "q={q} {pos:?}: k={ak} twice");
                    seen[ak] = true;
                    if s + 1 < q {
                        for kind in [Kind::A, Kind::B] {
                            let from = g.source(kind, pos);
                            assert_eq!(g.next_hop(kind, from), pos);
                            assert_eq!(g.block(kind, from, s), g.block(kind, pos, s + 1));
                        }
                    }
                }
                assert!(seen.iter().all(|&x| x));
            }
        }
    }

    #[test]
    fn known_indices_for_p4_and_p9() {
        let g = Grid::new(2);
        // Initial skew on 2×2: row 1 of A shifted left by one, column 1 of B up by one.
        assert_eq!(g.block(Kind::A, Pos { row: 0, col: 0 }, 0), (0, 0));
        assert_eq!(g.block(Kind::A, Pos { row: 1, col: 0 }, 0), (1, 1));
        assert_eq!(g.block(Kind::B, Pos { row: 0, col: 1 }, 0), (1, 1));
        assert_eq!(g.block(Kind::B, Pos { row: 1, col: 1 }, 1), (1, 1));
        let g = Grid::new(3);
        let p = Pos { row: 2, col: 1 };
        assert_eq!(g.block(Kind::A, p, 0), (2, 0));
        assert_eq!(g.block(Kind::A, p, 1), (2, 1));
        assert_eq!(g.block(Kind::B, p, 2), (2, 1));
        assert_eq!(
            g.next_hop(Kind::A, Pos { row: 0, col: 0 }),
            Pos { row: 0, col: 2 }
        );
        assert_eq!(
            g.next_hop(Kind::B, Pos { row: 0, col: 0 }),
            Pos { row: 2, col: 0 }
        );
        assert_eq!(Grid::for_workers(4).q, 2);
        assert_eq!(Grid::for_workers(8).q, 2);
        assert_eq!(Grid::for_workers(9).q, 3);
        assert_eq!(Grid::for_workers(3).q, 1);
    }

    #[test]
    fn parts_cover_each_dimension_exactly() {
        for (len, q) in [(10, 3), (2, 3), (4096, 2), (17, 4), (0, 2)] {
            let mut next = 0;
            for i in 0..q {
                let (s, l) = part(len, q, i);
                assert_eq!(s, next);
                next += l;
            }
            assert_eq!(next, len);
        }
    }
}
