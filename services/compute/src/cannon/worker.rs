//! The QUIC edge of Cannon's pulse on a worker: the `compute.cannon.*` handlers and the driver
//! that runs a [`Pulse`] with real blocks (multiplies on the tile backend, sends blocks to the
//! neighbours, fetches late ones from the origin on the step deadline).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use hyphae_core::rpc::{self, ErrorCode, Limits, Router, RpcError, RpcFault};
use hyphae_core::transport::{MeshEndpoint, PeerConnection};
use hyphae_core::NodeId;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::grid::{Grid, Kind};
use super::inboxes::{Delivery, Inboxes};
use super::local::accumulate;
use super::methods::{
    BlockHeader, CannonFetch, CannonShift, CannonStart, FetchRequest, PeerAddr, ShiftAck,
    ShiftRequest, StartDone, StartRequest,
};
use super::origin::Origins;
use super::pulse::{Action, Pulse};
use super::wire;
use crate::service::backends::Backends;
use crate::Matrix;

/// The longest a whole pulse may run (the job node's wait for a worker's `C` block).
pub const PULSE_TIMEOUT: Duration = Duration::from_secs(1800);
/// Origin fetches that may fail in a row before a worker gives its pulse up.
const MAX_FETCH_FAILURES: u32 = 4;
/// The largest grid side accepted (a 16×16 grid is 256 workers).
pub const MAX_Q: usize = 16;

/// Everything the Cannon handlers and drivers of one compute service share.
#[derive(Clone)]
pub struct CannonEdge {
    /// This node.
    pub node: NodeId,
    /// The compute endpoint (client side of shifts and fetches).
    pub endpoint: MeshEndpoint,
    /// RPC limits.
    pub limits: Limits,
    /// The tile backend.
    pub backends: Arc<Backends>,
    /// Blocks waiting for this node's pulses.
    pub inboxes: Inboxes,
    /// Inputs of the Cannon jobs this node runs.
    pub origins: Origins,
    /// This node's compute port (its address as an origin).
    pub port: u16,
    /// TEST ONLY (`[compute] test_cannon_delay`): hold every block this worker passes on (to
    /// its neighbours, and its `C` block back to the job) this long.
    pub delay: Duration,
    /// TEST ONLY (`[compute] test_corrupt_results`): add 1 to the first row of the `C` block
    /// this worker returns, as its tiles, so a lying Cannon worker can be shown caught.
    pub corrupt: bool,
    conns: Arc<tokio::sync::Mutex<HashMap<String, PeerConnection>>>,
}

impl CannonEdge {
    /// The edge of a compute service.
    pub fn new(
        node: NodeId,
        endpoint: MeshEndpoint,
        limits: Limits,
        backends: Arc<Backends>,
        port: u16,
        delay: Duration,
        corrupt: bool,
    ) -> CannonEdge {
        CannonEdge {
            node,
            endpoint,
            limits,
            backends,
            inboxes: Inboxes::default(),
            origins: Origins::default(),
            port,
            delay,
            corrupt,
            conns: Arc::default(),
        }
    }

    /// Limits for calls that move whole blocks: generous per-call and per-frame waits.
    pub fn bulk_limits(&self) -> Limits {
        let mut l = self.limits;
        l.request_timeout = l.request_timeout.max(Duration::from_secs(300));
        l.frame_timeout = PULSE_TIMEOUT;
        l
    }

    /// A connection to `peer`, reused while it is open.
    pub async fn connect(&self, peer: &PeerAddr) -> Result<PeerConnection, String> {
        {
            let conns = self.conns.lock().await;
            if let Some(c) = conns
                .get(&peer.node)
                .filter(|c| c.conn.close_reason().is_none())
            {
                return Ok(c.clone());
            }
        }
        let node: NodeId = peer
            .node
            .parse()
            .map_err(|e| format!("node id {}: {e}", peer.node))?;
        let c = self
            .endpoint
            .connect(peer.addr, Some(node))
            .await
            .map_err(|e| format!("connecting to {}: {e}", peer.addr))?;
        self.conns.lock().await.insert(peer.node.clone(), c.clone());
        Ok(c)
    }

