//! A test client for the gateway over HTTP/1.1 and HTTP/2 (hyper over tokio-rustls) and HTTP/3
//! (h3 + h3-quinn over quinn), trusting only the mesh CA. One connection per request: simple,
//! and every request exercises the handshake and ALPN of its protocol.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
    H3,
}

pub const ALL: [Proto; 3] = [Proto::H1, Proto::H2, Proto::H3];

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// A client trusting `ca_pem`.
#[derive(Clone)]
pub struct Client {
    roots: Arc<rustls::RootCertStore>,
}

impl Client {
    pub fn new(ca_pem: &str) -> Result<Client> {
        let mut roots = rustls::RootCertStore::empty();
        let der = ca_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        let der = base64_decode(&der)?;
        roots.add(CertificateDer::from(der))?;
        Ok(Client {
            roots: Arc::new(roots),
        })
    }

    fn tls(&self, alpn: &[u8]) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        c.alpn_protocols = vec![alpn.to_vec()];
        c
    }

    /// One request.
    pub async fn request(
        &self,
        proto: Proto,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer> {
        let mut req = http::Request::builder().method(method);
        match proto {
            Proto::H1 => req = req.uri(path).header("host", addr.ip().to_string()),
            _ => req = req.uri(format!("https://{}{path}", addr.ip())),
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let fut = async {
            match proto {
                Proto::H1 | Proto::H2 => self.tcp(proto, addr, req, body).await,
                Proto::H3 => self.h3(addr, req, body).await,
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), fut)
            .await
            .context("request timed out")?
            .map_err(|e| anyhow::anyhow!("{proto:?} {method} {path} on {addr}: {e:?}"))
    }

    async fn tcp(
        &self,
        proto: Proto,
        addr: SocketAddr,
        req: http::request::Builder,
        body: Bytes,
    ) -> Result<Answer> {
        let alpn: &[u8] = if proto == Proto::H2 {
            b"h2"
        } else {
            b"http/1.1"
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.tls(alpn)));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let tls = connector
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .context("TLS handshake")?;
        let req = req.body(Full::new(body))?;
        let resp = if proto == Proto::H2 {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await?;
            tokio::spawn(conn);
            send.send_request(req).await?
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            send.send_request(req).await?
        };
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }

    async fn h3(
        &self,
        addr: SocketAddr,
        req: http::request::Builder,
        body: Bytes,
    ) -> Result<Answer> {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(self.tls(b"h3"))?;
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut endpoint = quinn::Endpoint::client("0.0.0.0:0".parse()?)?;
        endpoint.set_default_client_config(config);
        let conn = endpoint.connect(addr, &addr.ip().to_string())?.await?;
        let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
        let drive =
            tokio::spawn(async move { futures::future::poll_fn(|cx| driver.poll_close(cx)).await });
        let req = req.body(())?;
        let mut stream = send.send_request(req).await?;
        // Send the body in pieces, as a streaming client would.
        for piece in body.chunks(256 * 1024) {
            stream.send_data(Bytes::copy_from_slice(piece)).await?;
        }
        stream.finish().await?;
        let resp = stream.recv_response().await?;
        let mut out = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await? {
            while chunk.has_remaining() {
                let c = chunk.chunk();
                out.extend_from_slice(c);
                let n = c.len();
                chunk.advance(n);
            }
        }
        drop(stream);
        drop(send);
        drive.abort();
        endpoint.close(0u32.into(), b"done");
        let (parts, ()) = resp.into_parts();
        Ok(Answer {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            body: Bytes::from(out),
        })
    }
}

impl Client {
    /// Opens `path` (GET) and reads the streamed body until it contains `needle`; returns what
    /// was read. For endless bodies such as Server-Sent Events.
    pub async fn read_until(
        &self,
        proto: Proto,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        needle: &str,
    ) -> Result<(u16, String)> {
        let fut = async {
            let mut req = http::Request::builder().method("GET");
            req = match proto {
                Proto::H1 => req.uri(path).header("host", addr.ip().to_string()),
                _ => req.uri(format!("https://{}{path}", addr.ip())),
            };
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let mut seen = String::new();
            if proto == Proto::H3 {
                let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(self.tls(b"h3"))?;
                let mut endpoint = quinn::Endpoint::client("0.0.0.0:0".parse()?)?;
                endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
                let conn = endpoint.connect(addr, &addr.ip().to_string())?.await?;
                let (mut driver, mut send) =
                    h3::client::new(h3_quinn::Connection::new(conn)).await?;
                let drive = tokio::spawn(async move {
                    futures::future::poll_fn(|cx| driver.poll_close(cx)).await
                });
                let mut stream = send.send_request(req.body(())?).await?;
                stream.finish().await?;
                let status = stream.recv_response().await?.status().as_u16();
                while !seen.contains(needle) {
                    let Some(mut chunk) = stream.recv_data().await? else {
                        break;
                    };
                    let bytes = chunk.copy_to_bytes(chunk.remaining());
                    seen.push_str(&String::from_utf8_lossy(&bytes));
                }
                drive.abort();
                return Ok::<_, anyhow::Error>((status, seen));
            }
            let alpn: &[u8] = if proto == Proto::H2 {
                b"h2"
            } else {
                b"http/1.1"
            };
            let connector = tokio_rustls::TlsConnector::from(Arc::new(self.tls(alpn)));
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let tls = connector
                .connect(ServerName::IpAddress(addr.ip().into()), tcp)
                .await?;
            let req = req.body(Full::new(Bytes::new()))?;
            let resp = if proto == Proto::H2 {
                let (mut send, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await?;
                tokio::spawn(conn);
                send.send_request(req).await?
            } else {
                let (mut send, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
                tokio::spawn(conn);
                send.send_request(req).await?
            };
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            while !seen.contains(needle) {
                let Some(frame) = body.frame().await else {
                    break;
                };
                if let Ok(data) = frame?.into_data() {
                    seen.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Ok::<_, anyhow::Error>((status, seen))
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), fut)
            .await
            .context("stream timed out")?
            .with_context(|| format!("{proto:?} stream {path} on {addr}"))
    }
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    data_encoding::BASE64
        .decode(clean.as_bytes())
        .map_err(|e| anyhow::anyhow!("bad base64: {e}"))
}
