//! The job node's side of a GEMM job: the decision hook (the cost model picks independent
//! tiles or Cannon, unless the job forces one) and, for Cannon, the run: register the inputs as
//! the origin, start every worker's pulse with its skewed blocks, collect and verify (Freivalds)
//! every `C` block, and fall back to independent tiles for the blocks of workers that failed,
//! died or lied.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyphae_core::rpc::{self, RpcError};
use serde_json::json;
use tokio::task::JoinSet;

use super::grid::{Grid, Kind, Pos, Split};
use super::methods::{CannonStart, PeerAddr, StartDone, StartRequest};
use super::model::{self, Inputs, Mode};
use super::origin::OriginJob;
use super::wire;
use crate::scheduler::{plan, TileSpec};
use crate::service::job::{self, JobEnv, Owned, RunError};
use crate::{freivalds, Matrix};

/// The link rate assumed when the job does not give `link_mbps`: gigabit Ethernet.
pub const DEFAULT_LINK_MBPS: f64 = 1000.0;

/// A worker's `C` block and report, or why it has none.
type PulseOutcome = Result<(Matrix, StartDone), String>;

/// What a Cannon pulse left for the tile loop.
pub(crate) struct Pulsed {
    /// The product with every verified block in place.
    pub(crate) partial: Matrix,
    /// Tiles (in product coordinates) of the blocks whose workers failed, died or lied.
    pub(crate) fallback: Vec<TileSpec>,
    /// Workers whose `C` block failed verification: offences, counted like a rejected tile's.
    pub(crate) liars: Vec<String>,
}

/// Decides the job's mode; when it is Cannon, runs the pulse. `None`: independent tiles fit
/// better. Else what the pulse left: the product with every verified block in place, the tiles
/// of the blocks whose workers failed, which the tile loop finishes, and who lied.
pub(crate) async fn pulse_if_chosen(
    env: &JobEnv,
    job: &mut Owned,
    a: &Arc<Matrix>,
    b: &Arc<Matrix>,
    started: Instant,
) -> Result<Option<Pulsed>, RunError> {
    let record = &mut job.record;
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let pool = job::workers(env).await?;
    let inputs = Inputs {
        m,
        k,
        n,
        tile: record.tile,
        gflops: pool.values().map(|(_, g)| *g).collect(),
        link_bytes_per_sec: record
            .request
            .link_mbps
            .unwrap_or(DEFAULT_LINK_MBPS)
            .max(0.001)
            * 1e6
            / 8.0,
        latency_secs: model::DEFAULT_LATENCY_SECS,
    };
    // Parity tiles protect independent tiles: a parity job runs as tiles.
    let asked = if record.request.parity {
        Mode::Tiles
    } else {
        record.request.mode
    };
    let decision = model::decide(&inputs, asked);
    record.mode = decision.mode;
    record.model = serde_json::to_value(decision).ok();
    tracing::info!(job = %record.id, mode = ?decision.mode, ?decision, "mode chosen");
    let zeros = || Matrix::zeros(m, n).map_err(|e| e.to_string());
    let Some(estimate) = decision.cannon.filter(|_| decision.mode == Mode::Cannon) else {
        return Ok(None);
    };
    // The q² fastest workers, fastest first (ties by id, so the grid is stable).
    let mut ranked: Vec<(String, SocketAddr, f64)> = pool
        .into_iter()
        .map(|(id, (addr, g))| (id, addr, g))
        .collect();
    ranked.sort_by(|x, y| y.2.total_cmp(&x.2).then_with(|| x.0.cmp(&y.0)));
    let q = decision.q;
    ranked.truncate(q * q);
    let workers: Vec<PeerAddr> = ranked
        .iter()
        .map(|(node, addr, _)| PeerAddr {
            node: node.clone(),
            addr: *addr,
        })
        .collect();
    let origin = origin_addr(env).await?;
    let split = Split { m, k, n, q };
    // The quorum-timeout: four times the model's step, plus slack for a loaded machine.
    let step = Duration::from_secs_f64(estimate.total_secs / q as f64);
    let step_timeout = Duration::from_secs(2) + step * 4;
    let (a, b) = (a.clone(), b.clone());
    let _registration = env.cannon.origins.register(
        &record.id,
        OriginJob {
            a: a.clone(),
            b: b.clone(),
            split,
        },
    );
    let mut calls: JoinSet<(Pos, PulseOutcome)> = JoinSet::new();
    for pos in Grid::new(q).positions() {
        let req = StartRequest {
            job: record.id.clone(),
            split,
            pos,
            workers: workers.clone(),
            origin: origin.clone(),
            step_timeout_ms: step_timeout.as_millis() as u64,
        };
        let (env, a, b) = (env.clone(), a.clone(), b.clone());
        let peer = workers[pos.row * q + pos.col].clone();
        calls.spawn(async move {
            let r = start_worker(&env, &peer, req, &a, &b).await;
            (pos, r)
        });
    }
    record.cannon = Some(json!({
        "q": q,
        "grid": workers.iter().map(|w| w.node.clone()).collect::<Vec<_>>(),
        "step_timeout_ms": step_timeout.as_millis() as u64,
        "state": "pulsing",
    }));
    record.tiles_total = q * q;
    job.save(&env.coord).await?;
    let record = &mut job.record;
    let mut result = zeros()?;
    let mut failed: Vec<Pos> = Vec::new();
    let mut liars: Vec<String> = Vec::new();
    let mut reports = BTreeMap::new();
    while let Some(joined) = calls.join_next().await {
        let (pos, outcome) = joined.map_err(|e| format!("pulse task: {e}"))?;
        let node = workers[pos.row * q + pos.col].node.clone();
        let checked = match outcome {
            Ok((c, done)) => verify(&a, &b, split, pos, c).await.map(|c| (c, done)),
            Err(e) => Err(e),
        };
        match checked {
            Ok((c, done)) => {
                let (r0, _, c0, _) = split.c_block(pos);
                result.set_block(r0, c0, &c).map_err(|e| e.to_string())?;
                record.tiles_done += 1;
                reports.insert(
                    format!("{},{}", pos.row, pos.col),
                    json!({"node": node, "fetched_from_origin": done.fetched,
                        "compute_secs": done.compute_micros as f64 / 1e6,
                        "pulse_secs": done.pulse_micros as f64 / 1e6, "backend": done.backend}),
                );
            }
            Err(e) => {
                tracing::warn!(job = %record.id, ?pos, %node, error = %e, "a Cannon block failed; its block goes to independent tiles");
                if e.starts_with("rejected") {
                    record.rejected += 1;
                    liars.push(node.clone());
                } else {
                    record.failed_calls += 1;
                }
                reports.insert(
                    format!("{},{}", pos.row, pos.col),
                    json!({"node": node, "error": e}),
                );
                failed.push(pos);
            }
        }
    }
    let fallback: Vec<TileSpec> = failed
        .iter()
        .flat_map(|&pos| {
            let (r0, rows, c0, cols) = split.c_block(pos);
            plan(rows, cols, record.tile)
                .into_iter()
                .map(move |t| TileSpec {
                    r0: r0 + t.r0,
                    c0: c0 + t.c0,
                    ..t
                })
        })
        .collect();
    record.cannon = Some(json!({
        "q": q,
        "grid": workers.iter().map(|w| w.node.clone()).collect::<Vec<_>>(),
        "step_timeout_ms": step_timeout.as_millis() as u64,
        "state": if failed.is_empty() { "done" } else { "fallback" },
        "workers": reports,
        "fallback_blocks": failed.iter().map(|p| [p.row, p.col]).collect::<Vec<_>>(),
        "fallback_tiles": fallback.len(),
        "pulse_secs": started.elapsed().as_secs_f64(),
    }));
    drop(_registration);
    if !fallback.is_empty() {
        record.tiles_total = fallback.len();
        record.tiles_done = 0;
    }
    Ok(Some(Pulsed {
        partial: result,
        fallback,
        liars,
    }))
}

