//! The reference GEMM: a plain triple loop accumulating in `f64`, slow but obviously right.
//! Tests compare every backend with it; nothing fast uses it.

use crate::error::ComputeError;
use crate::matrix::{product_shape, Matrix};

/// `a × b` with `f64` accumulation, rounded once to `f32`.
pub fn gemm(a: &Matrix, b: &Matrix) -> Result<Matrix, ComputeError> {
    let (m, k, n) = product_shape(a, b)?;
    let mut acc = vec![0.0f64; n];
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        acc.iter_mut().for_each(|x| *x = 0.0);
        let arow = a.row(i);
        for (p, &aip) in arow.iter().enumerate().take(k) {
            let aip = f64::from(aip);
            for (x, &bpj) in acc.iter_mut().zip(b.row(p)) {
                *x += aip * f64::from(bpj);
            }
        }
        out.extend(acc.iter().map(|&x| x as f32));
    }
    Matrix::from_vec(m, n, out)
}

/// `|a| × |b|` in `f64`: the scale of each element's rounding error (see `tolerance`).
pub fn abs_gemm(a: &Matrix, b: &Matrix) -> Result<Vec<f64>, ComputeError> {
    let (m, _k, n) = product_shape(a, b)?;
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        let acc = &mut out[i * n..(i + 1) * n];
        for (p, &aip) in a.row(i).iter().enumerate() {
            let aip = f64::from(aip.abs());
            for (x, &bpj) in acc.iter_mut().zip(b.row(p)) {
                *x += aip * f64::from(bpj.abs());
            }
        }
    }
    Ok(out)
}
