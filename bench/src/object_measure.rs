//! The object PUT/GET measurement shared by both sides of `hyphae-bench garage`: one client,
//! one keep-alive HTTP/1.1 connection, distinct incompressible objects (nothing dedups), every
//! object put then read back and compared.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Serialize;

use crate::http_conn::HttpConn;

/// Where objects go: Garage's S3 API (presigned SigV4 URLs) or a node's chunkstore socket.
pub enum ObjectTarget {
    /// Garage over TCP.
    S3 {
        /// Node address.
        addr: std::net::SocketAddr,
        /// The bucket, for signing.
        bucket: Box<rusty_s3::Bucket>,
        /// The access key.
        credentials: rusty_s3::Credentials,
    },
    /// Our chunkstore's local API (contract A), as the CLI and the gateway use it.
    Hyphae {
        /// `<run>/chunkstore.sock`.
        socket: std::path::PathBuf,
    },
}

impl ObjectTarget {
    async fn connect(&self) -> Result<HttpConn> {
        match self {
            ObjectTarget::S3 { addr, .. } => HttpConn::tcp(*addr).await,
            ObjectTarget::Hyphae { socket } => HttpConn::unix(socket).await,
        }
    }

    /// (uri, host) of a request for `key`.
    fn request(&self, method: &Method, key: &str) -> Result<(String, String)> {
        use rusty_s3::S3Action;
        match self {
            ObjectTarget::S3 {
                addr,
                bucket,
                credentials,
            } => {
                let ttl = Duration::from_secs(3600);
                let url = if *method == Method::PUT {
                    bucket.put_object(Some(credentials), key).sign(ttl)
                } else {
                    bucket.get_object(Some(credentials), key).sign(ttl)
                };
                let uri = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_string(),
                };
                Ok((uri, addr.to_string()))
            }
            ObjectTarget::Hyphae { .. } => Ok((format!("/files/{key}"), "bench".to_string())),
        }
    }
}

/// PUT and GET throughput for one object size.
#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    /// Object size in bytes.
    pub object_bytes: usize,
    /// Objects put and read.
    pub objects: usize,
    /// Payload MiB/s of the sequential PUTs.
    pub put_mib_s: f64,
    /// Payload MiB/s of the sequential GETs.
    pub get_mib_s: f64,
}

/// Distinct incompressible bytes (xorshift), `seed` picking the stream.
pub fn object_bytes(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// Puts `objects` objects of `size` bytes under `prefix`, then reads each back (checked).
pub async fn measure(
    target: &ObjectTarget,
    prefix: &str,
    size: usize,
    objects: usize,
    seed: u64,
) -> Result<SizeResult> {
    let data: Vec<Bytes> = (0..objects)
        .map(|i| object_bytes(size, seed + i as u64))
        .collect();
    let mut conn = target.connect().await?;
    let start = Instant::now();
    for (i, body) in data.iter().enumerate() {
        let key = format!("{prefix}/obj-{size}-{i}");
        let (uri, host) = target.request(&Method::PUT, &key)?;
        let (status, resp) = conn
            .send_bytes(Method::PUT, &uri, &host, body.clone())
            .await?;
        if !status.is_success() {
            bail!("PUT {key}: {status} {}", String::from_utf8_lossy(&resp));
        }
    }
    let put_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for (i, body) in data.iter().enumerate() {
        let key = format!("{prefix}/obj-{size}-{i}");
        let (uri, host) = target.request(&Method::GET, &key)?;
        let (status, resp) = conn
            .send_bytes(Method::GET, &uri, &host, Bytes::new())
            .await?;
        if status != StatusCode::OK {
            bail!("GET {key}: {status} {}", String::from_utf8_lossy(&resp));
        }
        if resp != *body {
            bail!("GET {key}: {} bytes differ from what was put", resp.len());
        }
    }
    let get_s = start.elapsed().as_secs_f64();
    let mib = (size * objects) as f64 / (1u64 << 20) as f64;
    Ok(SizeResult {
        object_bytes: size,
        objects,
        put_mib_s: mib / put_s,
        get_mib_s: mib / get_s,
    })
}

/// Puts one small object until it succeeds (a fresh cluster answers errors for a moment).
pub async fn wait_writable(target: &ObjectTarget, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = async {
            let mut conn = target.connect().await?;
            let (uri, host) = target.request(&Method::PUT, "warmup/probe")?;
            let (status, resp) = conn
                .send_bytes(Method::PUT, &uri, &host, Bytes::from_static(b"probe"))
                .await?;
            if status.is_success() {
                Ok(())
            } else {
                bail!("{status} {}", String::from_utf8_lossy(&resp))
            }
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => bail!("never writable: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