/// This node's compute address, from the directory.
async fn origin_addr(env: &JobEnv) -> Result<PeerAddr, String> {
    let me = env.node.to_string();
    let nodes = env.coord.nodes().await.map_err(|e| e.to_string())?;
    let ip = nodes
        .iter()
        .find(|n| n.id.to_string() == me)
        .and_then(|n| n.addresses.iter().find_map(|a| a.parse::<IpAddr>().ok()))
        .ok_or_else(|| "this node has no address in the directory".to_string())?;
    Ok(env.cannon.origin_at(ip))
}

/// Starts one worker's pulse with its skewed blocks and waits for its `C` block.
async fn start_worker(
    env: &JobEnv,
    peer: &PeerAddr,
    req: StartRequest,
    a: &Matrix,
    b: &Matrix,
) -> Result<(Matrix, StartDone), String> {
    let grid = Grid::new(req.split.q);
    let cut = |kind: Kind, m: &Matrix| {
        let (bi, bj) = grid.block(kind, req.pos, 0);
        super::local::cut(m, &req.split, kind, bi, bj).map_err(|e| e.to_string())
    };
    let (ab, bb) = (cut(Kind::A, a)?, cut(Kind::B, b)?);
    let (_, rows, _, cols) = req.split.c_block(req.pos);
    let conn = env.cannon.connect(peer).await?;
    let limits = env.cannon.bulk_limits();
    let exchange = async {
        let mut ch = rpc::open::<CannonStart>(&conn, &req, &limits).await?;
        let stream = |e: wire::WireError| RpcError::Stream(e.to_string());
        wire::write(ch.raw_mut().0, &ab).await.map_err(stream)?;
        wire::write(ch.raw_mut().0, &bb).await.map_err(stream)?;
        ch.raw_mut().0.finish()?;
        let done: StartDone = ch
            .recv_item()
            .await?
            .ok_or_else(|| RpcError::Protocol("no pulse report".into()))?;
        if (done.rows, done.cols) != (rows, cols) {
            return Err(RpcError::Protocol(format!(
                "C block {}x{}, expected {rows}x{cols}",
                done.rows, done.cols
            )));
        }
        let c = wire::read(ch.raw_mut().1, rows, cols)
            .await
            .map_err(stream)?;
        Ok((c, done))
    };
    tokio::time::timeout(super::worker::PULSE_TIMEOUT, exchange)
        .await
        .map_err(|_| "pulse timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// Freivalds' check of a worker's `C` block against its row block of `A` and column block of
/// `B` (off the async threads).
async fn verify(
    a: &Arc<Matrix>,
    b: &Arc<Matrix>,
    split: Split,
    pos: Pos,
    c: Matrix,
) -> Result<Matrix, String> {
    let (a, b) = (a.clone(), b.clone());
    tokio::task::spawn_blocking(move || {
        let (r0, rows, c0, cols) = split.c_block(pos);
        let ar = a.block(r0, rows, 0, split.k).map_err(|e| e.to_string())?;
        let bc = b.block(0, split.k, c0, cols).map_err(|e| e.to_string())?;
        match freivalds::check(&ar, &bc, &c, 1, rand::random::<u64>()) {
            Ok(None) => Ok(c),
            Ok(Some(rej)) => Err(format!(
                "rejected: row {} off by {:.3e} (bound {:.3e})",
                rej.row, rej.error, rej.bound
            )),
            Err(e) => Err(format!("rejected: {e}")),
        }
    })
    .await
    .map_err(|e| format!("verification task: {e}"))?
}
