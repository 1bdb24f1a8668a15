//! GEMM jobs: submission on any node, execution on the queen.
//!
//! `submit` (any node) checks the inputs and writes the job's record (`queued`) and its key in
//! `compute_active`. `drive` runs on every node; on the queen it claims the active jobs nobody
//! runs here (a conditional write naming her as `coordinator`) and runs them: the scheduler
//! says who computes which tile, workers are called over QUIC, every tile is verified
//! (Freivalds' check, or a 2-of-3 quorum vote), progress and quarantine flags go to the key
//! space, verified tiles are checkpointed to the mesh store every few seconds, and the result
//! is written as a mesh file. A new queen resumes a job from its checkpoint; the old runner,
//! if it still lives, loses the next conditional write of the record and stops.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyphae_chunkstore::coordinator_client::{CoordError, CoordinatorClient};
use hyphae_core::rpc::{self, Limits};
use hyphae_core::transport::{MeshEndpoint, PeerConnection};
use hyphae_core::{ipc, NodeId};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::files::{FileError, MeshFiles};
use super::methods::{ComputeTile, TileRequest};
use super::parity_job::ParityJob;
use super::tables::{
    Checkpoint, JobRecord, JobRequest, QuarantineRecord, Verify, WorkerRecord, ACTIVE, JOBS,
    QUARANTINE, WORKERS,
};
use crate::error::ComputeError;
use crate::matrix::product_shape;
use crate::quorum::{self, Scale, Vote};
use crate::scheduler::{plan, Action, Outcome, Policy, Scheduler, TileSpec};
use crate::{freivalds, matrix_file, Matrix};

/// Default tile edge.
pub const DEFAULT_TILE: usize = 256;
/// How long one tile call may take before its tile is re-scheduled.
pub const TILE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often verified tiles are saved to the mesh store while a job runs.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// How often a running job's progress is written to its record.
pub const SAVE_EVERY: Duration = Duration::from_millis(500);
/// How often every node checks whether it is the queen with active jobs to run.
pub const DRIVE_EVERY: Duration = Duration::from_millis(500);

