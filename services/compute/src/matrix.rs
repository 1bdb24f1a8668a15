//! `Matrix`: a dense row-major `f32` matrix, the unit every backend, tile and file works on.

use crate::error::ComputeError;

/// The most elements one matrix may hold (2^28 = 1 GiB of `f32`): a bound so a forged shape
/// cannot make a worker allocate without limit.
pub const MAX_ELEMENTS: u64 = 1 << 28;

/// A dense row-major matrix of `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// A `rows × cols` matrix of zeros; refuses shapes over [`MAX_ELEMENTS`].
    pub fn zeros(rows: usize, cols: usize) -> Result<Matrix, ComputeError> {
        let len = checked_len(rows, cols)?;
        Ok(Matrix {
            rows,
            cols,
            data: vec![0.0; len],
        })
    }

    /// Wraps `data` (row-major) as a `rows × cols` matrix; the length must match exactly.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Result<Matrix, ComputeError> {
        let len = checked_len(rows, cols)?;
        if data.len() != len {
            return Err(ComputeError::Shape(format!(
                "{rows}x{cols} needs {len} values, got {}",
                data.len()
            )));
        }
        Ok(Matrix { rows, cols, data })
    }

    /// A matrix whose element `(i, j)` is `f(i, j)`.
    pub fn from_fn(
        rows: usize,
        cols: usize,
        mut f: impl FnMut(usize, usize) -> f32,
    ) -> Result<Matrix, ComputeError> {
        let len = checked_len(rows, cols)?;
        let mut data = Vec::with_capacity(len);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Ok(Matrix { rows, cols, data })
    }

    /// A matrix of uniform values in `[-1, 1)` from a seeded generator (tests, benches).
    pub fn random(rows: usize, cols: usize, seed: u64) -> Result<Matrix, ComputeError> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Matrix::from_fn(rows, cols, |_, _| rng.random_range(-1.0f32..1.0))
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The elements, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The elements, row-major, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Element `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.cols + j]
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The block of `rows` starting at `r0` and `cols` starting at `c0` (a tile's input).
    pub fn block(
        &self,
        r0: usize,
        rows: usize,
        c0: usize,
        cols: usize,
    ) -> Result<Matrix, ComputeError> {
        if r0 + rows > self.rows || c0 + cols > self.cols {
            return Err(ComputeError::Shape(format!(
                "block {rows}x{cols} at ({r0},{c0}) outside {}x{}",
                self.rows, self.cols
            )));
        }
        let mut data = Vec::with_capacity(rows * cols);
        for i in r0..r0 + rows {
            data.extend_from_slice(&self.data[i * self.cols + c0..i * self.cols + c0 + cols]);
        }
        Ok(Matrix { rows, cols, data })
    }

    /// Writes `tile` into this matrix at `(r0, c0)` (assembling a result from tiles).
    pub fn set_block(&mut self, r0: usize, c0: usize, tile: &Matrix) -> Result<(), ComputeError> {
        if r0 + tile.rows > self.rows || c0 + tile.cols > self.cols {
            return Err(ComputeError::Shape(format!(
                "tile {}x{} at ({r0},{c0}) outside {}x{}",
                tile.rows, tile.cols, self.rows, self.cols
            )));
        }
        for i in 0..tile.rows {
            let dst = (r0 + i) * self.cols + c0;
            self.data[dst..dst + tile.cols].copy_from_slice(tile.row(i));
        }
        Ok(())
    }

    /// Gives the elements back.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}

/// `rows * cols`, refusing overflow and shapes over [`MAX_ELEMENTS`].
pub fn checked_len(rows: usize, cols: usize) -> Result<usize, ComputeError> {
    let len = (rows as u64)
        .checked_mul(cols as u64)
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            ComputeError::TooLarge(format!(
                "{rows}x{cols} exceeds the limit of {MAX_ELEMENTS} elements"
            ))
        })?;
    Ok(len as usize)
}

/// Checks that `a × b` is defined and returns `(m, k, n)`.
pub fn product_shape(a: &Matrix, b: &Matrix) -> Result<(usize, usize, usize), ComputeError> {
    if a.cols != b.rows {
        return Err(ComputeError::Shape(format!(
            "cannot multiply {}x{} by {}x{}: inner dimensions differ",
            a.rows, a.cols, b.rows, b.cols
        )));
    }
    checked_len(a.rows, b.cols)?;
    Ok((a.rows, a.cols, b.cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip() {
        let m = Matrix::from_fn(5, 7, |i, j| (i * 10 + j) as f32).unwrap();
        let b = m.block(1, 3, 2, 4).unwrap();
        assert_eq!(b.get(0, 0), 12.0);
        assert_eq!(b.get(2, 3), 35.0);
        let mut z = Matrix::zeros(5, 7).unwrap();
        z.set_block(1, 2, &b).unwrap();
        assert_eq!(z.get(3, 5), 35.0);
        assert!(m.block(4, 2, 0, 1).is_err());
    }

    #[test]
    fn absurd_shapes_are_refused() {
        assert!(matches!(
            Matrix::zeros(1 << 20, 1 << 20),
            Err(ComputeError::TooLarge(_))
        ));
        assert!(Matrix::zeros(usize::MAX, 2).is_err());
        assert!(Matrix::from_vec(2, 2, vec![0.0; 3]).is_err());
    }
}
