//! `ComputeError`: everything a compute operation can refuse or fail with.

/// Why a compute operation failed; every variant carries a message fit for a user.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// Shapes that do not fit together (inner dimensions, tile bounds, lengths).
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A shape or file over the worker's limits.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A matrix or weights file that does not parse.
    #[error("bad file: {0}")]
    Format(String),
    /// The Vulkan path is unavailable or a Vulkan call failed.
    #[error("vulkan: {0}")]
    Vulkan(String),
}
