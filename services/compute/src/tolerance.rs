//! The floating-point tolerance every GEMM result is judged by.
//!
//! Backends differ in summation order and in fused vs unfused multiply-add, so results are not
//! bit-identical (FIELD-NOTES: 82% of elements differ between FMA and non-FMA). The classical
//! bound for a length-`k` dot product in `f32` is `|ĉ - c| ≤ γ_k · (|A||B|)_ij` with
//! `γ_k ≈ k·u`, `u = 2^-24`. We accept an element when
//!
//! `|ĉ_ij - c_ij| ≤ 2·k·u · (|A||B|)_ij + 1e-30`
//!
//! (twice the worst case, since both the backend and the comparison value carry rounding error;
//! the tiny absolute term covers exact zeros). Any real fault (a wrong element, a tile from the
//! wrong place) is many orders of magnitude larger.

use crate::error::ComputeError;
use crate::matrix::Matrix;
use crate::reference;

/// Unit round-off of `f32`.
pub const UNIT_ROUNDOFF: f64 = 1.0 / (1u64 << 24) as f64;

/// The allowed error scale for a dot product of length `k`: `2·k·u`.
pub fn relative_bound(k: usize) -> f64 {
    2.0 * (k.max(1) as f64) * UNIT_ROUNDOFF
}

/// The first element outside the tolerance, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Row of the element.
    pub row: usize,
    /// Column of the element.
    pub col: usize,
    /// The backend's value.
    pub got: f32,
    /// The reference value.
    pub want: f32,
    /// The bound it broke.
    pub bound: f64,
}

/// Checks `c` against the reference product of `a × b` under the documented tolerance.
pub fn check_product(a: &Matrix, b: &Matrix, c: &Matrix) -> Result<Option<Mismatch>, ComputeError> {
    let want = reference::gemm(a, b)?;
    let scale = reference::abs_gemm(a, b)?;
    if c.rows() != want.rows() || c.cols() != want.cols() {
        return Err(ComputeError::Shape(format!(
            "result is {}x{}, expected {}x{}",
            c.rows(),
            c.cols(),
            want.rows(),
            want.cols()
        )));
    }
    let rel = relative_bound(a.cols());
    for (idx, ((&got, &w), &s)) in c.data().iter().zip(want.data()).zip(&scale).enumerate() {
        let bound = rel * s + 1e-30;
        let err = (f64::from(got) - f64::from(w)).abs();
        if err > bound || !got.is_finite() {
            return Ok(Some(Mismatch {
                row: idx / c.cols(),
                col: idx % c.cols(),
                got,
                want: w,
                bound,
            }));
        }
    }
    Ok(None)
}