    /// This node as an origin, at `ip`.
    pub fn origin_at(&self, ip: std::net::IpAddr) -> PeerAddr {
        PeerAddr {
            node: self.node.to_string(),
            addr: SocketAddr::new(ip, self.port),
        }
    }
}

fn fault(code: ErrorCode) -> impl Fn(String) -> RpcFault {
    move |m| RpcFault::new(code, m)
}

fn stream(e: impl std::fmt::Display) -> RpcFault {
    RpcFault::new(ErrorCode::BadRequest, format!("stream: {e}"))
}

/// Adds the `compute.cannon.*` handlers to the compute router.
pub fn routes(router: Router, edge: CannonEdge) -> Router {
    let (start_edge, shift_edge, fetch_edge) = (edge.clone(), edge.clone(), edge);
    router
        .streaming::<CannonStart, _>(move |peer, req, ch| {
            let edge = start_edge.clone();
            let span = tracing::info_span!("cannon", job = %req.job, row = req.pos.row, col = req.pos.col, from = %peer.node);
            async move {
                let (a_shape, b_shape) = check_start(&req).map_err(fault(ErrorCode::BadRequest))?;
                let a = wire::read(ch.raw_mut().1, a_shape.0, a_shape.1)
                    .await
                    .map_err(stream)?;
                let b = wire::read(ch.raw_mut().1, b_shape.0, b_shape.1)
                    .await
                    .map_err(stream)?;
                let outcome = run_pulse(&edge, &req, a, b).await;
                edge.inboxes.finish(&req.job, req.pos);
                let (mut c, done) = outcome.map_err(fault(ErrorCode::Internal))?;
                if edge.corrupt {
                    let cols = c.cols();
                    for x in c.data_mut().iter_mut().take(cols) {
                        *x += 1.0;
                    }
                    tracing::warn!("test_corrupt_results: returning a corrupted C block");
                }
                if !edge.delay.is_zero() {
                    tracing::warn!(delay = ?edge.delay, "test_cannon_delay: holding the C block back");
                    tokio::time::sleep(edge.delay).await;
                }
                ch.send_item(&done).await.map_err(stream)?;
                wire::write(ch.raw_mut().0, &c).await.map_err(stream)?;
                ch.raw_mut().0.finish().map_err(stream)?;
                Ok(())
            }
            .instrument(span)
            .boxed()
        })
        .streaming::<CannonShift, _>(move |_peer, req, ch| {
            let edge = shift_edge.clone();
            async move {
                if req.to.row >= MAX_Q || req.to.col >= MAX_Q || req.step >= MAX_Q {
                    return Err(RpcFault::new(ErrorCode::BadRequest, "position or step outside any grid"));
                }
                let block = wire::read(ch.raw_mut().1, req.rows, req.cols)
                    .await
                    .map_err(stream)?;
                let used = edge.inboxes.deliver(
                    &req.job,
                    req.to,
                    Delivery {
                        kind: req.kind,
                        step: req.step,
                        block: Arc::new(block),
                    },
                );
                ch.send_item(&ShiftAck { used }).await.map_err(stream)?;
                ch.end().await.map_err(stream)?;
                Ok(())
            }
            .boxed()
        })
        .streaming::<CannonFetch, _>(move |peer, req, ch| {
            let edge = fetch_edge.clone();
            async move {
                let block = edge
                    .origins
                    .block(&req.job, req.kind, req.block_row, req.block_col)
                    .map_err(|e| RpcFault::new(ErrorCode::NotFound, e.to_string()))?;
                tracing::info!(job = %req.job, kind = ?req.kind, row = req.block_row, col = req.block_col, from = %peer.node, "serving a late block from the origin");
                ch.send_item(&BlockHeader {
                    rows: block.rows(),
                    cols: block.cols(),
                })
                .await
                .map_err(stream)?;
                wire::write(ch.raw_mut().0, &block).await.map_err(stream)?;
                ch.raw_mut().0.finish().map_err(stream)?;
                Ok(())
            }
            .boxed()
        })
}

type Shape = (usize, usize);

