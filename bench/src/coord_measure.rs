//! The coordinator benchmark's three measurements, the same code for every [`KvSystem`]:
//! single-client write latency, write throughput at many concurrent clients, and leader
//! failover (kill -9 of the leader until a write through a survivor succeeds).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::coord_system::{KvSystem, Target, WriteRequest};

/// How long one write may take before the client gives up on it (and opens a new connection).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until the members agree on a leader, a write through every member succeeds and every
/// member has applied the same index; returns the leader.
pub async fn wait_healthy<S: KvSystem>(sys: &S, limit: Duration) -> Result<usize> {
    let deadline = Instant::now() + limit;
    let mut round = 0u64;
    loop {
        if Instant::now() > deadline {
            bail!("{}: no healthy cluster after {limit:?}", sys.name());
        }
        round += 1;
        if let Some(leader) = sys.leader().await? {
            let mut all = true;
            for m in 0..sys.members() {
                let req = sys.put_request(&format!("health-{round}-{m}"), "ok");
                all &= attempt(sys.target(m), req).await.is_some();
            }
            // Steady state: every member has applied the same index (a restarted member has
            // caught up), so a failover measures the election, not a catch-up.
            if all && settled(sys).await? {
                return Ok(leader);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the members agree on the applied index for a moment (checked a few times, since a
/// heartbeat may carry a commit index between two reads).
async fn settled<S: KvSystem>(sys: &S) -> Result<bool> {
    for _ in 0..20 {
        if sys.caught_up().await? {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(false)
}

/// One write on a fresh connection; the instant it was acknowledged, or None.
async fn attempt(target: Target, req: WriteRequest) -> Option<Instant> {
    let mut conn = timeout(ATTEMPT_TIMEOUT, target.connect())
        .await
        .ok()?
        .ok()?;
    let ok = timeout(ATTEMPT_TIMEOUT, req.send(&mut conn))
        .await
        .ok()?
        .ok()?;
    ok.then(Instant::now)
}

/// `n` sequential writes of `value` through the leader on one connection.
pub async fn write_latency<S: KvSystem>(
    sys: &S,
    leader: usize,
    n: usize,
    value: &str,
) -> Result<Vec<Duration>> {
    let mut conn = sys.target(leader).connect().await?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let req = sys.put_request(&format!("lat-{i}"), value);
        let t = Instant::now();
        let ok = req.send(&mut conn).await?;
        ensure!(ok, "{}: write {i} refused", sys.name());
        samples.push(t.elapsed());
    }
    Ok(samples)
}

/// Writes acknowledged by the leader while `clients` clients write as fast as they can.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub clients: usize,
    pub seconds: f64,
    pub writes: u64,
    pub errors: u64,
    pub writes_per_s: f64,
}

/// `clients` concurrent clients, each on its own connection to the leader, for `duration`.
pub async fn throughput<S: KvSystem>(
    sys: &S,
    leader: usize,
    clients: usize,
    duration: Duration,
    value: &str,
) -> Result<Throughput> {
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let end = start + duration;
    for c in 0..clients {
        let mut conn = sys.target(leader).connect().await?;
        let requests: Vec<WriteRequest> = (0..64)
            .map(|i| sys.put_request(&format!("tp-{c}-{i}"), value))
            .collect();
        tasks.spawn(async move {
            let (mut ok, mut err) = (0u64, 0u64);
            let mut i = 0usize;
            while Instant::now() < end {
                match requests[i % requests.len()].send(&mut conn).await {
                    Ok(true) => ok += 1,
                    Ok(false) => err += 1,
                    Err(_) => {
                        err += 1;
                        break;
                    }
                }
                i += 1;
            }
            (ok, err)
        });
    }
    let (mut writes, mut errors) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (ok, err) = done?;
        writes += ok;
        errors += err;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Throughput {
        clients,
        seconds,
        writes,
        errors,
        writes_per_s: writes as f64 / seconds,
    })
}

/// Kills the leader and measures until a write through a survivor is acknowledged: a new
/// write is started every 10 ms (each on its own connection, so one stuck behind the dead
/// leader never hides a later success); the first acknowledgement ends the failover. The
/// killed member is started again before returning.
pub async fn failover<S: KvSystem>(sys: &mut S, leader: usize, value: &str) -> Result<Duration> {
    let survivor = (leader + 1) % sys.members();
    let target = sys.target(survivor);
    sys.kill(leader)?;
    let t0 = Instant::now();
    let mut attempts = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut n = 0u64;
    let done = loop {
        tokio::select! {
            _ = tick.tick() => {
                if t0.elapsed() > Duration::from_secs(60) {
                    bail!("{}: no write succeeded within 60 s of killing the leader", sys.name());
                }
                let req = sys.put_request(&format!("failover-{n}"), value);
                attempts.spawn(attempt(target.clone(), req));
                n += 1;
            }
            Some(result) = attempts.join_next(), if !attempts.is_empty() => {
                if let Ok(Some(acked)) = result {
                    break acked;
                }
            }
        }
    };
    attempts.abort_all();
    sys.restart(leader)?;
    Ok(done.duration_since(t0))
}
