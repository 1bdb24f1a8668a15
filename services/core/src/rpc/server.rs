//! The serving side: a router of typed handlers and the accept loop of a service endpoint.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::channel::{read_frame, write_frame};
use super::frame::{Frame, FrameKind};
use super::method::{Ping, PingRequest, Pong};
use super::{
    decode_body, encode_body, stream_code, ErrorCode, Limits, Method, RpcChannel, RpcError,
    RpcFault,
};
use crate::identity::NodeId;
use crate::metrics::MetricsRegistry;
use crate::transport::{MeshEndpoint, PeerConnection, ServiceSpec};

/// Who is calling: the proven node id and address of the peer.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The caller's node id (from its certificate).
    pub node: NodeId,
    /// The caller's address.
    pub addr: SocketAddr,
}

impl Peer {
    /// The caller on the admission endpoint, which has no certificate: the all-zero node id.
    pub const ANONYMOUS: Peer = Peer {
        node: NodeId::ANONYMOUS,
        addr: SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
    };
}

type UnaryFn =
    Arc<dyn Fn(Peer, Bytes) -> BoxFuture<'static, Result<Vec<u8>, RpcFault>> + Send + Sync>;
type StreamFn = Arc<
    dyn for<'a> Fn(Peer, Bytes, &'a mut RpcChannel) -> BoxFuture<'a, Result<(), RpcFault>>
        + Send
        + Sync,
>;

#[derive(Clone)]
enum Route {
    Unary(UnaryFn),
    Streaming(StreamFn),
}

/// The handlers of one service, by method name. Every router answers [`Ping`].
#[derive(Clone)]
pub struct Router {
    service: ServiceSpec,
    routes: HashMap<&'static str, Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.routes.keys().collect();
        names.sort();
        f.debug_struct("Router")
            .field("service", &self.service.name)
            .field("methods", &names)
            .finish()
    }
}

fn bad_request(e: RpcError) -> RpcFault {
    RpcFault::new(ErrorCode::BadRequest, e.to_string())
}

impl Router {
    /// A router for `service` on node `local`, answering `core.ping` already.
    pub fn new(service: ServiceSpec, local: NodeId) -> Router {
        let router = Router {
            service,
            routes: HashMap::new(),
        };
        router.unary::<Ping, _, _>(move |_peer, req: PingRequest| async move {
            Ok(Pong {
                nonce: req.nonce,
                node: local,
                service: service.name.to_string(),
                version: crate::VERSION.to_string(),
            })
        })
    }

    /// Adds a unary handler.
    pub fn unary<M, F, Fut>(mut self, handler: F) -> Router
    where
        M: Method,
        F: Fn(Peer, M::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<M::Response, RpcFault>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let route: UnaryFn = Arc::new(move |peer, body: Bytes| {
            let handler = handler.clone();
            Box::pin(async move {
                let request: M::Request = decode_body(&body).map_err(bad_request)?;
                let response = handler(peer, request).await?;
                encode_body(&response)
                    .map_err(|e| RpcFault::new(ErrorCode::Internal, e.to_string()))
            })
        });
        self.routes.insert(M::NAME, Route::Unary(route));
        self
    }

    /// Adds a streaming handler: it gets the decoded request and the call's channel, and should
    /// finish with [`RpcChannel::end`]. If it returns an error, the caller receives it.
    pub fn streaming<M, F>(mut self, handler: F) -> Router
    where
        M: Method,
        F: for<'a> Fn(Peer, M::Request, &'a mut RpcChannel) -> BoxFuture<'a, Result<(), RpcFault>>
            + Send
            + Sync
            + 'static,
    {
        let handler = Arc::new(handler);
        let route: StreamFn = Arc::new(move |peer, body: Bytes, channel: &mut RpcChannel| {
            let handler = handler.clone();
            Box::pin(async move {
                let request: M::Request = decode_body(&body).map_err(bad_request)?;
                handler(peer, request, channel).await
            })
        });
        self.routes.insert(M::NAME, Route::Streaming(route));
        self
    }

    /// The service these handlers belong to.
    pub fn service(&self) -> ServiceSpec {
        self.service
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: String,
    method: String,
    outcome: String,
}

