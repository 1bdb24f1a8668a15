//! The element-wise and reduction kernels a small neural network needs, on the CPU, and the
//! `Activation` choice shared with the Vulkan shaders (same formulas, see `shaders/`).

use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;

/// The activation applied after a layer's bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// None (the identity).
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// GELU, tanh approximation (PyTorch's `approximate="tanh"`): GLSL has no `erf`.
    Gelu,
}

impl Activation {
    /// The code the shaders receive as a push constant.
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Gelu => 2,
        }
    }

    /// Applies the activation to one value.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Gelu => gelu(x),
        }
    }
}

/// GELU, tanh approximation: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// `m[i][j] = act(m[i][j] + bias[j])`; `bias` has one value per column.
pub fn bias_activation(m: &mut Matrix, bias: &[f32], act: Activation) {
    let cols = m.cols();
    for row in m.data_mut().chunks_mut(cols.max(1)) {
        for (x, &b) in row.iter_mut().zip(bias) {
            *x = act.apply(*x + b);
        }
    }
}

/// Row-wise softmax, numerically stable (the row's maximum is subtracted first).
pub fn softmax_rows(m: &mut Matrix) {
    let cols = m.cols();
    for row in m.data_mut().chunks_mut(cols.max(1)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for x in row.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        for x in row.iter_mut() {
            *x /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one_and_survive_large_inputs() {
        let mut m = Matrix::from_vec(2, 3, vec![1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0]).unwrap();
        softmax_rows(&mut m);
        for i in 0..2 {
            let s: f32 = m.row(i).iter().sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
        assert!((m.get(1, 0) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn gelu_matches_known_values() {
        assert_eq!(gelu(0.0), 0.0);
        assert!((gelu(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu(-3.0) + 0.003_637_4).abs() < 1e-5);
    }
}
