//! One keep-alive HTTP/1.1 connection (hyper) over a Unix or TCP socket: the same client code
//! drives our coordinator's local API and etcd's JSON gateway, so neither side gets a better
//! client than the other.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// An open HTTP/1.1 connection.
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
}

impl HttpConn {
    /// Connects to a Unix socket.
    pub async fn unix(path: &Path) -> Result<HttpConn> {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .with_context(|| format!("connecting to {}", path.display()))?;
        HttpConn::over(stream).await
    }

    /// Connects over TCP (Nagle off, as every HTTP client does).
    pub async fn tcp(addr: SocketAddr) -> Result<HttpConn> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        HttpConn::over(stream).await
    }

    async fn over<S>(stream: S) -> Result<HttpConn>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpConn { sender })
    }

    /// Sends one request with a JSON body and returns the status and the whole response body.
    pub async fn send(
        &mut self,
        method: Method,
        uri: &str,
        json: &[u8],
    ) -> Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, "bench")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::copy_from_slice(json)))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends one request with a raw body and an explicit `Host` (a signed S3 URL is signed for
    /// its host) and returns the status and the whole response body.
    pub async fn send_bytes(
        &mut self,
        method: Method,
        uri: &str,
        host: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_LENGTH, body.len())
            .body(Full::new(body))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
