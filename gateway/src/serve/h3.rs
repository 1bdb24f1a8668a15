//! HTTP/3 over QUIC (quinn + h3 + h3-quinn): the same router, request bodies streamed in from
//! the QUIC stream and response bodies streamed out frame by frame.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use bytes::{Buf, Bytes};
use h3::server::RequestResolver;
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::api::login::ClientAddr;

/// Why the HTTP/3 endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum H3Error {
    /// TLS configuration unusable for QUIC.
    #[error("QUIC TLS configuration: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("binding udp/{0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Binds the QUIC endpoint (IPv6 wildcard falling back to IPv4).
pub fn bind(addr: SocketAddr, tls: rustls::ServerConfig) -> Result<quinn::Endpoint, H3Error> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| H3Error::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(256u32.into());
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(std::time::Duration::from_secs(30))
            .map_err(|e| H3Error::Tls(e.to_string()))?,
    ));
    // Bulk downloads: let a stream and the connection have several MiB in flight.
    transport.stream_receive_window((8u32 * 1024 * 1024).into());
    transport.receive_window((16u32 * 1024 * 1024).into());
    transport.send_window(16 * 1024 * 1024);
    config.transport_config(Arc::new(transport));
    match quinn::Endpoint::server(config.clone(), addr) {
        Ok(e) => Ok(e),
        Err(e) => match super::fallback_v4(addr) {
            Some(v4) => quinn::Endpoint::server(config, v4).map_err(|e| H3Error::Bind(v4, e)),
            None => Err(H3Error::Bind(addr, e)),
        },
    }
}

/// Serves `router` on `endpoint` until `shutdown`.
pub async fn serve(endpoint: quinn::Endpoint, router: axum::Router, shutdown: CancellationToken) {
    loop {
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => break,
            i = endpoint.accept() => match i { Some(i) => i, None => break },
        };
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "QUIC handshake failed");
                    return;
                }
            };
            let peer = conn.remote_address();
            let mut h3 = match h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(
                conn,
            ))
            .await
            {
                Ok(h) => h,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "HTTP/3 setup failed");
                    return;
                }
            };
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    n = h3.accept() => n,
                };
                match next {
                    Ok(Some(resolver)) => {
                        tokio::spawn(handle(resolver, router.clone(), peer));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "HTTP/3 connection ended");
                        break;
                    }
                }
            }
        });
    }
    endpoint.close(0u32.into(), b"shutting down");
}

async fn handle(
    resolver: RequestResolver<h3_quinn::Connection, Bytes>,
    router: axum::Router,
    peer: SocketAddr,
) {
    let (req, stream) = match resolver.resolve_request().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "bad HTTP/3 request");
            return;
        }
    };
    let (mut send, recv) = stream.split();
    // A handler that ignores the request body drops it early; dropping the QUIC receive half
    // would send STOP_SENDING and the client would see its request reset. The body hands the
    // receive half back here instead, to be dropped once the response is finished.
    let (park, parked) = tokio::sync::oneshot::channel();
    let state = ParkedRecv {
        recv: Some(recv),
        park: Some(park),
    };
    let body = futures::stream::unfold(state, |mut state| async move {
        let recv = state.recv.as_mut()?;
        match recv.recv_data().await {
            Ok(Some(mut buf)) => {
                let bytes = buf.copy_to_bytes(buf.remaining());
                Some((Ok::<Bytes, h3::error::StreamError>(bytes), state))
            }
            Ok(None) => None,
            Err(e) => {
                state.recv = None;
                Some((Err(e), state))
            }
        }
    });
    let mut req = req.map(|()| Body::from_stream(body));
    req.extensions_mut().insert(ClientAddr(peer));
    let response = router.oneshot(req).await.unwrap_or_else(|e| match e {});
    let (parts, mut body) = response.into_parts();
    if let Err(e) = send
        .send_response(http::Response::from_parts(parts, ()))
        .await
    {
        tracing::debug!(%peer, error = %e, "HTTP/3: sending headers failed");
        return;
    }
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if data.is_empty() {
                        continue;
                    }
                    if let Err(e) = send.send_data(data).await {
                        tracing::debug!(%peer, error = %e, "HTTP/3: client went away");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "HTTP/3: response body failed");
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return;
            }
        }
    }
    let _ = send.finish().await;
    // A body the handler did not read: read what is left (briefly) so the client's end of the
    // request is not refused with STOP_SENDING while it is still finishing its request.
    if let Ok(mut recv) = parked.await {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while let Ok(Some(_)) = recv.recv_data().await {}
        })
        .await;
    }
}

type RecvHalf = h3::server::RequestStream<h3_quinn::RecvStream, Bytes>;

/// The receive half of a request stream, returned to its request's task when dropped.
struct ParkedRecv {
    recv: Option<RecvHalf>,
    park: Option<tokio::sync::oneshot::Sender<RecvHalf>>,
}

impl Drop for ParkedRecv {
    fn drop(&mut self) {
        if let (Some(recv), Some(park)) = (self.recv.take(), self.park.take()) {
            let _ = park.send(recv);
        }
    }
}
