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

/// Which two sums a pass over a row computes.
#[derive(Clone, Copy)]
enum RowSums {
    /// `(x·r, Σ (x_j·r_j)²)`: a row of `B` or `C` against the random vector.
    DotAndSquare,
    /// `(x·y, ‖x‖₂²)`: a row of `A` against `y = B·r`.
    DotAndNorm,
}

/// `(x·r, Σ (x_j·r_j)²)` in `f64`.
fn dot_and_square(x: &[f32], r: &[f64]) -> (f64, f64) {
    row_sums(RowSums::DotAndSquare, x, r)
}

/// `(x·y, ‖x‖₂²)` in `f64`.
fn dot_and_norm(x: &[f32], y: &[f64]) -> (f64, f64) {
    row_sums(RowSums::DotAndNorm, x, y)
}

/// [`RowSums`] on the widest vector unit the CPU has (the binary's baseline is plain x86-64,
/// SSE2, so the wider code paths are chosen at run time).
fn row_sums(kind: RowSums, x: &[f32], v: &[f64]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { x86::row_sums_avx512(kind, x, v) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { x86::row_sums_avx2(kind, x, v) };
        }
    }
    row_sums_lanes(kind, x, v)
}

#[inline(always)]
fn row_sums_lanes(kind: RowSums, x: &[f32], v: &[f64]) -> (f64, f64) {
    match kind {
        RowSums::DotAndSquare => two_sums(x, v, |xi, ri| {
            let p = xi * ri;
            (p, p * p)
        }),
        RowSums::DotAndNorm => two_sums(x, v, |xi, yi| (xi * yi, xi * xi)),
    }
}

/// Independent `f64` accumulators per sum: a single running sum is one long dependency chain
/// (an add's latency per element) that the compiler may not reorder; eight lanes let it keep
/// whole vector registers busy, so a pass goes at the speed of memory.
const LANES: usize = 8;

/// `(Σ p_j, Σ q_j)` with `(p_j, q_j) = terms(x_j, v_j)`, in [`LANES`] accumulators each.
#[inline(always)]
fn two_sums(x: &[f32], v: &[f64], terms: impl Fn(f64, f64) -> (f64, f64)) -> (f64, f64) {
    let (xs, x_rest) = x.as_chunks::<LANES>();
    let (vs, v_rest) = v.as_chunks::<LANES>();
    let mut s = [0.0f64; LANES];
    let mut t = [0.0f64; LANES];
    for (xc, vc) in xs.iter().zip(vs) {
        for (((s, t), &xi), &vi) in s.iter_mut().zip(t.iter_mut()).zip(xc).zip(vc) {
            let (p, q) = terms(f64::from(xi), vi);
            *s += p;
            *t += q;
        }
    }
    let (mut s, mut t) = (s.iter().sum::<f64>(), t.iter().sum::<f64>());
    for (&xi, &vi) in x_rest.iter().zip(v_rest) {
        let (p, q) = terms(f64::from(xi), vi);
        s += p;
        t += q;
    }
    (s, t)
}

/// [`row_sums_lanes`] compiled for wider vector units.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{row_sums_lanes, RowSums};

    #[target_feature(enable = "avx512f")]
    pub(super) fn row_sums_avx512(kind: RowSums, x: &[f32], v: &[f64]) -> (f64, f64) {
        row_sums_lanes(kind, x, v)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn row_sums_avx2(kind: RowSums, x: &[f32], v: &[f64]) -> (f64, f64) {
        row_sums_lanes(kind, x, v)
    }
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

    #[test]
    fn every_vector_path_sums_like_a_plain_loop() {
        for len in [0usize, 1, 7, 8, 9, 63, 100, 1000] {
            let x: Vec<f32> = (0..len)
                .map(|j| ((j * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let v: Vec<f64> = (0..len)
                .map(|j| ((j * 53 % 97) as f64 - 48.0) / 11.0)
                .collect();
            let (mut dot, mut sq, mut norm) = (0.0f64, 0.0f64, 0.0f64);
            for (&xi, &vi) in x.iter().zip(&v) {
                let p = f64::from(xi) * vi;
                dot += p;
                sq += p * p;
                norm += f64::from(xi) * f64::from(xi);
            }
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
            let mut paths: Vec<(&str, RowSums, (f64, f64))> = vec![
                (
                    "lanes",
                    RowSums::DotAndSquare,
                    row_sums_lanes(RowSums::DotAndSquare, &x, &v),
                ),
                (
                    "lanes",
                    RowSums::DotAndNorm,
                    row_sums_lanes(RowSums::DotAndNorm, &x, &v),
                ),
                ("dispatch", RowSums::DotAndSquare, dot_and_square(&x, &v)),
                ("dispatch", RowSums::DotAndNorm, dot_and_norm(&x, &v)),
            ];
            #[cfg(target_arch = "x86_64")]
            for kind in [RowSums::DotAndSquare, RowSums::DotAndNorm] {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: checked just above.
                    paths.push(("avx512", kind, unsafe {
                        x86::row_sums_avx512(kind, &x, &v)
                    }));
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: checked just above.
                    paths.push(("avx2", kind, unsafe { x86::row_sums_avx2(kind, &x, &v) }));
                }
            }
            for (name, kind, (s, t)) in paths {
                let want = match kind {
                    RowSums::DotAndSquare => (dot, sq),
                    RowSums::DotAndNorm => (dot, norm),
                };
                assert!(
                    close(s, want.0) && close(t, want.1),
                    "{name} len {len}: {s} {t} vs {want:?}"
                );
            }
        }
    }
}
