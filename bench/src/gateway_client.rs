//! One keep-alive HTTPS connection over HTTP/2 (hyper over tokio-rustls) or HTTP/3 (h3 +
//! h3-quinn over quinn), trusting one CA: the same client code drives our gateway and Caddy,
//! so neither side gets a better client than the other.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};

/// Which HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Proto {
    /// HTTP/2 over TLS over TCP.
    H2,
    /// HTTP/3 over QUIC.
    H3,
}

/// TLS settings shared by every connection of a run: the roots (the CA both servers' certificate
/// chains to), one client configuration per ALPN.
#[derive(Clone)]
pub struct Tls {
    h2: Arc<rustls::ClientConfig>,
    h3: quinn::ClientConfig,
}

impl Tls {
    /// Trusts exactly the PEM certificate `ca_pem`.
    pub fn trusting(ca_pem: &str) -> Result<Tls> {
        let mut roots = rustls::RootCertStore::empty();
        let der: String = ca_pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = data_encoding::BASE64
            .decode(der.trim().as_bytes())
            .map_err(|e| anyhow!("CA is not PEM: {e}"))?;
        roots.add(CertificateDer::from(der))?;
        let roots = Arc::new(roots);
        let config = |alpn: &[u8]| -> Result<rustls::ClientConfig> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut c = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(c)
        };
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(config(b"h3")?)?;
        Ok(Tls {
            h2: Arc::new(config(b"h2")?),
            h3: quinn::ClientConfig::new(Arc::new(quic)),
        })
    }
}

/// An open connection to one server.
pub enum Conn {
    /// HTTP/2: hyper's request handle (the connection task runs beside it).
    H2(SendRequest<Full<Bytes>>),
    /// HTTP/3: the request handle, its endpoint and the connection driver task.
    H3 {
        send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
        endpoint: quinn::Endpoint,
        driver: tokio::task::JoinHandle<()>,
    },
}

/// What a request got back: the status, how many body bytes arrived, and the body itself
/// when asked to keep it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub bytes: u64,
    pub body: Option<Vec<u8>>,
}

impl Conn {
    /// Connects to `addr` (TLS handshake, ALPN `h2` or `h3`; the server name is the address).
    pub async fn open(tls: &Tls, proto: Proto, addr: SocketAddr) -> Result<Conn> {
        match proto {
            Proto::H2 => {
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("connecting to {addr}"))?;
                tcp.set_nodelay(true)?;
                let stream = tokio_rustls::TlsConnector::from(tls.h2.clone())
                    .connect(ServerName::IpAddress(addr.ip().into()), tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {addr}"))?;
                let (send, conn) = hyper::client::conn::http2::handshake(
                    TokioExecutor::new(),
                    TokioIo::new(stream),
                )
                .await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(Conn::H2(send))
            }
            Proto::H3 => {
                let mut endpoint = quinn::Endpoint::client("0.0.0.0:0".parse()?)?;
                endpoint.set_default_client_config(tls.h3.clone());
                let conn = endpoint
                    .connect(addr, &addr.ip().to_string())?
                    .await
                    .with_context(|| format!("QUIC handshake with {addr}"))?;
                let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
                let driver = tokio::spawn(async move {
                    let _ = futures::future::poll_fn(|cx| driver.poll_close(cx)).await;
                });
                Ok(Conn::H3 {
                    send,
                    endpoint,
                    driver,
                })
            }
        }
    }

    /// One request; the body is read to its end and counted, and kept only when `keep`.
    pub async fn request(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        keep: bool,
    ) -> Result<Reply> {
        let mut kept = keep.then(Vec::new);
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match self {
            Conn::H2(send) => {
                send.ready().await.context("connection closed")?;
                let resp = send.send_request(req.body(Full::new(body))?).await?;
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                let mut bytes = 0u64;
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame?.into_data() {
                        bytes += data.len() as u64;
                        if let Some(k) = kept.as_mut() {
                            k.extend_from_slice(&data);
                        }
                    }
                }
                Ok(Reply {
                    status,
                    bytes,
                    body: kept,
                })
            }
            Conn::H3 { send, .. } => {
                let mut stream = send.send_request(req.body(())?).await?;
                for piece in body.chunks(256 * 1024) {
                    stream.send_data(Bytes::copy_from_slice(piece)).await?;
                }
                stream.finish().await?;
                let status = stream.recv_response().await?.status().as_u16();
                let mut bytes = 0u64;
                while let Some(mut chunk) = stream.recv_data().await? {
                    bytes += chunk.remaining() as u64;
                    if let Some(k) = kept.as_mut() {
                        k.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
                    } else {
                        chunk.advance(chunk.remaining());
                    }
                }
                Ok(Reply {
                    status,
                    bytes,
                    body: kept,
                })
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Conn::H3 {
            endpoint, driver, ..
        } = self
        {
            driver.abort();
            endpoint.close(0u32.into(), b"done");
        }
    }
}