/// What a job runner needs from its service.
#[derive(Clone)]
pub struct JobEnv {
    /// This node.
    pub node: NodeId,
    /// The compute endpoint (client side of tile calls).
    pub endpoint: MeshEndpoint,
    /// RPC limits (frame size).
    pub limits: Limits,
    /// The coordinator's socket client.
    pub coord: CoordinatorClient,
    /// The coordinator's socket (its `/status` names the queen).
    pub coord_socket: PathBuf,
    /// The chunkstore's socket.
    pub files: MeshFiles,
    /// Jobs this node runs now.
    pub running: Arc<Mutex<HashSet<String>>>,
    /// Cannon's QUIC edge (connections, the origin registry of running Cannon jobs).
    pub cannon: crate::cannon::worker::CannonEdge,
    /// The compute service's counters (parity tiles, rebuilt tiles).
    pub metrics: super::metrics::JobMetrics,
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

async fn load(files: &MeshFiles, path: &str) -> Result<Matrix, SubmitError> {
    let bytes = files.get(path).await.map_err(|e| match e {
        FileError::Missing(_) => SubmitError::Invalid(e.to_string()),
        other => SubmitError::Unavailable(other.to_string()),
    })?;
    matrix_file::decode(&bytes).map_err(|e| SubmitError::Invalid(format!("{path}: {e}")))
}

/// The tile edge a job uses: the asked one (default 256), halved until a tile's two blocks
/// fit one RPC frame.
fn tile_edge(limits: &Limits, asked: Option<usize>, k: usize) -> Result<usize, SubmitError> {
    let budget = (limits.max_frame_bytes as usize).saturating_sub(64 * 1024) / 4;
    let mut tile = asked.unwrap_or(DEFAULT_TILE).clamp(1, 4096);
    while tile > 1 && 2 * tile * k.max(1) > budget {
        tile /= 2;
    }
    if 2 * k.max(1) > budget {
        return Err(SubmitError::Invalid(format!(
            "inner dimension {k} too large for one tile frame of {} bytes",
            limits.max_frame_bytes
        )));
    }
    Ok(tile)
}

/// Parity tiles need independent tiles checked by Freivalds and at least two tiles per row.
fn check_parity(req: &JobRequest, m: usize, n: usize, tile: usize) -> Result<(), SubmitError> {
    if req.verify == Verify::Quorum {
        return Err(SubmitError::Invalid(
            "parity tiles do not combine with verify = quorum (a quorum already computes every \
             tile three times): choose one"
                .into(),
        ));
    }
    if req.mode == crate::cannon::Mode::Cannon {
        return Err(SubmitError::Invalid(
            "parity tiles need independent tiles, and mode = cannon has none: use mode tiles or \
             auto"
                .into(),
        ));
    }
    crate::parity::Layout::new(&plan(m, n, tile), tile)
        .map(|_| ())
        .map_err(|e| SubmitError::Invalid(e.to_string()))
}

/// Checks the inputs and queues the job for the queen. Returns its id.
#[tracing::instrument(level = "info", skip(env, req), fields(a = %req.a, b = %req.b))]
pub async fn submit(env: JobEnv, req: JobRequest) -> Result<String, SubmitError> {
    if req.out.trim().is_empty() {
        return Err(SubmitError::Invalid(
            "out: an output path is required".into(),
        ));
    }
    let a = load(&env.files, &req.a).await?;
    let b = load(&env.files, &req.b).await?;
    let (m, k, n) = product_shape(&a, &b).map_err(|e| SubmitError::Invalid(e.to_string()))?;
    let tile = tile_edge(&env.limits, req.tile, k)?;
    if req.parity {
        check_parity(&req, m, n, tile)?;
    }
    let id = format!("{:016x}", rand::random::<u64>());
    let mode = req.mode;
    let record = JobRecord {
        id: id.clone(),
        request: req,
        state: "queued".into(),
        error: None,
        shape: [m, k, n],
        mode,
        model: None,
        cannon: None,
        tile,
        tiles_total: plan(m, n, tile).len(),
        tiles_done: 0,
        rejected: 0,
        failed_calls: 0,
        tiles: None,
        workers: json!({}),
        coordinator: String::new(),
        elapsed_secs: 0.0,
        submitted_by: env.node.to_string(),
        resumes: 0,
        restored: 0,
        checkpoint: None,
        rebuilt: 0,
        parity: None,
    };
    let text =
        serde_json::to_string(&record).map_err(|e| SubmitError::Unavailable(e.to_string()))?;
    env.coord
        .put(JOBS, &id, &text, Some(0))
        .await
        .map_err(|e| SubmitError::Unavailable(e.to_string()))?;
    env.coord
        .put(ACTIVE, &id, "", None)
        .await
        .map_err(|e| SubmitError::Unavailable(e.to_string()))?;
    tracing::info!(job = %id, m, k, n, tile, "job queued for the queen");
    Ok(id)
}

/// The queen's id according to this node's coordinator.
async fn queen(env: &JobEnv) -> Option<String> {
    let v = ipc::get_json(&env.coord_socket, "/status").await.ok()?;
    v["queen"].as_str().map(str::to_string)
}

/// Runs on every node until `shutdown`: while this node is the queen, claims and runs every
/// active job nobody runs here.
pub async fn drive(env: JobEnv, shutdown: CancellationToken) {
    let me = env.node.to_string();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DRIVE_EVERY) => {}
        }
        if queen(&env).await.as_deref() != Some(me.as_str()) {
            continue;
        }
        let active = match env.coord.scan(ACTIVE, "").await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "active jobs not readable");
                continue;
            }
        };
        for entry in active {
            let id = entry.key;
            let mine = env.running.lock().map_or(true, |r| r.contains(&id));
            if mine {
                continue;
            }
            if let Err(e) = claim(&env, &id, shutdown.clone()).await {
                tracing::debug!(job = %id, error = %e, "job not claimed");
            }
        }
    }
}

