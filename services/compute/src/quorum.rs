//! The quorum vote of redundant execution (`verify = "quorum"`), sans-IO: up to three workers
//! compute the same tile; a result two of them agree on is kept, the workers that returned
//! something else are dissenters.
//!
//! Agreement uses the documented tolerance (`crate::tolerance`): each honest result is within
//! `2·k·u·(|A||B|)_ij` of the exact product, so two honest results are within twice that. The
//! vote bounds `(|A||B|)_ij` by `‖A_i‖₂·‖B_j‖₂` (Cauchy–Schwarz), which costs O(mk + kn)
//! instead of a second product: two results agree when every element satisfies
//! `|x_ij − y_ij| ≤ 4·k·u·‖A_i‖₂·‖B_j‖₂ + 1e-30` (and both are finite).

use crate::matrix::Matrix;
use crate::tolerance::relative_bound;

/// Results that must agree for a tile to be kept.
pub const QUORUM: usize = 2;
/// Workers asked for each tile.
pub const REPLICAS: usize = 3;

/// The scales the vote compares with: per-row norms of the tile's `A` block and per-column
/// norms of its `B` block.
#[derive(Debug, Clone)]
pub struct Scale {
    rows: Vec<f64>,
    cols: Vec<f64>,
    rel: f64,
}

impl Scale {
    /// The scales of the tile `a · b`.
    pub fn of(a: &Matrix, b: &Matrix) -> Scale {
        let rows = (0..a.rows())
            .map(|i| {
                a.row(i)
                    .iter()
                    .map(|&x| f64::from(x) * f64::from(x))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        let mut cols = vec![0.0f64; b.cols()];
        for i in 0..b.rows() {
            for (c, &x) in cols.iter_mut().zip(b.row(i)) {
                *c += f64::from(x) * f64::from(x);
            }
        }
        for c in &mut cols {
            *c = c.sqrt();
        }
        Scale {
            rows,
            cols,
            rel: 2.0 * relative_bound(a.cols()),
        }
    }

    /// Whether two results of the tile agree within the tolerance.
    pub fn agree(&self, x: &Matrix, y: &Matrix) -> bool {
        let (m, n) = (self.rows.len(), self.cols.len());
        if x.rows() != m || y.rows() != m || x.cols() != n || y.cols() != n {
            return false;
        }
        (0..m).all(|i| {
            x.row(i)
                .iter()
                .zip(y.row(i))
                .zip(&self.cols)
                .all(|((&p, &q), &cn)| {
                    p.is_finite()
                        && q.is_finite()
                        && (f64::from(p) - f64::from(q)).abs()
                            <= self.rel * self.rows[i] * cn + 1e-30
                })
        })
    }
}

/// The outcome of a vote over the results returned so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vote {
    /// `QUORUM` results agree: keep `results[agree[0]]`; `dissent` returned something else.
    Accept {
        /// Indexes of the results that agree with the kept one (the kept one first).
        agree: Vec<usize>,
        /// Indexes of the results that disagree with it.
        dissent: Vec<usize>,
    },
    /// No quorum yet; more replicas may decide.
    Wait,
    /// `replicas` results are in and no two agree: nobody can be blamed.
    Inconclusive,
}

/// Votes over `results` (in the order they came back) of a tile asked of `replicas` workers.
pub fn vote(scale: &Scale, results: &[&Matrix], replicas: usize) -> Vote {
    for i in 0..results.len() {
        let agree: Vec<usize> = (0..results.len())
            .filter(|&j| j == i || scale.agree(results[i], results[j]))
            .collect();
        if agree.len() >= QUORUM {
            let dissent = (0..results.len()).filter(|j| !agree.contains(j)).collect();
            return Vote::Accept { agree, dissent };
        }
    }
    if results.len() >= replicas {
        Vote::Inconclusive
    } else {
        Vote::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    fn tile() -> (Matrix, Matrix, Matrix) {
        let a = Matrix::random(33, 200, 7).unwrap();
        let b = Matrix::random(200, 17, 8).unwrap();
        let c = reference::gemm(&a, &b).unwrap();
        (a, b, c)
    }

    #[test]
    fn honest_results_agree_despite_rounding_and_a_lie_does_not() {
        let (a, b, c) = tile();
        let scale = Scale::of(&a, &b);
        // f32 accumulation in reverse order against the f64 reference.
        let cpu = Matrix::from_fn(33, 17, |i, j| {
            (0..200)
                .rev()
                .fold(0.0f32, |s, p| s + a.get(i, p) * b.get(p, j))
        })
        .unwrap();
        assert!(scale.agree(&c, &cpu));
        let mut lie = cpu.clone();
        lie.data_mut()[5] += 1e-2;
        assert!(!scale.agree(&c, &lie));
        let mut nan = cpu.clone();
        nan.data_mut()[0] = f32::NAN;
        assert!(!scale.agree(&nan, &nan));
        assert!(!scale.agree(&c, &Matrix::zeros(33, 16).unwrap()));
    }

    #[test]
    fn two_of_three_decide_and_the_third_is_the_dissenter() {
        let (a, b, c) = tile();
        let scale = Scale::of(&a, &b);
        let mut lie = c.clone();
        lie.data_mut()[0] += 1.0;
        assert_eq!(vote(&scale, &[&lie], REPLICAS), Vote::Wait);
        assert_eq!(vote(&scale, &[&lie, &c], REPLICAS), Vote::Wait);
        assert_eq!(
            vote(&scale, &[&lie, &c, &c], REPLICAS),
            Vote::Accept {
                agree: vec![1, 2],
                dissent: vec![0]
            }
        );
        assert_eq!(
            vote(&scale, &[&c, &c], REPLICAS),
            Vote::Accept {
                agree: vec![0, 1],
                dissent: vec![]
            }
        );
        let mut other = c.clone();
        other.data_mut()[1] -= 1.0;
        assert_eq!(
            vote(&scale, &[&lie, &c, &other], REPLICAS),
            Vote::Inconclusive
        );
    }
}
