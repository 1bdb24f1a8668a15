//! A multi-layer perceptron for inference jobs, and its weights file format.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "HYMW"
//!      4     1  version = 1
//!      5     1  output softmax: 0 = no, 1 = yes (row-wise, after the last layer)
//!      6     2  reserved, zero
//!      8     4  L = number of layers, u32 LE (1..=64)
//! then L layers, each:
//!            4  inputs  (u32 LE)
//!            4  outputs (u32 LE)
//!            4  activation after the bias: 0 identity, 1 ReLU, 2 GELU (tanh approximation)
//!   4·in·out    W, row-major inputs×outputs (the transpose of PyTorch's Linear.weight), f32 LE
//!      4·out    bias, f32 LE
//! ```
//!
//! A layer computes `y = act(x·W + b)` for a batch `x` (rows are samples). Layers must chain
//! (`outputs` of one = `inputs` of the next); the whole file is bounded by
//! `matrix::MAX_ELEMENTS` parameters. `scripts/mlp_to_hyphae.py` writes it from a numpy
//! `.npz` or PyTorch state dict. Network-facing (a mesh file): fuzzed with the matrix format.

use crate::activation::{self, Activation};
use crate::error::ComputeError;
use crate::matrix::{checked_len, Matrix, MAX_ELEMENTS};

/// The file's first four bytes.
pub const MAGIC: &[u8; 4] = b"HYMW";
/// The only version.
pub const VERSION: u8 = 1;
/// The most layers a model may have.
pub const MAX_LAYERS: usize = 64;

/// One dense layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Weights, inputs × outputs.
    pub weights: Matrix,
    /// One bias per output.
    pub bias: Vec<f32>,
    /// Applied after the bias.
    pub activation: Activation,
}