/// Takes `id` over (a conditional write naming this node) and starts running it.
async fn claim(env: &JobEnv, id: &str, shutdown: CancellationToken) -> Result<(), String> {
    let Some((text, version)) = env
        .coord
        .get(JOBS, id, true)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Err("no record yet".into());
    };
    let mut record: JobRecord = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            let _ = env.coord.delete(ACTIVE, id).await;
            return Err(format!(
                "unreadable record dropped from the active jobs: {e}"
            ));
        }
    };
    if matches!(record.state.as_str(), "done" | "failed") {
        let _ = env.coord.delete(ACTIVE, id).await;
        return Ok(());
    }
    if !record.coordinator.is_empty() {
        record.resumes += 1;
        tracing::warn!(job = %id, from = %record.coordinator, "resuming a job whose coordinator changed");
    }
    record.coordinator = env.node.to_string();
    record.state = "running".into();
    let text = serde_json::to_string(&record).map_err(|e| e.to_string())?;
    let version = env
        .coord
        .put(JOBS, id, &text, Some(version))
        .await
        .map_err(|e| e.to_string())?;
    if let Ok(mut r) = env.running.lock() {
        r.insert(id.to_string());
    }
    let env = env.clone();
    tokio::spawn(async move {
        let id = record.id.clone();
        let span = tracing::info_span!("job", id = %id);
        let _ = tokio::select! {
            _ = shutdown.cancelled() => None,
            _ = tracing::Instrument::instrument(run_job(&env, record, version), span) => Some(()),
        };
        if let Ok(mut r) = env.running.lock() {
            r.remove(&id);
        }
    });
    Ok(())
}

/// Why a run ended without finishing the job.
#[derive(Debug)]
pub(crate) enum RunError {
    /// Someone else owns the job now (a newer queen claimed it).
    Superseded,
    /// The job cannot finish.
    Failed(String),
}

impl From<String> for RunError {
    fn from(e: String) -> RunError {
        RunError::Failed(e)
    }
}

/// The job record and the version of its last write: every write is conditional on it, so
/// a deposed coordinator stops at its next write.
pub(crate) struct Owned {
    pub(crate) record: JobRecord,
    version: u64,
}

impl Owned {
    pub(crate) async fn save(&mut self, coord: &CoordinatorClient) -> Result<(), RunError> {
        let text = serde_json::to_string(&self.record).map_err(|e| e.to_string())?;
        match coord
            .put(JOBS, &self.record.id, &text, Some(self.version))
            .await
        {
            Ok(v) => {
                self.version = v;
                Ok(())
            }
            Err(CoordError::Conflict) => Err(RunError::Superseded),
            Err(e) => {
                tracing::debug!(error = %e, "progress record not written");
                Ok(())
            }
        }
    }
}

async fn run_job(env: &JobEnv, record: JobRecord, version: u64) {
    let mut job = Owned { record, version };
    let started = Instant::now();
    let base = job.record.elapsed_secs;
    let outcome = execute(env, &mut job, started, base).await;
    job.record.elapsed_secs = base + started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => job.record.state = "done".into(),
        Err(RunError::Superseded) => {
            tracing::warn!(job = %job.record.id, "another coordinator owns the job now; stopping here");
            return;
        }
        Err(RunError::Failed(e)) => {
            tracing::warn!(job = %job.record.id, error = %e, "job failed");
            job.record.state = "failed".into();
            job.record.error = Some(e);
        }
    }
    let checkpoint = job.record.checkpoint.take();
    match job.save(&env.coord).await {
        Err(RunError::Superseded) => return,
        _ => tracing::info!(job = %job.record.id, state = %job.record.state, "job finished"),
    }
    if let Err(e) = env.coord.delete(ACTIVE, &job.record.id).await {
        tracing::warn!(job = %job.record.id, error = %e, "removing the job from the active ones");
    }
    if let Some(cp) = checkpoint {
        if let Err(e) = env.files.delete(&cp.path).await {
            tracing::debug!(error = %e, "checkpoint not removed");
        }
    }
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

