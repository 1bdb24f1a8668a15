//! The gateway benchmark's two measurements, the same for every server: requests/s and latency
//! of one small GET with N concurrent clients (one keep-alive connection each), and MiB/s of one
//! large download on one connection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use bytes::Bytes;
use serde::Serialize;

use crate::gateway_client::{Conn, Proto, Tls};
use crate::stats::{median, Latency};

/// One server and one resource on it.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    /// Sent with every request (our API token; Caddy ignores it, and gets it all the same).
    pub headers: Vec<(String, String)>,
}

impl Target {
    fn uri(&self) -> String {
        format!("https://{}{}", self.addr, self.path)
    }

    async fn get(&self, conn: &mut Conn) -> Result<u64> {
        let h: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let reply = conn
            .request("GET", &self.uri(), &h, Bytes::new(), false)
            .await?;
        ensure!(
            reply.status == 200,
            "GET {} answered {}",
            self.uri(),
            reply.status
        );
        Ok(reply.bytes)
    }
}

/// Requests/s and latency of a small GET.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    pub proto: Proto,
    pub path: String,
    pub clients: usize,
    pub seconds: f64,
    pub requests: usize,
    pub requests_per_s: f64,
    pub body_bytes: u64,
    pub latency: Latency,
}

/// `clients` connections, each sending the GET back to back for `seconds` (after 20 unmeasured
/// requests each, so handshakes and first-use costs are not counted).
pub async fn rate(
    tls: &Tls,
    proto: Proto,
    target: &Target,
    clients: usize,
    seconds: f64,
) -> Result<Rate> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Conn::open(tls, proto, target.addr).await?);
    }
    let mut body_bytes = 0;
    for conn in &mut conns {
        for _ in 0..20 {
            body_bytes = target.get(conn).await?;
        }
    }
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let target = target.clone();
        tasks.spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                target.get(&mut conn).await?;
                samples.push(t.elapsed());
            }
            anyhow::Ok(samples)
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = tasks.join_next().await {
        samples.extend(done??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Rate {
        proto,
        path: target.path.clone(),
        clients,
        seconds: elapsed,
        requests: samples.len(),
        requests_per_s: samples.len() as f64 / elapsed,
        body_bytes,
        latency: Latency::of(&mut samples),
    })
}

/// MiB/s of one large GET.
#[derive(Debug, Clone, Serialize)]
pub struct Download {
    pub proto: Proto,
    pub path: String,
    pub bytes: u64,
    pub runs_mib_per_s: Vec<f64>,
    pub mib_per_s: f64,
}

/// `runs` downloads of the whole resource on one connection (opened before the first);
/// the median rate.
pub async fn download(
    tls: &Tls,
    proto: Proto,
    target: &Target,
    expect: u64,
    runs: usize,
) -> Result<Download> {
    let mut conn = Conn::open(tls, proto, target.addr).await?;
    let mut rates = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let got = target.get(&mut conn).await?;
        let secs = t.elapsed().as_secs_f64();
        ensure!(
            got == expect,
            "{} gave {got} bytes, not {expect}",
            target.uri()
        );
        rates.push(got as f64 / (1024.0 * 1024.0) / secs);
    }
    let runs_mib_per_s = rates.clone();
    Ok(Download {
        proto,
        path: target.path.clone(),
        bytes: expect,
        runs_mib_per_s,
        mib_per_s: median(&mut rates),
    })
}