/// Counters an RPC server keeps (`hyphae_rpc_*` on `/metrics`).
#[derive(Clone, Default)]
pub struct RpcMetrics {
    connections: Family<ServiceLabel, Gauge>,
    handshakes_refused: Family<ServiceLabel, Counter>,
    bad_frames: Family<ServiceLabel, Counter>,
    requests: Family<MethodLabels, Counter>,
}

impl std::fmt::Debug for RpcMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RpcMetrics")
    }
}

impl RpcMetrics {
    /// Registers the families in the node's registry.
    pub fn register(registry: &MetricsRegistry) -> RpcMetrics {
        let m = RpcMetrics::default();
        registry.register("rpc", |r| {
            r.register("connections", "Open QUIC connections from members", m.connections.clone());
            r.register(
                "handshakes_refused",
                "Connection attempts refused during the TLS handshake (not a member, revoked, wrong service)",
                m.handshakes_refused.clone(),
            );
            r.register(
                "bad_frames",
                "Streams closed because a frame was too large, truncated or garbled",
                m.bad_frames.clone(),
            );
            r.register("requests", "RPC requests served, by method and outcome", m.requests.clone());
        });
        m
    }

    fn label(service: ServiceSpec) -> ServiceLabel {
        ServiceLabel {
            service: service.name.to_string(),
        }
    }

    /// Handshakes refused so far by this service (for `/status`).
    pub fn refused(&self, service: ServiceSpec) -> u64 {
        self.handshakes_refused
            .get_or_create(&Self::label(service))
            .get()
    }

    /// Streams closed for bad frames so far by this service (for `/status`).
    pub fn bad_frames(&self, service: ServiceSpec) -> u64 {
        self.bad_frames.get_or_create(&Self::label(service)).get()
    }

    /// Open connections of this service right now.
    pub fn connections(&self, service: ServiceSpec) -> i64 {
        self.connections.get_or_create(&Self::label(service)).get()
    }
}

/// Accepts connections on `endpoint` and serves `router` until `shutdown` fires.
pub async fn serve(
    endpoint: MeshEndpoint,
    router: Arc<Router>,
    limits: Limits,
    metrics: RpcMetrics,
    shutdown: CancellationToken,
) {
    serve_inner(endpoint, router, limits, metrics, shutdown, false).await
}

/// Like [`serve`], for the admission endpoint only: clients have no certificate, so every
/// caller is [`Peer::ANONYMOUS`] and handlers must trust nothing but what they can check.
pub async fn serve_anonymous(
    endpoint: MeshEndpoint,
    router: Arc<Router>,
    limits: Limits,
    metrics: RpcMetrics,
    shutdown: CancellationToken,
) {
    serve_inner(endpoint, router, limits, metrics, shutdown, true).await
}

async fn serve_inner(
    endpoint: MeshEndpoint,
    router: Arc<Router>,
    limits: Limits,
    metrics: RpcMetrics,
    shutdown: CancellationToken,
    anonymous: bool,
) {
    let service = router.service();
    loop {
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
        };
        let router = router.clone();
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        let remote = incoming.remote_address();
        tokio::spawn(
            async move {
                let conn = match incoming.await {
                    Ok(conn) => conn,
                    Err(e) => {
                        metrics
                            .handshakes_refused
                            .get_or_create(&RpcMetrics::label(service))
                            .inc();
                        tracing::warn!(error = %e, "refused connection");
                        return;
                    }
                };
                let identified = if anonymous {
                    Ok(PeerConnection {
                        conn,
                        peer: Peer::ANONYMOUS.node,
                    })
                } else {
                    PeerConnection::from_connection(conn)
                };
                let peer = match identified {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "connection without a usable identity");
                        return;
                    }
                };
                serve_connection(peer, router, limits, metrics, shutdown).await;
            }
            .instrument(tracing::info_span!("conn", service = service.name, %remote)),
        );
    }
    endpoint.close();
}

