//! The QUIC side of the RPC benchmark: our mutual-TLS transport and RPC envelope.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use hyphae_core::config::TransportSection;
use hyphae_core::pki::Membership;
use hyphae_core::rpc::{
    self, ErrorCode, Limits, Method, Ping, PingRequest, Router, RpcFault, RpcMetrics,
};
use hyphae_core::transport::{MeshEndpoint, MeshTls, PeerConnection, ServiceSpec};
use tokio_util::sync::CancellationToken;

/// The benchmark's own service, so it never collides with a running node.
pub const BENCH: ServiceSpec = ServiceSpec {
    name: "bench",
    alpn: b"hyphae-bench/1",
    default_port: 7460,
};

/// Receives `Request` bytes raw after the request frame and answers how many arrived.
pub struct Sink;
impl Method for Sink {
    const NAME: &'static str = "bench.sink";
    type Request = u64;
    type Response = u64;
}

fn internal(e: impl std::fmt::Display) -> RpcFault {
    RpcFault::new(ErrorCode::Internal, e.to_string())
}

/// Serves ping and sink until the process is killed.
pub async fn serve(membership: &Membership, port: u16) -> Result<()> {
    let tls = MeshTls::new(membership)?;
    let addr: SocketAddr = ([0, 0, 0, 0], port).into();
    let endpoint = MeshEndpoint::server(addr, &tls, BENCH, &TransportSection::default())?;
    let router =
        Router::new(BENCH, membership.node_id()).streaming::<Sink, _>(|_peer, _expected, ch| {
            Box::pin(async move {
                let mut total = 0u64;
                {
                    let (_, recv) = ch.raw_mut();
                    while let Some(chunk) =
                        recv.read_chunk(4 << 20, true).await.map_err(internal)?
                    {
                        total += chunk.bytes.len() as u64;
                    }
                }
                ch.send_item(&total).await.map_err(internal)?;
                ch.end().await.map_err(internal)
            })
        });
    let shutdown = CancellationToken::new();
    rpc::serve(
        endpoint,
        Arc::new(router),
        Limits::default(),
        RpcMetrics::default(),
        shutdown,
    )
    .await;
    Ok(())
}

/// Connects, retrying while the server starts.
pub async fn connect(
    membership: &Membership,
    server: SocketAddr,
) -> Result<(MeshEndpoint, PeerConnection)> {
    let tls = MeshTls::new(membership)?;
    let endpoint = MeshEndpoint::client(&tls, BENCH, &TransportSection::default())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match endpoint.connect(server, None).await {
            Ok(conn) => return Ok((endpoint, conn)),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context("connecting to the QUIC bench server"),
        }
    }
}

/// Round trips of `core.ping`, one stream per call, as every RPC does.
pub async fn ping_latencies(conn: &PeerConnection, n: usize) -> Result<Vec<Duration>> {
    let limits = Limits::default();
    for i in 0..200 {
        rpc::call::<Ping>(conn, &PingRequest { nonce: i }, &limits).await?;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let pong = rpc::call::<Ping>(conn, &PingRequest { nonce: i as u64 }, &limits).await?;
        out.push(t.elapsed());
        if pong.nonce != i as u64 {
            return Err(anyhow!("pong out of order"));
        }
    }
    Ok(out)
}

/// Sends `mib` MiB on one stream; returns MiB/s as the receiver acknowledged it.
pub async fn bulk(conn: &PeerConnection, mib: u64) -> Result<f64> {
    let chunk = Bytes::from(vec![0xa5u8; 1 << 20]);
    let limits = Limits::default();
    let start = Instant::now();
    let mut ch = rpc::open::<Sink>(conn, &(mib << 20), &limits).await?;
    {
        let (send, _) = ch.raw_mut();
        for _ in 0..mib {
            send.write_chunk(chunk.clone()).await?;
        }
        send.finish()?;
    }
    let got: u64 = ch
        .recv_item()
        .await?
        .ok_or_else(|| anyhow!("sink ended without a count"))?;
    let secs = start.elapsed().as_secs_f64();
    if got != mib << 20 {
        return Err(anyhow!("sink received {got} bytes, sent {}", mib << 20));
    }
    Ok(mib as f64 / secs)
}
