//! The job runner: loads the inputs, asks the scheduler who computes which tile, calls the
//! workers over QUIC, verifies every tile with Freivalds' check, writes progress and
//! quarantine flags to the key space and the result to the mesh store.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyphae_chunkstore::coordinator_client::CoordinatorClient;
use hyphae_core::rpc::{self, Limits};
use hyphae_core::transport::{MeshEndpoint, PeerConnection};
use hyphae_core::NodeId;
use serde_json::json;
use tokio::task::JoinSet;

use super::files::MeshFiles;
use super::methods::{ComputeTile, TileRequest};
use super::tables::{
    JobRecord, JobRequest, QuarantineRecord, WorkerRecord, JOBS, QUARANTINE, WORKERS,
};
use crate::error::ComputeError;
use crate::matrix::product_shape;
use crate::scheduler::{plan, Action, Outcome, Policy, Scheduler, TileSpec};
use crate::{freivalds, matrix_file, Matrix};

/// Default tile edge.
pub const DEFAULT_TILE: usize = 256;
/// How long one tile call may take before its tile is re-scheduled.
pub const TILE_TIMEOUT: Duration = Duration::from_secs(120);

/// What a job runner needs from its service.
#[derive(Clone)]
pub struct JobEnv {
    /// This node.
    pub node: NodeId,
    /// The compute endpoint (client side of tile calls).
    pub endpoint: MeshEndpoint,
    /// RPC limits (frame size).
    pub limits: Limits,
    /// The coordinator's socket.
    pub coord: CoordinatorClient,
    /// The chunkstore's socket.
    pub files: MeshFiles,
    /// Cannon's QUIC edge (connections, the origin registry of running Cannon jobs).
    pub cannon: crate::cannon::worker::CannonEdge,
}

/// Why a job was refused at submission.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Bad input: missing files, bad formats, mismatched shapes, absurd sizes.
    #[error("{0}")]
    Invalid(String),
    /// The mesh could not be reached.
    #[error("{0}")]
    Unavailable(String),
}

/// Loads and checks the inputs, writes the job record, and starts the job. Returns its id.
pub async fn submit(env: JobEnv, req: JobRequest) -> Result<String, SubmitError> {
    let load = |path: String| {
        let files = env.files.clone();
        async move {
            let bytes = files.get(&path).await.map_err(|e| match e {
                super::files::FileError::Missing(_) => SubmitError::Invalid(e.to_string()),
                other => SubmitError::Unavailable(other.to_string()),
            })?;
            matrix_file::decode(&bytes).map_err(|e| SubmitError::Invalid(format!("{path}: {e}")))
        }
    };
    if req.out.trim().is_empty() {
        return Err(SubmitError::Invalid(
            "out: an output path is required".into(),
        ));
    }
    let a = load(req.a.clone()).await?;
    let b = load(req.b.clone()).await?;
    let (m, k, n) = product_shape(&a, &b).map_err(|e| SubmitError::Invalid(e.to_string()))?;
    // A tile's two blocks travel in one RPC frame: shrink the tile until they fit.
    let budget = (env.limits.max_frame_bytes as usize).saturating_sub(64 * 1024) / 4;
    let mut tile = req.tile.unwrap_or(DEFAULT_TILE).clamp(1, 4096);
    while tile > 1 && 2 * tile * k.max(1) > budget {
        tile /= 2;
    }
    if 2 * k.max(1) > budget {
        return Err(SubmitError::Invalid(format!(
            "inner dimension {k} too large for one tile frame of {} bytes",
            env.limits.max_frame_bytes
        )));
    }
    let id = format!("{:016x}", rand::random::<u64>());
    let tiles = plan(m, n, tile);
    let mode = req.mode;
    let record = JobRecord {
        id: id.clone(),
        request: req,
        state: "running".into(),
        error: None,
        shape: [m, k, n],
        mode,
        model: None,
        cannon: None,
        tile,
        tiles_total: tiles.len(),
        tiles_done: 0,
        rejected: 0,
        failed_calls: 0,
        tiles: None,
        workers: json!({}),
        coordinator: env.node.to_string(),
        elapsed_secs: 0.0,
    };
    write_record(&env.coord, &record)
        .await
        .map_err(SubmitError::Unavailable)?;
    tokio::spawn(async move {
        let started = Instant::now();
        let mut record = record;
        let span = tracing::info_span!("job", id = %record.id, m, k, n, tile);
        let outcome = {
            let _e = span.enter();
            tracing::info!(tiles = tiles.len(), "job started");
            drop(_e);
            crate::cannon::runner::run_job(&env, &mut record, a, b, tiles, started).await
        };
        record.elapsed_secs = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => record.state = "done".into(),
            Err(e) => {
                tracing::warn!(job = %record.id, error = %e, "job failed");
                record.state = "failed".into();
                record.error = Some(e);
            }
        }
        if let Err(e) = write_record(&env.coord, &record).await {
            tracing::warn!(job = %record.id, error = %e, "writing the final job record");
        }
    });
    Ok(id)
}