async fn serve_connection(
    peer: PeerConnection,
    router: Arc<Router>,
    limits: Limits,
    metrics: RpcMetrics,
    shutdown: CancellationToken,
) {
    let service = router.service();
    let gauge = metrics
        .connections
        .get_or_create(&RpcMetrics::label(service))
        .clone();
    gauge.inc();
    tracing::debug!(peer = %peer.peer, "member connected");
    let who = Peer {
        node: peer.peer,
        addr: peer.remote_address(),
    };
    loop {
        let (send, recv) = tokio::select! {
            _ = shutdown.cancelled() => {
                peer.conn.close(quinn::VarInt::from_u32(stream_code::SHUTDOWN), b"shutting down");
                break;
            }
            stream = peer.conn.accept_bi() => match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(peer = %who.node, reason = %e, "connection ended");
                    break;
                }
            },
        };
        let router = router.clone();
        let metrics = metrics.clone();
        tokio::spawn(
            serve_stream(who, send, recv, router, limits, metrics)
                .instrument(tracing::debug_span!("stream", peer = %who.node)),
        );
    }
    gauge.dec();
}

async fn serve_stream(
    peer: Peer,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    router: Arc<Router>,
    limits: Limits,
    metrics: RpcMetrics,
) {
    let service = router.service();
    let first = tokio::time::timeout(
        limits.frame_timeout,
        read_frame(&mut recv, limits.max_frame_bytes),
    )
    .await;
    let frame = match first {
        Ok(Ok(None)) => return, // opened and closed without a request: nothing to do
        Ok(Ok(Some(f))) if f.kind == FrameKind::Request => Ok(f),
        Ok(Ok(Some(f))) => Err(format!("expected a Request frame, got {:?}", f.kind)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no request within {:?}", limits.frame_timeout)),
    };
    let frame = match frame {
        Ok(frame) => frame,
        Err(reason) => {
            metrics
                .bad_frames
                .get_or_create(&RpcMetrics::label(service))
                .inc();
            tracing::warn!(peer = %peer.node, %reason, "closing stream: bad frame");
            let fault = RpcFault::new(ErrorCode::BadFrame, reason);
            reject(&mut send, &mut recv, &fault, limits).await;
            return;
        }
    };
    let method = frame.method.clone();
    let outcome = match router.routes.get(method.as_str()).cloned() {
        None => {
            let fault = RpcFault::new(
                ErrorCode::UnknownMethod,
                format!("service {} has no method `{method}`", service.name),
            );
            reject(&mut send, &mut recv, &fault, limits).await;
            "unknown"
        }
        Some(Route::Unary(handler)) => match handler(peer, frame.body).await {
            Ok(body) => {
                let reply = Frame::new(FrameKind::Response, body);
                match write_frame(&mut send, &reply, limits.max_frame_bytes).await {
                    Ok(()) => {
                        let _ = send.finish();
                        "ok"
                    }
                    Err(RpcError::Frame(e)) => {
                        let fault =
                            RpcFault::new(ErrorCode::Internal, format!("response too large: {e}"));
                        reject(&mut send, &mut recv, &fault, limits).await;
                        "error"
                    }
                    Err(_) => "aborted",
                }
            }
            Err(fault) => {
                reject(&mut send, &mut recv, &fault, limits).await;
                "error"
            }
        },
        Some(Route::Streaming(handler)) => {
            let mut channel = RpcChannel::new(send, recv, limits);
            match handler(peer, frame.body, &mut channel).await {
                Ok(()) => "ok",
                Err(fault) => {
                    let _ = channel.fail(&fault).await;
                    "error"
                }
            }
        }
    };
    metrics
        .requests
        .get_or_create(&MethodLabels {
            service: service.name.to_string(),
            method: if outcome == "unknown" {
                "(unknown)".into()
            } else {
                method
            },
            outcome: outcome.to_string(),
        })
        .inc();
}

/// Answers with an `Error` frame and closes this stream (only this one).
async fn reject(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    fault: &RpcFault,
    limits: Limits,
) {
    if let Ok(body) = encode_body(fault) {
        let _ = write_frame(
            send,
            &Frame::new(FrameKind::Error, body),
            limits.max_frame_bytes,
        )
        .await;
    }
    let _ = send.finish();
    let _ = recv.stop(quinn::VarInt::from_u32(stream_code::BAD_FRAME));
}
