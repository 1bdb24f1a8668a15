//! The baseline of the RPC benchmark: TLS 1.3 over TCP (tokio-rustls), with the same mesh
//! certificates and verifiers as the QUIC side, and the simplest protocol that does the same
//! work: 16-byte ping-pong on one connection, and length-prefixed bulk bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hyphae_core::pki::Membership;
use hyphae_core::transport::{MeshTls, MESH_SERVER_NAME};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const ALPN: &[u8] = b"hyphae-bench-tcp/1";
const PING: u8 = b'p';
const BULK: u8 = b'b';

/// Serves pings and bulk sinks until the process is killed.
pub async fn serve(membership: &Membership, port: u16) -> Result<()> {
    let tls = MeshTls::new(membership)?;
    let acceptor = TlsAcceptor::from(Arc::new(tls.server_config(ALPN)?));
    let listener = TcpListener::bind(("0.0.0.0", port)).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_one(acceptor, tcp).await {
                eprintln!("tcp bench connection: {e:#}");
            }
        });
    }
}

async fn serve_one(acceptor: TlsAcceptor, tcp: TcpStream) -> Result<()> {
    let mut s = acceptor.accept(tcp).await?;
    let op = s.read_u8().await?;
    match op {
        PING => {
            let mut buf = [0u8; 16];
            loop {
                match s.read_exact(&mut buf).await {
                    Ok(_) => s.write_all(&buf).await?,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
                s.flush().await?;
            }
        }
        BULK => {
            let expected = s.read_u64().await?;
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            while total < expected {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    return Err(anyhow!("bulk stream ended early"));
                }
                total += n as u64;
            }
            s.write_u64(total).await?;
            s.flush().await?;
            Ok(())
        }
        other => Err(anyhow!("unknown op {other}")),
    }
}

type Client = tokio_rustls::client::TlsStream<TcpStream>;

/// Opens a TLS connection for one operation, retrying while the server starts.
async fn connect(membership: &Membership, server: SocketAddr, op: u8) -> Result<Client> {
    let tls = MeshTls::new(membership)?;
    let connector = TlsConnector::from(Arc::new(tls.client_config(ALPN)?));
    let deadline = Instant::now() + Duration::from_secs(10);
    let tcp = loop {
        match TcpStream::connect(server).await {
            Ok(t) => break t,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e).context("connecting to the TCP bench server"),
        }
    };
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from(MESH_SERVER_NAME)?;
    let mut s = connector.connect(name, tcp).await?;
    s.write_u8(op).await?;
    Ok(s)
}

/// Round trips of 16 bytes on one connection.
pub async fn ping_latencies(
    membership: &Membership,
    server: SocketAddr,
    n: usize,
) -> Result<Vec<Duration>> {
    let mut s = connect(membership, server, PING).await?;
    let mut buf = [7u8; 16];
    for _ in 0..200 {
        s.write_all(&buf).await?;
        s.flush().await?;
        s.read_exact(&mut buf).await?;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        buf[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let t = Instant::now();
        s.write_all(&buf).await?;
        s.flush().await?;
        s.read_exact(&mut buf).await?;
        out.push(t.elapsed());
    }
    Ok(out)
}

/// Sends `mib` MiB on one connection; returns MiB/s as the receiver acknowledged it.
pub async fn bulk(membership: &Membership, server: SocketAddr, mib: u64) -> Result<f64> {
    let chunk = vec![0xa5u8; 1 << 20];
    let mut s = connect(membership, server, BULK).await?;
    let start = Instant::now();
    s.write_u64(mib << 20).await?;
    for _ in 0..mib {
        s.write_all(&chunk).await?;
    }
    s.flush().await?;
    let got = s.read_u64().await?;
    let secs = start.elapsed().as_secs_f64();
    if got != mib << 20 {
        return Err(anyhow!("server received {got} bytes, sent {}", mib << 20));
    }
    Ok(mib as f64 / secs)
}