/// Reads a mesh matrix, retrying a store that is briefly unavailable (right after a queen
/// change the store may still be re-routing around the dead node).
async fn load_retrying(files: &MeshFiles, path: &str) -> Result<Matrix, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match load(files, path).await {
            Ok(m) => return Ok(m),
            Err(SubmitError::Unavailable(e)) if Instant::now() < deadline => {
                tracing::debug!(%path, error = %e, "input not readable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("reading {path}: {e}")),
        }
    }
}

/// The mesh path of a job's checkpoint.
fn checkpoint_path(id: &str) -> String {
    format!(".hyphae-jobs/{id}.partial")
}

type TileDone = (
    usize,
    String,
    Option<PeerConnection>,
    Result<(Matrix, f64), String>,
);

/// Writes the quarantine flags the scheduler asked for.
async fn act(env: &JobEnv, sched: &Scheduler, job: &str, actions: Vec<Action>) {
    for action in actions {
        let Action::Quarantine(w) = action;
        let flag = QuarantineRecord {
            reason: format!(
                "returned {} results that failed verification",
                sched.workers().get(&w).map_or(0, |s| s.offences)
            ),
            job: job.to_string(),
            by: env.node.to_string(),
            at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        tracing::warn!(worker = %w, "quarantining a worker that returned wrong results");
        match serde_json::to_string(&flag) {
            Ok(text) => {
                if let Err(e) = env.coord.put(QUARANTINE, &w, &text, None).await {
                    tracing::warn!(worker = %w, error = %e, "writing the quarantine flag");
                }
            }
            Err(e) => tracing::warn!(error = %e, "quarantine flag does not encode"),
        }
    }
}

async fn execute(
    env: &JobEnv,
    job: &mut Owned,
    started: Instant,
    base_elapsed: f64,
) -> Result<(), RunError> {
    let a = load_retrying(&env.files, &job.record.request.a).await?;
    let b = load_retrying(&env.files, &job.record.request.b).await?;
    let (m, k, n) = product_shape(&a, &b).map_err(|e| e.to_string())?;
    if [m, k, n] != job.record.shape {
        return Err(RunError::Failed(format!(
            "the inputs changed shape since submission: now {m}x{k} by {k}x{n}"
        )));
    }
    let a = Arc::new(a);
    let b = Arc::new(b);
    // Cannon's systolic mode when the model (or the job) picks it; never on a resume, whose
    // checkpoint holds independent tiles. Blocks of failed Cannon workers come back as tiles.
    let cannon = if job.record.checkpoint.is_none() {
        crate::cannon::runner::pulse_if_chosen(env, job, &a, &b, started).await?
    } else {
        None
    };
    let cannon_used = cannon.is_some();
    let (mut tiles, cannon_result, liars) = match cannon {
        Some(p) => (p.fallback, Some(p.partial), p.liars),
        None => (plan(m, n, job.record.tile), None, Vec::new()),
    };
    // Data tiles are slots 0..data_tiles; parity tiles (one per tile row) follow.
    let data_tiles = tiles.len();
    if let (Some(done), true) = (&cannon_result, tiles.is_empty()) {
        env.files
            .put(&job.record.request.out, matrix_file::encode(done))
            .await
            .map_err(|e| format!("writing the result to {}: {e}", job.record.request.out))?;
        return Ok(());
    }
    let quorum_mode = job.record.request.verify == Verify::Quorum;
    // Parity (refused at submission with a quorum or Cannon; never on Cannon's fallback).
    let mut parity = if job.record.request.parity && !cannon_used && !quorum_mode {
        Some(ParityJob::new(&mut tiles, job.record.tile, &b)?)
    } else {
        None
    };
    let policy = Policy {
        replicas: if quorum_mode { quorum::REPLICAS } else { 1 },
        ..Policy::default()
    };
    let pool = workers(env).await?;
    if pool.is_empty() {
        return Err(RunError::Failed(
            "no compute worker is available (none advertised, up and trusted)".into(),
        ));
    }
    let mut sched = Scheduler::new(
        tiles.len(),
        pool.iter().map(|(name, (_, g))| (name.clone(), *g)),
        policy,
    );
    if let Some(p) = &parity {
        sched.group(p.groups());
    }
    // Cannon workers whose block failed verification offend like a rejected tile (trust cut,
    // an offence towards quarantine), before any fallback tile is given out.
    for liar in liars {
        let actions = sched.on_offence(&liar);
        act(env, &sched, &job.record.id, actions).await;
    }
    let mut decisions = Vec::new();
    // Resume: the tiles of the last checkpoint are kept, not recomputed.
    let mut result = match cannon_result {
        Some(partial) => partial,
        None => Matrix::zeros(m, n).map_err(|e| e.to_string())?,
    };
    job.record.restored = 0;
    if let Some(cp) = job.record.checkpoint.clone() {
        match env
            .files
            .get(&cp.path)
            .await
            .map_err(|e| e.to_string())
            .and_then(|bytes| matrix_file::decode(&bytes).map_err(|e| e.to_string()))
        {
            Ok(partial) if partial.rows() == m && partial.cols() == n => {
                result = partial;
                for &t in &cp.tiles {
                    if (t as usize) < data_tiles {
                        sched.mark_done(t as usize);
                        job.record.restored += 1;
                        if let Some(p) = parity.as_mut() {
                            decisions.extend(p.data_verified(t as usize));
                        }
                    }
                }
                tracing::info!(
                    restored = job.record.restored,
                    "resumed from the checkpoint"
                );
            }
            Ok(_) => tracing::warn!("checkpoint of the wrong shape ignored"),
            Err(e) => tracing::warn!(error = %e, "checkpoint not readable; recomputing every tile"),
        }
    }
    job.record.tiles_done = job.record.restored;
    if let Some(p) = parity.as_mut() {
        p.apply(
            std::mem::take(&mut decisions),
            &mut sched,
            &mut result,
            &tiles,
            (&a, &b),
            &mut job.record,
            &env.metrics,
        )
        .await?;
    }
    let mut checkpointed = job.record.restored;
    let mut last_checkpoint = Instant::now();
    let mut saving: Option<tokio::task::JoinHandle<Result<Checkpoint, String>>> = None;
    let mut last_save = Instant::now();
    let mut rejected_saved = job.record.rejected;
    // Quorum mode: results back for a tile not decided yet (worker, result, seconds).
    let mut votes: HashMap<usize, Vec<(String, Matrix, f64)>> = HashMap::new();
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
            let (endpoint, a, b, id) = (
                env.endpoint.clone(),
                a.clone(),
                parity
                    .as_ref()
                    .and_then(|p| p.b_for(t))
                    .unwrap_or_else(|| b.clone()),
                job.record.id.clone(),
            );
            running.spawn(call_tile(
                endpoint,
                addr,
                conn,
                limits,
                (a, b, k),
                (id, t, spec, worker),
                !quorum_mode,
            ));
        }
        if sched.finished() {
            break;
        }
        if sched.stuck() {
            return Err(RunError::Failed(format!(
                "no usable worker left with {} of {} tiles done{}",
                job.record.tiles_done,
                job.record.tiles_total,
                if quorum_mode {
                    " (quorum mode needs two workers that agree on every tile)"
                } else {
                    ""
                }
            )));
        }
        let Some(done) = running.join_next().await else {
            return Err(RunError::Failed("scheduler idle with tiles pending".into()));
        };
        let (t, worker, conn, res) = done.map_err(|e| format!("tile task: {e}"))?;
        if let Some(c) = conn {
            conns.insert(worker.clone(), c);
        }
        let spec = tiles[t];
        let flops = 2.0 * (spec.rows * k * spec.cols) as f64;
        let mut settled: Vec<(String, Outcome)> = Vec::new();
        match res {
            Ok((c, seconds)) if quorum_mode => {
                sched.on_returned(t, &worker);
                let ab = a
                    .block(spec.r0, spec.rows, 0, k)
                    .map_err(|e| e.to_string())?;
                let bb = b
                    .block(0, k, spec.c0, spec.cols)
                    .map_err(|e| e.to_string())?;
                let scale = Scale::of(&ab, &bb);
                if sched.is_done(t) {
                    // A late replica of a decided tile: judged against the kept result.
                    let kept = result
                        .block(spec.r0, spec.rows, spec.c0, spec.cols)
                        .map_err(|e| e.to_string())?;
                    let outcome = if scale.agree(&kept, &c) {
                        Outcome::Verified { seconds, flops }
                    } else {
                        Outcome::Rejected
                    };
                    settled.push((worker, outcome));
                } else {
                    let entry = votes.entry(t).or_default();
                    entry.push((worker, c, seconds));
                    let refs: Vec<&Matrix> = entry.iter().map(|(_, c, _)| c).collect();
                    match quorum::vote(&scale, &refs, policy.replicas) {
                        Vote::Wait => {}
                        Vote::Accept { agree, dissent } => {
                            let entry = votes.remove(&t).unwrap_or_default();
                            if let Some((_, kept, _)) = entry.get(agree[0]) {
                                result
                                    .set_block(spec.r0, spec.c0, kept)
                                    .map_err(|e| e.to_string())?;
                            }
                            job.record.tiles_done += 1;
                            for (i, (w, _, seconds)) in entry.into_iter().enumerate() {
                                if agree.contains(&i) {
                                    settled.push((w, Outcome::Verified { seconds, flops }));
                                } else if dissent.contains(&i) {
                                    settled.push((w, Outcome::Rejected));
                                }
                            }
                        }
                        Vote::Inconclusive => {
                            tracing::warn!(tile = t, "no two replicas agree; asking other workers");
                            for (w, _, _) in votes.remove(&t).unwrap_or_default() {
                                settled.push((w, Outcome::Inconclusive));
                            }
                        }
                    }
                }
            }
            Ok((c, seconds)) => {
                match parity.as_mut() {
                    Some(p) if p.is_parity(t) => {
                        decisions.extend(p.parity_verified(t, c, &env.metrics));
                    }
                    _ => {
                        result
                            .set_block(spec.r0, spec.c0, &c)
                            .map_err(|e| e.to_string())?;
                        job.record.tiles_done += 1;
                        if let Some(p) = parity.as_mut() {
                            decisions.extend(p.data_verified(t));
                        }
                    }
                }
                settled.push((worker, Outcome::Verified { seconds, flops }));
            }
            Err(e) if e.starts_with("rejected") => {
                tracing::warn!(tile = t, %worker, error = %e, "tile failed verification");
                settled.push((worker, Outcome::Rejected));
            }
            Err(e) => {
                tracing::info!(tile = t, %worker, error = %e, "tile call failed; re-scheduling");
                conns.remove(&worker);
                job.record.failed_calls += 1;
                if let Some(p) = parity.as_mut() {
                    decisions.extend(p.lost(t));
                }
                settled.push((worker, Outcome::Failed));
            }
        }
        for (w, outcome) in settled {
            if outcome == Outcome::Rejected {
                if quorum_mode {
                    tracing::warn!(tile = t, worker = %w, "result outvoted by the quorum");
                }
                job.record.rejected += 1;
            }
            let actions = sched.on_result(t, &w, outcome);
            act(env, &sched, &job.record.id, actions).await;
        }
        // After the scheduler settled the call: a lost tile is held (or released) there.
        if let Some(p) = parity.as_mut() {
            p.apply(
                std::mem::take(&mut decisions),
                &mut sched,
                &mut result,
                &tiles,
                (&a, &b),
                &mut job.record,
                &env.metrics,
            )
            .await?;
            job.record.parity = Some(p.view(&sched));
        }
        job.record.workers = serde_json::to_value(sched.workers()).unwrap_or_default();
        job.record.tiles = (data_tiles <= 256).then(|| {
            serde_json::to_value(sched.tiles().get(..data_tiles).unwrap_or(&[])).unwrap_or_default()
        });
        job.record.elapsed_secs = base_elapsed + started.elapsed().as_secs_f64();
        // Checkpoints are written in the background (a store write can take seconds while a
        // node is dead), one at a time; the record names one only once it is stored.
        if saving.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(h) = saving.take() {
                checkpoint_done(&mut job.record, &mut checkpointed, h.await);
            }
        }
        if saving.is_none()
            && job.record.tiles_done > checkpointed
            && last_checkpoint.elapsed() >= CHECKPOINT_EVERY
            && !sched.finished()
            // A checkpoint names tiles of the whole plan; Cannon's fallback tiles are not.
            && !cannon_used
        {
            let path = checkpoint_path(&job.record.id);
            let done: Vec<u32> = (0..data_tiles)
                .filter(|&t| sched.is_done(t))
                .map(|t| t as u32)
                .collect();
            let (files, bytes) = (env.files.clone(), matrix_file::encode(&result));
            saving = Some(tokio::spawn(async move {
                files
                    .put(&path, bytes)
                    .await
                    .map(|()| Checkpoint { path, tiles: done })
                    .map_err(|e| e.to_string())
            }));
            last_checkpoint = Instant::now();
        }
        // Progress is replicated at most every SAVE_EVERY (a Raft write per tile would bound
        // a many-tile job by the coordinator's write latency), at once when a result was
        // rejected.
        if last_save.elapsed() >= SAVE_EVERY || job.record.rejected != rejected_saved {
            job.save(&env.coord).await?;
            last_save = Instant::now();
            rejected_saved = job.record.rejected;
        }
    }
    running.abort_all();
    // Let a checkpoint in flight land, so that the record names it and it is removed.
    if let Some(h) = saving.take() {
        checkpoint_done(&mut job.record, &mut checkpointed, h.await);
    }
    env.files
        .put(&job.record.request.out, matrix_file::encode(&result))
        .await
        .map_err(|e| format!("writing the result to {}: {e}", job.record.request.out))?;
    Ok(())
}