/// Checks a start request and returns the shapes of the skewed `A` and `B` blocks.
fn check_start(req: &StartRequest) -> Result<(Shape, Shape), String> {
    let q = req.split.q;
    if q == 0 || q > MAX_Q {
        return Err(format!("grid side {q} outside 1..={MAX_Q}"));
    }
    if req.workers.len() != q * q {
        return Err(format!("{} workers for a {q}x{q} grid", req.workers.len()));
    }
    if req.pos.row >= q || req.pos.col >= q {
        return Err(format!("position {:?} outside the grid", req.pos));
    }
    crate::matrix::checked_len(req.split.m, req.split.k).map_err(|e| e.to_string())?;
    crate::matrix::checked_len(req.split.k, req.split.n).map_err(|e| e.to_string())?;
    let grid = Grid::new(q);
    let shape = |kind| {
        let (bi, bj) = grid.block(kind, req.pos, 0);
        let (_, rows, _, cols) = req.split.block(kind, bi, bj);
        (rows, cols)
    };
    Ok((shape(Kind::A), shape(Kind::B)))
}

/// Sends one block to a neighbour (after the test delay, if any).
async fn send_shift(
    edge: CannonEdge,
    to: PeerAddr,
    req: ShiftRequest,
    block: Arc<Matrix>,
) -> Result<bool, String> {
    if !edge.delay.is_zero() {
        tracing::warn!(delay = ?edge.delay, "test_cannon_delay: holding a block back");
        tokio::time::sleep(edge.delay).await;
    }
    let conn = edge.connect(&to).await?;
    let limits = edge.bulk_limits();
    let exchange = async {
        let mut ch = rpc::open::<CannonShift>(&conn, &req, &limits).await?;
        wire::write(ch.raw_mut().0, &block)
            .await
            .map_err(|e| RpcError::Stream(e.to_string()))?;
        ch.raw_mut().0.finish()?;
        ch.recv_item::<ShiftAck>()
            .await?
            .ok_or_else(|| RpcError::Protocol("no acknowledgement".into()))
    };
    let ack = tokio::time::timeout(limits.request_timeout, exchange)
        .await
        .map_err(|_| "shift timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(ack.used)
}

/// Fetches one block from the origin.
async fn fetch_block(
    edge: CannonEdge,
    origin: PeerAddr,
    req: FetchRequest,
) -> Result<Matrix, String> {
    let conn = edge.connect(&origin).await?;
    let limits = edge.bulk_limits();
    let exchange = async {
        let mut ch = rpc::open::<CannonFetch>(&conn, &req, &limits).await?;
        ch.raw_mut().0.finish()?;
        let header: BlockHeader = ch
            .recv_item()
            .await?
            .ok_or_else(|| RpcError::Protocol("no block header".into()))?;
        wire::read(ch.raw_mut().1, header.rows, header.cols)
            .await
            .map_err(|e| RpcError::Stream(e.to_string()))
    };
    tokio::time::timeout(limits.request_timeout, exchange)
        .await
        .map_err(|_| "fetch timed out".to_string())?
        .map_err(|e| e.to_string())
}

type Product = Result<(usize, Matrix, Duration, String), String>;
type Fetched = (Kind, usize, Result<Matrix, String>);

/// Runs this worker's pulse: returns its `C` block and the report.
async fn run_pulse(
    edge: &CannonEdge,
    req: &StartRequest,
    a: Matrix,
    b: Matrix,
) -> Result<(Matrix, StartDone), String> {
    let started = Instant::now();
    let grid = Grid::new(req.split.q);
    let step_timeout = Duration::from_millis(req.step_timeout_ms.max(100));
    let mut inbox = edge
        .inboxes
        .claim(&req.job, req.pos)
        .ok_or_else(|| format!("pulse {:?} of job {} already running", req.pos, req.job))?;
    let (_, rows, _, cols) = req.split.c_block(req.pos);
    let mut c = Matrix::zeros(rows, cols).map_err(|e| e.to_string())?;
    let mut pulse: Pulse<Arc<Matrix>> = Pulse::new(grid, req.pos);
    let mut actions = pulse
        .start(Arc::new(a), Arc::new(b))
        .map_err(|e| e.to_string())?;
    let (product_tx, mut product_rx) = mpsc::unbounded_channel::<Product>();
    let (fetch_tx, mut fetch_rx) = mpsc::unbounded_channel::<Fetched>();
    let mut in_flight: HashSet<(Kind, usize)> = HashSet::new();
    let mut fetch_failures = 0u32;
    let mut compute = Duration::ZERO;
    let mut backend = String::new();
    let mut deadline: Option<(usize, tokio::time::Instant)> = None;
    loop {
        for action in actions.drain(..) {
            match action {
                Action::Multiply { step, a, b } => {
                    let backends = edge.backends.clone();
                    let tx = product_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let t = Instant::now();
                        let r = backends
                            .gemm(&a, &b)
                            .map(|(m, name)| (step, m, t.elapsed(), name))
                            .map_err(|e| e.to_string());
                        let _ = tx.send(r);
                    });
                }
                Action::Send {
                    kind,
                    to,
                    step,
                    block,
                } => {
                    let Some(peer) = req.workers.get(to.row * grid.q + to.col).cloned() else {
                        continue;
                    };
                    let shift = ShiftRequest {
                        job: req.job.clone(),
                        to,
                        kind,
                        step,
                        rows: block.rows(),
                        cols: block.cols(),
                    };
                    let edge = edge.clone();
                    tokio::spawn(async move {
                        if let Err(e) = send_shift(edge, peer.clone(), shift, block).await {
                            tracing::info!(to = %peer.node, ?kind, step, error = %e, "passing a block on failed; the neighbour will fetch it from the origin");
                        }
                    });
                }
                Action::Fetch { kind, step, block } => {
                    if !in_flight.insert((kind, step)) {
                        continue;
                    }
                    tracing::info!(
                        ?kind,
                        step,
                        ?block,
                        "neighbour late: fetching the block from the origin"
                    );
                    let fetch = FetchRequest {
                        job: req.job.clone(),
                        kind,
                        block_row: block.0,
                        block_col: block.1,
                    };
                    let (edge, origin, tx) = (edge.clone(), req.origin.clone(), fetch_tx.clone());
                    tokio::spawn(async move {
                        let r = fetch_block(edge, origin, fetch).await;
                        let _ = tx.send((kind, step, r));
                    });
                }
                Action::Finished => {
                    let done = StartDone {
                        rows,
                        cols,
                        fetched: pulse.fetched(),
                        compute_micros: compute.as_micros() as u64,
                        pulse_micros: started.elapsed().as_micros() as u64,
                        backend,
                    };
                    return Ok((c, done));
                }
            }
        }
        match (pulse.waiting_for(), deadline) {
            (Some(s), Some((d, _))) if d == s => {}
            (Some(s), _) => deadline = Some((s, tokio::time::Instant::now() + step_timeout)),
            (None, _) => deadline = None,
        }
        let sleep_until = deadline.map(|(_, at)| at);
        tokio::select! {
            Some(r) = product_rx.recv() => {
                let (step, prod, took, name) = r?;
                compute += took;
                backend = name;
                accumulate(&mut c, &prod).map_err(|e| e.to_string())?;
                actions = pulse.on_multiplied(step).map_err(|e| e.to_string())?;
            }
            Some(d) = inbox.recv() => {
                actions = pulse.on_block(d.kind, d.step, d.block).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "a neighbour's block refused");
                    Vec::new()
                });
            }
            Some((kind, step, r)) = fetch_rx.recv() => {
                in_flight.remove(&(kind, step));
                match r {
                    Ok(block) => {
                        fetch_failures = 0;
                        actions = pulse.on_block(kind, step, Arc::new(block)).map_err(|e| e.to_string())?;
                    }
                    Err(e) => {
                        fetch_failures += 1;
                        tracing::warn!(error = %e, "fetching a block from the origin failed");
                        if fetch_failures >= MAX_FETCH_FAILURES {
                            return Err(format!("the origin is unreachable: {e}"));
                        }
                    }
                }
            }
            _ = async { if let Some(at) = sleep_until { tokio::time::sleep_until(at).await } else { std::future::pending::<()>().await } } => {
                actions = pulse.on_timeout();
                deadline = pulse.waiting_for().map(|s| (s, tokio::time::Instant::now() + step_timeout));
            }
        }
    }
}
