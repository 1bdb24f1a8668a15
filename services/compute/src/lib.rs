//! Hyphae's compute worker: the CPU and Vulkan SGEMM backends, the kernels a small neural
//! network needs, Freivalds' verification, and the mesh jobs built on them.
//! See `docs/compute.md`.

pub mod activation;
pub mod cpu;
pub mod error;
pub mod freivalds;
pub mod matrix;
pub mod reference;
pub mod tolerance;
pub mod vulkan;

pub use error::ComputeError;
pub use matrix::Matrix;
