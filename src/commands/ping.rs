//! `hyphae ping ADDR`: prove that a member answers over mutual-TLS QUIC.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use hyphae_core::config::Config;
use hyphae_core::identity::{NodeId, NodeKey};
use hyphae_core::paths::NodePaths;
use hyphae_core::pki::Membership;
use hyphae_core::rpc::{self, Limits, Ping, PingRequest};
use hyphae_core::transport::{probe, MeshEndpoint, MeshTls, ServiceSpec, MESH_SERVER_NAME};

/// Options of `hyphae ping`.
#[derive(Debug, clap::Args)]
pub struct PingArgs {
    /// The member to ping: HOST or HOST:PORT (default port 7440, the node agent).
    addr: String,
    /// How many pings to send over the one connection.
    #[arg(short, long, default_value_t = 1)]
    count: u32,
    /// Insist that this node id answers (refuse any other member at that address).
    #[arg(long, value_name = "NODE_ID")]
    node: Option<NodeId>,
    /// Diagnostic: connect without presenting a certificate. A healthy member refuses this,
    /// and the command then fails.
    #[arg(long)]
    anonymous: bool,
    /// Give up on an unreachable or silent peer after this long (e.g. `2s`, `500ms`).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Print one JSON object per pong.
    #[arg(long)]
    json: bool,
}

/// Accepts `IP`, `IP:PORT`, `[V6]:PORT`, `HOST` or `HOST:PORT`.
async fn resolve(addr: &str, default_port: u16) -> anyhow::Result<SocketAddr> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let (host, port) = match addr.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(port) => (host, port),
            Err(_) => return Err(anyhow!("`{port}` in {addr} is not a port number")),
        },
        None => (addr, default_port),
    };
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to no address"))
}

/// Pings a member and reports the round trip.
pub fn run(paths: &NodePaths, config: &Config, args: &PingArgs) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    if let Some(t) = args.timeout {
        config.transport.request_timeout = t;
    }
    let config = &config;
    super::block_on(async {
        let service = ServiceSpec::NODE;
        let addr = resolve(&args.addr, config.ports.node).await?;
        if args.anonymous {
            return ping_anonymously(
                addr,
                service,
                args.timeout.unwrap_or(Duration::from_secs(10)),
            )
            .await;
        }
        let dir = paths.identity_dir();
        let key = Arc::new(NodeKey::load_or_create(&dir)?);
        let membership = Membership::load(&dir, key)?.ok_or_else(|| {
            anyhow!("this node is not a member of a mesh: it has no certificate to present (hyphae init, or enrol it)")
        })?;
        let tls = MeshTls::new(&membership)?;
        let endpoint = MeshEndpoint::client(&tls, service, &config.transport)?;
        let started = Instant::now();
        let conn = endpoint
            .connect(addr, args.node)
            .await
            .map_err(|e| anyhow!("refused or unreachable: {e}"))?;
        let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
        let limits = Limits::from(&config.transport);
        for nonce in 0..args.count {
            let t = Instant::now();
            let pong = rpc::call::<Ping>(
                &conn,
                &PingRequest {
                    nonce: nonce as u64,
                },
                &limits,
            )
            .await?;
            let rtt_ms = t.elapsed().as_secs_f64() * 1000.0;
            if pong.nonce != nonce as u64 {
                return Err(anyhow!(
                    "pong carried nonce {} for ping {nonce}",
                    pong.nonce
                ));
            }
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"node": pong.node.to_string(), "service": pong.service,
                        "version": pong.version, "addr": addr.to_string(), "rtt_ms": rtt_ms,
                        "connect_ms": connect_ms})
                );
            } else {
                println!(
                    "pong from {} ({} {}) at {addr}: {rtt_ms:.2} ms (handshake {connect_ms:.1} ms)",
                    pong.node, pong.service, pong.version
                );
            }
        }
        conn.conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        Ok(ExitCode::SUCCESS)
    })?
}

async fn ping_anonymously(
    addr: SocketAddr,
    service: ServiceSpec,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let endpoint = probe::anonymous_client(service.alpn)?;
    let connecting = endpoint.connect(addr, MESH_SERVER_NAME)?;
    let conn = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| anyhow!("no answer from {addr}"))?
        .map_err(|e| anyhow!("refused: {e}"))?;
    // TLS 1.3 finishes the client's side before the server has judged its (absent)
    // certificate, so the refusal arrives as the connection closing on the first request.
    let outcome = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        let req = rpc::Frame::request(
            <Ping as rpc::Method>::NAME,
            rpc::encode_body(&PingRequest { nonce: 0 })?,
        );
        send.write_all(&req.encode(1 << 20)?).await?;
        send.finish()?;
        let mut buf = [0u8; 1];
        recv.read_exact(&mut buf).await?;
        anyhow::Ok(())
    };
    match tokio::time::timeout(timeout, outcome).await {
        Ok(Ok(())) => {
            eprintln!("WARNING: {addr} answered a client without a certificate");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => Err(anyhow!("refused: {e}")),
        Err(_) => Err(anyhow!("refused: no answer within {timeout:?}")),
    }
}
