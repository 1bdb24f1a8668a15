//! The RPC methods of Cannon's pulse on the compute service (ALPN `hyphae-compute/1`,
//! udp/7443). Blocks travel as raw little-endian `f32` bytes after the request (see `wire`),
//! so a block is not bounded by the RPC frame size.

use std::net::SocketAddr;

use hyphae_core::rpc::Method;
use serde::{Deserialize, Serialize};

use super::grid::{Kind, Pos, Split};

/// A node taking part in a pulse: its id and compute address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddr {
    /// Node id.
    pub node: String,
    /// Compute QUIC address.
    pub addr: SocketAddr,
}

/// Job node → worker: run one worker's pulse. After the request the caller sends the skewed
/// `A` block then the `B` block (raw); the worker answers [`StartDone`] then its `C` block (raw).
#[derive(Debug, Clone, Copy)]
pub struct CannonStart;

/// What a worker needs to run its pulse.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartRequest {
    /// The job.
    pub job: String,
    /// How the matrices are cut (`q` is the grid side).
    pub split: Split,
    /// This worker's place.
    pub pos: Pos,
    /// Every worker of the grid by position, row-major (`q²` entries).
    pub workers: Vec<PeerAddr>,
    /// The node holding `A` and `B` (blocks are fetched from it on a step timeout).
    pub origin: PeerAddr,
    /// How long to wait for a neighbour's block before fetching it from the origin, ms.
    pub step_timeout_ms: u64,
}

/// A worker's report at the end of its pulse (its `C` block follows, raw).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartDone {
    /// Rows of the `C` block.
    pub rows: usize,
    /// Columns of the `C` block.
    pub cols: usize,
    /// Blocks fetched from the origin because a neighbour was late.
    pub fetched: usize,
    /// Time spent multiplying, microseconds.
    pub compute_micros: u64,
    /// Wall time of the pulse, microseconds.
    pub pulse_micros: u64,
    /// The backend (`cpu` or `vulkan:<device>`).
    pub backend: String,
}

impl Method for CannonStart {
    const NAME: &'static str = "compute.cannon.start";
    type Request = StartRequest;
    type Response = StartDone;
}

/// Neighbour → neighbour: one block for the receiver's next step (raw bytes follow); the
/// receiver answers [`ShiftAck`].
#[derive(Debug, Clone, Copy)]
pub struct CannonShift;

/// A block passed along the ring.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShiftRequest {
    /// The job.
    pub job: String,
    /// The receiving worker's place.
    pub to: Pos,
    /// Which input.
    pub kind: Kind,
    /// The receiver's step that uses it.
    pub step: usize,
    /// Rows of the block.
    pub rows: usize,
    /// Columns of the block.
    pub cols: usize,
}

/// The receiver has the block.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShiftAck {
    /// False when the receiver's pulse of that job is over (a late block, dropped).
    pub used: bool,
}

impl Method for CannonShift {
    const NAME: &'static str = "compute.cannon.shift";
    type Request = ShiftRequest;
    type Response = ShiftAck;
}

/// Worker → origin: one block of `A` or `B`, because a neighbour was late. The origin answers
/// [`BlockHeader`] then the block (raw).
#[derive(Debug, Clone, Copy)]
pub struct CannonFetch;

/// Which block.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchRequest {
    /// The job.
    pub job: String,
    /// Which input.
    pub kind: Kind,
    /// Block row.
    pub block_row: usize,
    /// Block column.
    pub block_col: usize,
}

/// The shape of a block that follows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockHeader {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl Method for CannonFetch {
    const NAME: &'static str = "compute.cannon.fetch";
    type Request = FetchRequest;
    type Response = BlockHeader;
}
