//! The compute service's RPC methods (ALPN `hyphae-compute/1`, udp/7443).

use hyphae_core::rpc::Method;
use serde::{Deserialize, Serialize};

/// Computes one GEMM tile: `C = A·B` for two matrices sent inline (matrix file format).
#[derive(Debug, Clone, Copy)]
pub struct ComputeTile;

/// A tile request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TileRequest {
    /// The job, for logs.
    pub job: String,
    /// The tile's index in the job, for logs.
    pub tile: u32,
    /// `A`'s block (rows of the tile × k), matrix file bytes.
    pub a: Vec<u8>,
    /// `B`'s block (k × columns of the tile), matrix file bytes.
    pub b: Vec<u8>,
}

/// A tile result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TileResponse {
    /// `C`'s block, matrix file bytes.
    pub c: Vec<u8>,
    /// Which backend computed it (`cpu` or `vulkan:<device>`).
    pub backend: String,
    /// Compute time on the worker, microseconds.
    pub micros: u64,
}

impl Method for ComputeTile {
    const NAME: &'static str = "compute.tile";
    type Request = TileRequest;
    type Response = TileResponse;
}