pub(crate) async fn write_record(
    coord: &CoordinatorClient,
    record: &JobRecord,
) -> Result<(), String> {
    let text = serde_json::to_string(record).map_err(|e| e.to_string())?;
    coord
        .put(JOBS, &record.id, &text, None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Workers that advertise themselves, are up (or only suspect) in the directory and are not
/// quarantined.
pub(crate) async fn workers(env: &JobEnv) -> Result<HashMap<String, (SocketAddr, f64)>, String> {
    let adverts = env
        .coord
        .scan(WORKERS, "")
        .await
        .map_err(|e| e.to_string())?;
    let quarantined: Vec<String> = env
        .coord
        .scan(QUARANTINE, "")
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|e| e.key)
        .collect();
    let nodes = env.coord.nodes().await.map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for ad in adverts {
        if quarantined.contains(&ad.key) {
            continue;
        }
        let Ok(rec) = serde_json::from_str::<WorkerRecord>(&ad.value) else {
            continue;
        };
        let Some(node) = nodes
            .iter()
            // A suspect node is not down: on a loaded machine heartbeats slip and liveness flaps,
            // and a tile that fails there is re-scheduled anyway.
            .find(|n| n.id.to_string() == ad.key && matches!(n.status.as_str(), "up" | "suspect"))
        else {
            continue;
        };
        let Some(ip) = node.addresses.iter().find_map(|a| a.parse::<IpAddr>().ok()) else {
            continue;
        };
        out.insert(ad.key, (SocketAddr::new(ip, rec.port), rec.gflops));
    }
    Ok(out)
}

type TileDone = (
    usize,
    String,
    Option<PeerConnection>,
    Result<(Matrix, f64), String>,
);

/// Runs `tiles` of the job as independent verified tiles into `result` (zeros for a whole job;
/// partly filled when Cannon hands over the blocks of failed workers), then stores it.
pub(crate) async fn run(
    env: &JobEnv,
    record: &mut JobRecord,
    a: Matrix,
    b: Matrix,
    tiles: Vec<TileSpec>,
    started: Instant,
    mut result: Matrix,
) -> Result<(), String> {
    let pool = workers(env).await?;
    if pool.is_empty() {
        return Err("no compute worker is available (none advertised, up and trusted)".into());
    }
    let k = a.cols();
    let a = Arc::new(a);
    let b = Arc::new(b);
    let mut sched = Scheduler::new(
        tiles.len(),
        pool.iter().map(|(name, (_, g))| (name.clone(), *g)),
        Policy::default(),
    );
    let mut conns: HashMap<String, PeerConnection> = HashMap::new();
    let mut running: JoinSet<TileDone> = JoinSet::new();
    let mut limits = env.limits;
    limits.request_timeout = TILE_TIMEOUT;
    loop {
        while let Some((t, worker)) = sched.next_assignment() {
            let spec = tiles[t];
            let (addr, _) = pool[&worker];
            let conn = conns
                .get(&worker)
                .filter(|c| c.conn.close_reason().is_none())
                .cloned();
            let (endpoint, a, b, job) = (
                env.endpoint.clone(),
                a.clone(),
                b.clone(),
                record.id.clone(),
            );
            running.spawn(async move {
                let call = async {
                    let conn = match conn {
                        Some(c) => c,
                        None => {
                            let node: NodeId =
                                worker.parse().map_err(|e| format!("worker id: {e}"))?;
                            endpoint
                                .connect(addr, Some(node))
                                .await
                                .map_err(|e| e.to_string())?
                        }
                    };
                    let ab = a
                        .block(spec.r0, spec.rows, 0, k)
                        .map_err(|e| e.to_string())?;
                    let bb = b
                        .block(0, k, spec.c0, spec.cols)
                        .map_err(|e| e.to_string())?;
                    let req = TileRequest {
                        job,
                        tile: t as u32,
                        a: matrix_file::encode(&ab),
                        b: matrix_file::encode(&bb),
                    };
                    let t0 = Instant::now();
                    let resp = rpc::call::<ComputeTile>(&conn, &req, &limits)
                        .await
                        .map_err(|e| e.to_string())?;
                    let secs = t0.elapsed().as_secs_f64();
                    let c = matrix_file::decode(&resp.c).map_err(|e| e.to_string())?;
                    // Verify off the async threads.
                    let checked = tokio::task::spawn_blocking(move || {
                        if c.rows() != spec.rows || c.cols() != spec.cols {
                            return Err(ComputeError::Shape("tile of the wrong shape".into()));
                        }
                        let seed = rand::random::<u64>();
                        freivalds::check(&ab, &bb, &c, 1, seed).map(|r| (c, r))
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                    Ok::<_, String>((conn, checked, secs))
                };
                match call.await {
                    Ok((conn, Ok((c, None)), secs)) => (t, worker, Some(conn), Ok((c, secs))),
                    Ok((conn, Ok((_, Some(rej))), _)) => (
                        t,
                        worker,
                        Some(conn),
                        Err(format!(
                            "rejected: row {} off by {:.3e} (bound {:.3e})",
                            rej.row, rej.error, rej.bound
                        )),
                    ),
                    Ok((conn, Err(e), _)) => (t, worker, Some(conn), Err(format!("rejected: {e}"))),
                    Err(e) => (t, worker, None, Err(e)),
                }
            });
        }
        if sched.finished() {
            break;
        }
        if sched.stuck() {
            return Err(format!(
                "no usable worker left with {} of {} tiles done",
                record.tiles_done, record.tiles_total
            ));
        }
        let Some(done) = running.join_next().await else {
            return Err("scheduler idle with tiles pending".into());
        };
        let (t, worker, conn, res) = done.map_err(|e| format!("tile task: {e}"))?;
        if let Some(c) = conn {
            conns.insert(worker.clone(), c);
        }
        let spec = tiles[t];
        let outcome = match res {
            Ok((c, secs)) => {
                result
                    .set_block(spec.r0, spec.c0, &c)
                    .map_err(|e| e.to_string())?;
                record.tiles_done += 1;
                Outcome::Verified {
                    seconds: secs,
                    flops: 2.0 * (spec.rows * k * spec.cols) as f64,
                }
            }
            Err(e) if e.starts_with("rejected") => {
                tracing::warn!(job = %record.id, tile = t, %worker, error = %e, "tile failed verification");
                record.rejected += 1;
                Outcome::Rejected
            }
            Err(e) => {
                tracing::info!(job = %record.id, tile = t, %worker, error = %e, "tile call failed; re-scheduling");
                conns.remove(&worker);
                record.failed_calls += 1;
                Outcome::Failed
            }
        };
        for action in sched.on_result(t, &worker, outcome) {
            let Action::Quarantine(w) = action;
            let flag = QuarantineRecord {
                reason: format!(
                    "returned {} results that failed verification",
                    sched.workers()[&w].offences
                ),
                job: record.id.clone(),
                by: env.node.to_string(),
                at_unix: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            };
            tracing::warn!(worker = %w, "quarantining a worker that returned wrong results");
            let text = serde_json::to_string(&flag).map_err(|e| e.to_string())?;
            if let Err(e) = env.coord.put(QUARANTINE, &w, &text, None).await {
                tracing::warn!(worker = %w, error = %e, "writing the quarantine flag");
            }
        }
        record.workers = serde_json::to_value(sched.workers()).unwrap_or_default();
        record.tiles =
            (tiles.len() <= 256).then(|| serde_json::to_value(sched.tiles()).unwrap_or_default());
        record.elapsed_secs = started.elapsed().as_secs_f64();
        if let Err(e) = write_record(&env.coord, record).await {
            tracing::debug!(error = %e, "progress record not written");
        }
    }
    running.abort_all();
    env.files
        .put(&record.request.out, matrix_file::encode(&result))
        .await
        .map_err(|e| format!("writing the result to {}: {e}", record.request.out))?;
    Ok(())
}
