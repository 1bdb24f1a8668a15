//! The CPU backend: SGEMM through the `gemm` crate (pure Rust, SIMD micro-kernels chosen at
//! run time, multi-threaded with rayon), plus the element-wise kernels of `activation`.

use crate::error::ComputeError;
use crate::matrix::{product_shape, Matrix};

/// SGEMM on the CPU with `threads` threads (0: rayon's default, one per core).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuBackend {
    threads: usize,
}

impl CpuBackend {
    /// A backend using `threads` threads (0: every core).
    pub fn new(threads: usize) -> CpuBackend {
        CpuBackend { threads }
    }

    /// Threads it uses (0: every core).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `a × b`.
    pub fn sgemm(&self, a: &Matrix, b: &Matrix) -> Result<Matrix, ComputeError> {
        let (m, k, n) = product_shape(a, b)?;
        let mut c = Matrix::zeros(m, n)?;
        if m == 0 || n == 0 || k == 0 {
            return Ok(c);
        }
        let parallelism = if self.threads == 1 {
            gemm::Parallelism::None
        } else {
            gemm::Parallelism::Rayon(self.threads)
        };
        // SAFETY: the three buffers are live and sized m·n, m·k and k·n (checked by
        // `product_shape` and `Matrix`'s invariant); strides describe row-major layouts
        // (column stride 1, row stride = columns) that stay inside them; `dst` does not alias
        // the inputs (a fresh matrix). `read_dst = false`: dst := 1·lhs·rhs.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.data_mut().as_mut_ptr(),
                1,
                n as isize,
                false,
                a.data().as_ptr(),
                1,
                k as isize,
                b.data().as_ptr(),
                1,
                n as isize,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                parallelism,
            );
        }
        Ok(c)
    }
}