/// A model: dense layers and an optional softmax on the output.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Layer>,
    /// Row-wise softmax after the last layer.
    pub softmax: bool,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ComputeError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| ComputeError::Format(format!("file ends inside {what}")))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32, ComputeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>, ComputeError> {
        let bytes = n
            .checked_mul(4)
            .ok_or_else(|| ComputeError::TooLarge(format!("{what} too large")))?;
        Ok(self
            .take(bytes, what)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

impl Mlp {
    /// Parses a weights file.
    pub fn decode(bytes: &[u8]) -> Result<Mlp, ComputeError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4, "the magic")? != MAGIC {
            return Err(ComputeError::Format(
                "not a weights file (magic is not HYMW)".into(),
            ));
        }
        let head = r.take(4, "the header")?;
        if head[0] != VERSION {
            return Err(ComputeError::Format(format!("unknown version {}", head[0])));
        }
        let softmax = match head[1] {
            0 => false,
            1 => true,
            x => {
                return Err(ComputeError::Format(format!(
                    "softmax flag {x} is not 0 or 1"
                )))
            }
        };
        if head[2] != 0 || head[3] != 0 {
            return Err(ComputeError::Format("reserved bytes are not zero".into()));
        }
        let count = r.u32("the layer count")? as usize;
        if count == 0 || count > MAX_LAYERS {
            return Err(ComputeError::Format(format!(
                "{count} layers (1..={MAX_LAYERS} allowed)"
            )));
        }
        let mut layers = Vec::with_capacity(count);
        let mut params: u64 = 0;
        for i in 0..count {
            let inputs = r.u32("a layer header")? as usize;
            let outputs = r.u32("a layer header")? as usize;
            let activation = match r.u32("a layer header")? {
                0 => Activation::Identity,
                1 => Activation::Relu,
                2 => Activation::Gelu,
                x => {
                    return Err(ComputeError::Format(format!(
                        "layer {i}: unknown activation {x}"
                    )))
                }
            };
            let len = checked_len(inputs, outputs)?;
            params += len as u64 + outputs as u64;
            if params > MAX_ELEMENTS {
                return Err(ComputeError::TooLarge(format!(
                    "more than {MAX_ELEMENTS} parameters"
                )));
            }
            let weights = Matrix::from_vec(inputs, outputs, r.f32s(len, "the weights")?)?;
            let bias = r.f32s(outputs, "the bias")?;
            layers.push(Layer {
                weights,
                bias,
                activation,
            });
        }
        if r.at != bytes.len() {
            return Err(ComputeError::Format(format!(
                "{} bytes after the last layer",
                bytes.len() - r.at
            )));
        }
        let mlp = Mlp { layers, softmax };
        mlp.validate()?;
        Ok(mlp)
    }

    /// Encodes the model as a weights file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, u8::from(self.softmax), 0, 0]);
        out.extend_from_slice(&(self.layers.len() as u32).to_le_bytes());
        for l in &self.layers {
            out.extend_from_slice(&(l.weights.rows() as u32).to_le_bytes());
            out.extend_from_slice(&(l.weights.cols() as u32).to_le_bytes());
            out.extend_from_slice(&l.activation.code().to_le_bytes());
            for v in l.weights.data().iter().chain(&l.bias) {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Checks that the layers chain and biases fit.
    pub fn validate(&self) -> Result<(), ComputeError> {
        for (i, l) in self.layers.iter().enumerate() {
            if l.bias.len() != l.weights.cols() {
                return Err(ComputeError::Shape(format!(
                    "layer {i}: bias does not match outputs"
                )));
            }
            if let Some(next) = self.layers.get(i + 1) {
                if next.weights.rows() != l.weights.cols() {
                    return Err(ComputeError::Shape(format!(
                        "layer {i} has {} outputs but layer {} takes {} inputs",
                        l.weights.cols(),
                        i + 1,
                        next.weights.rows()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Inputs per sample.
    pub fn inputs(&self) -> usize {
        self.layers.first().map_or(0, |l| l.weights.rows())
    }

    /// Outputs per sample.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.weights.cols())
    }

    /// Checks that a batch fits the model.
    pub fn check_input(&self, x: &Matrix) -> Result<(), ComputeError> {
        if x.cols() != self.inputs() {
            return Err(ComputeError::Shape(format!(
                "input has {} columns, the model takes {}",
                x.cols(),
                self.inputs()
            )));
        }
        Ok(())
    }

    /// Runs the model on a batch with `gemm` doing the products (any backend).
    pub fn forward_with(
        &self,
        x: &Matrix,
        mut gemm: impl FnMut(&Matrix, &Matrix) -> Result<Matrix, ComputeError>,
    ) -> Result<Matrix, ComputeError> {
        self.check_input(x)?;
        let mut h = x.clone();
        for l in &self.layers {
            h = gemm(&h, &l.weights)?;
            activation::bias_activation(&mut h, &l.bias, l.activation);
        }
        if self.softmax {
            activation::softmax_rows(&mut h);
        }
        Ok(h)
    }

    /// Runs the model on the Vulkan device as one submission (no round trips between layers).
    #[cfg(feature = "service")]
    pub fn forward_vulkan(
        &self,
        gpu: &crate::vulkan::VulkanBackend,
        x: &Matrix,
    ) -> Result<Matrix, ComputeError> {
        use crate::vulkan::{Input, Step};
        self.check_input(x)?;
        let dim = |v: usize| {
            u32::try_from(v).map_err(|_| ComputeError::TooLarge(format!("dimension {v}")))
        };
        let batch = x.rows();
        let mut inputs = vec![Input::Data(x.data())];
        let mut steps = Vec::new();
        let mut current = 0usize;
        for l in &self.layers {
            let (k, n) = (l.weights.rows(), l.weights.cols());
            inputs.push(Input::Data(l.weights.data()));
            let w = inputs.len() - 1;
            inputs.push(Input::Data(&l.bias));
            let b = inputs.len() - 1;
            inputs.push(Input::Zeroed(checked_len(batch, n)?));
            let out = inputs.len() - 1;
            if batch > 0 && n > 0 {
                steps.push(Step::sgemm(current, w, out, dim(batch)?, dim(k)?, dim(n)?));
                steps.push(Step::bias_activation(
                    out,
                    b,
                    dim(batch)?,
                    dim(n)?,
                    l.activation,
                ));
            }
            current = out;
        }
        if self.softmax && batch > 0 && self.outputs() > 0 {
            steps.push(Step::softmax(current, dim(batch)?, dim(self.outputs())?));
        }
        let out = gpu.execute(&inputs, &steps, &[current])?;
        Matrix::from_vec(
            batch,
            self.outputs(),
            out.into_iter().next().unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Mlp {
        Mlp {
            layers: vec![
                Layer {
                    weights: Matrix::random(4, 3, 1).unwrap(),
                    bias: vec![0.1, -0.2, 0.3],
                    activation: Activation::Relu,
                },
                Layer {
                    weights: Matrix::random(3, 2, 2).unwrap(),
                    bias: vec![0.0, 1.0],
                    activation: Activation::Identity,
                },
            ],
            softmax: true,
        }
    }

    #[test]
    fn weights_round_trip_and_bad_files_fail_cleanly() {
        let m = model();
        let bytes = m.encode();
        assert_eq!(Mlp::decode(&bytes).unwrap(), m);
        for cut in [0, 3, 11, 20, bytes.len() - 1] {
            assert!(Mlp::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Mlp::decode(&extra).is_err());
        let mut unchained = m.clone();
        unchained.layers[1].weights = Matrix::random(5, 2, 3).unwrap();
        assert!(Mlp::decode(&unchained.encode()).is_err());
    }

    #[test]
    fn input_width_is_checked() {
        let x = Matrix::random(2, 5, 1).unwrap();
        assert!(model().forward_with(&x, crate::reference::gemm).is_err());
    }
}
