//! Hyphae's compute worker: the CPU and Vulkan SGEMM backends, the kernels a small neural
//! network needs, Freivalds' verification, and the mesh jobs built on them.
//! See `docs/compute.md`.

pub mod activation;
pub mod cannon;
#[cfg(feature = "service")]
pub mod cpu;
pub mod error;
#[cfg(feature = "service")]
pub mod freivalds;
pub mod matrix;
pub mod matrix_file;
pub mod mlp;
pub mod parity;
pub mod quorum;
pub mod reference;
pub mod scheduler;
#[cfg(feature = "service")]
mod service;
pub mod tolerance;
#[cfg(feature = "service")]
pub mod vulkan;

pub use error::ComputeError;
pub use matrix::Matrix;

#[cfg(feature = "service")]
pub use service::{
    backends::Backends, files::MeshFiles, methods, run, tables, ComputeServiceError,
};