/// Records a background checkpoint write's outcome.
fn checkpoint_done(
    record: &mut JobRecord,
    checkpointed: &mut usize,
    outcome: Result<Result<Checkpoint, String>, tokio::task::JoinError>,
) {
    match outcome {
        Ok(Ok(cp)) => {
            *checkpointed = cp.tiles.len();
            record.checkpoint = Some(cp);
        }
        Ok(Err(e)) => tracing::info!(error = %e, "checkpoint not written"),
        Err(e) => tracing::info!(error = %e, "checkpoint task"),
    }
}

/// One tile call: connect (or reuse), send the blocks, decode the answer and, in Freivalds
/// mode, check it off the async threads. An `Err` starting with `rejected` failed the check.
async fn call_tile(
    endpoint: MeshEndpoint,
    addr: SocketAddr,
    conn: Option<PeerConnection>,
    limits: Limits,
    (a, b, k): (Arc<Matrix>, Arc<Matrix>, usize),
    (job, t, spec, worker): (String, usize, TileSpec, String),
    freivalds_check: bool,
) -> TileDone {
    let call = async {
        let conn = match conn {
            Some(c) => c,
            None => {
                let node: NodeId = worker.parse().map_err(|e| format!("worker id: {e}"))?;
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
            if !freivalds_check {
                return Ok((c, None));
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
}
