//! Freivalds' check: verifies a claimed product `C = A·B` in `O(mk + kn + mn)` instead of
//! recomputing it in `O(mkn)`.
//!
//! Pick a random vector `r`; if `C = A·B` then `C·r = A·(B·r)`. A wrong `C` survives only if
//! its error happens to be orthogonal to `r`. We draw `r` with random signs and magnitudes in
//! `[0.5, 1.5]` (not the classical `{0,1}`), so one round catches any error above the bound
//! with certainty when it is alone in its row, and with probability one otherwise; more rounds
//! are available for the paranoid. Sums are computed in `f64`.
//!
//! The bound. The rigorous worst case (`tolerance`: `2·k·u·(|A||B|)_ij` per element) summed
//! over a row's `n` columns is useless at scale (at n = k = 4096 it would hide an error of
//! ~2000 in values of ~20). Rounding errors of honest f32 dot products are in practice
//! independent and grow like `√k·u`, so the check uses the statistical bound
//!
//! `|C·r - A·(B·r)|_i ≤ τ·u·(√k + 1)·‖A_i‖₂·‖B·diag(r)‖_F`, with `τ = 16`,
//!
//! where `‖A_i‖₂·‖B·diag(r)‖_F` bounds `‖(|A||B|)_i ∘ r‖₂` (Cauchy–Schwarz). At n = k = 4096
//! with inputs in [-1, 1] that resolves an error of ~3 in one element (honest error there is
//! ~1e-3: a margin of three orders of magnitude against false accusations).

use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::error::ComputeError;
use crate::matrix::{product_shape, Matrix};
use crate::tolerance::UNIT_ROUNDOFF;

/// The safety factor of the statistical bound (see the module doc).
pub const TAU: f64 = 16.0;

/// Why a product was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The first row whose check failed.
    pub row: usize,
    /// `|C·r - A·(B·r)|` for that row.
    pub error: f64,
    /// The bound it broke.
    pub bound: f64,
}

/// Runs `rounds` rounds of Freivalds' check of `c = a × b` with random vectors from `seed`.
/// `Ok(None)` means accepted; shapes that do not fit are an error, not a rejection.
pub fn check(
    a: &Matrix,
    b: &Matrix,
    c: &Matrix,
    rounds: u32,
    seed: u64,
) -> Result<Option<Rejection>, ComputeError> {
    check_widened(a, b, c, rounds, seed, 0.0)
}

/// [`check`] with the bound widened for a `c` that was not computed as one product but
/// assembled from several (a tile rebuilt from parity, `crate::parity`): `extra` is added to
/// `‖B·diag(r)‖_F` in the bound, the scale of the other products' rounding errors.
pub fn check_widened(
    a: &Matrix,
    b: &Matrix,
    c: &Matrix,
    rounds: u32,
    seed: u64,
    extra: f64,
) -> Result<Option<Rejection>, ComputeError> {
    let (m, k, n) = product_shape(a, b)?;
    if c.rows() != m || c.cols() != n {
        return Err(ComputeError::Shape(format!(
            "claimed product is {}x{}, expected {m}x{n}",
            c.rows(),
            c.cols()
        )));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..rounds.max(1) {
        let r: Vec<f64> = (0..n)
            .map(|_| {
                let mag = rng.random_range(0.5..1.5);
                if rng.random_bool(0.5) {
                    mag
                } else {
                    -mag
                }
            })
            .collect();
        // y = B·r and ‖B·diag(r)‖_F², one pass over B.
        let (y, frob2): (Vec<f64>, Vec<f64>) = (0..k)
            .into_par_iter()
            .map(|p| dot_and_square(b.row(p), &r))
            .unzip();
        let b_frob = frob2.iter().sum::<f64>().sqrt();
        let scale = TAU * UNIT_ROUNDOFF * ((k as f64).sqrt() + 1.0) * (b_frob + extra.max(0.0));
        // Per row of A and C: A·y, ‖A_i‖₂, C·r.
        let failure = (0..m).into_par_iter().find_map_first(|i| {
            let (ay, a_norm2) = dot_and_norm(a.row(i), &y);
            let (cr, _) = dot_and_square(c.row(i), &r);
            let error = (cr - ay).abs();
            let bound = scale * a_norm2.sqrt() + 1e-30;
            // NaN fails too: only a finite error within the bound passes.
            let within = error.is_finite() && error <= bound;
            (!within).then_some(Rejection {
                row: i,
                error,
                bound,
            })
        });
        if failure.is_some() {
            return Ok(failure);
        }
    }
    Ok(None)
}

/// `(x·r, Σ (x_j·r_j)²)` in `f64`.
fn dot_and_square(x: &[f32], r: &[f64]) -> (f64, f64) {
    let mut s = 0.0;
    let mut t = 0.0;
    for (&xi, &ri) in x.iter().zip(r) {
        let v = f64::from(xi) * ri;
        s += v;
        t += v * v;
    }
    (s, t)
}

/// `(x·y, ‖x‖₂²)` in `f64`.
fn dot_and_norm(x: &[f32], y: &[f64]) -> (f64, f64) {
    let mut s = 0.0;
    let mut t = 0.0;
    for (&xi, &yi) in x.iter().zip(y) {
        let xi = f64::from(xi);
        s += xi * yi;
        t += xi * xi;
    }
    (s, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    #[test]
    fn accepts_a_correct_product_and_rejects_one_wrong_element() {
        for &(m, k, n) in &[(1, 1, 1), (17, 33, 9), (64, 200, 31)] {
            let a = Matrix::random(m, k, 1).unwrap();
            let b = Matrix::random(k, n, 2).unwrap();
            let c = reference::gemm(&a, &b).unwrap();
            assert_eq!(check(&a, &b, &c, 1, 7).unwrap(), None, "{m}x{k}x{n}");
            let mut bad = c.clone();
            let idx = (m * n) / 2;
            // A fault, not rounding: see the module doc for what the check resolves.
            bad.data_mut()[idx] += 0.05;
            let rej = check(&a, &b, &bad, 1, 7).unwrap().expect("caught");
            assert_eq!(rej.row, idx / n);
        }
    }

    #[test]
    fn rejects_nan_and_wrong_shapes() {
        let a = Matrix::random(4, 4, 1).unwrap();
        let b = Matrix::random(4, 4, 2).unwrap();
        let mut c = reference::gemm(&a, &b).unwrap();
        c.data_mut()[3] = f32::NAN;
        assert!(check(&a, &b, &c, 1, 1).unwrap().is_some());
        let wrong = Matrix::zeros(3, 4).unwrap();
        assert!(check(&a, &b, &wrong, 1, 1).is_err());
    }
}
