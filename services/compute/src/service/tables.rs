//! The compute service's tables in the coordinator's generic key space, and their records.

use serde::{Deserialize, Serialize};

/// `compute_workers/<node id>`: a worker's advertisement (who can take tiles, how fast).
pub const WORKERS: &str = "compute_workers";
/// `compute_jobs/<job id>`: a job's record (state, progress, tiles, workers).
pub const JOBS: &str = "compute_jobs";
/// `compute_active/<job id>`: jobs not finished yet (queued or running); the queen's compute
/// service scans it to find the jobs it must run or resume. Empty values.
pub const ACTIVE: &str = "compute_active";
/// `compute_quarantine/<node id>`: workers caught returning wrong results; never scheduled.
pub const QUARANTINE: &str = "compute_quarantine";

/// A worker's advertisement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Its compute QUIC port.
    pub port: u16,
    /// `cpu` or `vulkan:<device>`.
    pub backend: String,
    /// Self-benchmark, GFLOP/s: the scheduler's starting score.
    pub gflops: f64,
    /// `[share] cpu`, percent.
    pub cpu_share: u8,
    /// When it was written (unix seconds).
    pub updated_unix: u64,
}

/// A quarantine flag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// Why.
    pub reason: String,
    /// The job that caught it.
    pub job: String,
    /// The node that wrote the flag.
    pub by: String,
    /// When (unix seconds).
    pub at_unix: u64,
}

/// Verification mode of a GEMM job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// Freivalds' check of every tile (the default).
    #[default]
    Freivalds,
    /// Every tile on up to 3 distinct workers; a result 2 of them agree on is kept.
    Quorum,
}

/// `POST /jobs`: a GEMM of two stored matrices.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Mesh path of `A` (matrix file).
    pub a: String,
    /// Mesh path of `B` (matrix file).
    pub b: String,
    /// Mesh path the result is written to.
    pub out: String,
    /// Tile edge (rows and columns of `C` per tile). Default 256.
    #[serde(default)]
    pub tile: Option<usize>,
    /// Verification mode.
    #[serde(default)]
    pub verify: Verify,
    /// `auto` (the cost model picks), `tiles` or `cannon`. Default `auto`.
    #[serde(default)]
    pub mode: crate::cannon::Mode,
    /// Link rate between nodes for the cost model, Mbit/s. Default 1000.
    #[serde(default)]
    pub link_mbps: Option<f64>,
    /// One parity tile per tile row (`crate::parity`): a tile lost with its worker is rebuilt
    /// from its row instead of computed again. Independent tiles with Freivalds' check only.
    #[serde(default)]
    pub parity: bool,
}

/// A job's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id.
    pub id: String,
    /// What was asked.
    pub request: JobRequest,
    /// `queued` (waiting for the queen), `running`, `done` or `failed`.
    pub state: String,
    /// Why it failed.
    pub error: Option<String>,
    /// `[m, k, n]`.
    pub shape: [usize; 3],
    /// The mode asked for, then the mode that runs (`tiles` or `cannon`).
    #[serde(default)]
    pub mode: crate::cannon::Mode,
    /// The cost model's estimates and choice.
    #[serde(default)]
    pub model: Option<serde_json::Value>,
    /// Cannon's grid, per-worker reports, blocks that fell back to tiles.
    #[serde(default)]
    pub cannon: Option<serde_json::Value>,
    /// The tile edge used.
    pub tile: usize,
    /// Tiles in all.
    pub tiles_total: usize,
    /// Tiles verified.
    pub tiles_done: usize,
    /// Results rejected by verification.
    pub rejected: usize,
    /// Calls that failed (and were re-scheduled).
    pub failed_calls: usize,
    /// Per-tile state (omitted for jobs with many tiles).
    pub tiles: Option<serde_json::Value>,
    /// Per-worker scheduler state (score, trust, offences, verified tiles).
    pub workers: serde_json::Value,
    /// The node running the job (the queen that claimed it; empty while queued).
    pub coordinator: String,
    /// Seconds the job has run, over every coordinator that ran it.
    pub elapsed_secs: f64,
    /// The node the job was submitted on.
    #[serde(default)]
    pub submitted_by: String,
    /// How many times a new queen took the job over.
    #[serde(default)]
    pub resumes: u32,
    /// Tiles restored from the checkpoint at the last take-over (not recomputed).
    #[serde(default)]
    pub restored: usize,
    /// The last checkpoint: verified tiles saved to the mesh store.
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
    /// Tiles rebuilt from their row's parity tile instead of computed again.
    #[serde(default)]
    pub rebuilt: usize,
    /// Parity jobs: per tile row the parity tile's state, and counters.
    #[serde(default)]
    pub parity: Option<serde_json::Value>,
}

/// Verified tiles saved while a job runs, so a new queen resumes without recomputing them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Mesh path of the partial `C` (matrix file; only the listed tiles are meaningful).
    pub path: String,
    /// Indexes of the tiles it holds.
    pub tiles: Vec<u32>,
}
