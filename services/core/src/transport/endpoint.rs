//! A service's QUIC endpoint: it accepts connections from members and dials them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::CertificateDer;

use super::tls::server_name_for;
use super::{node_id_of_cert, MeshTls, ServiceSpec, TransportError};
use crate::config::TransportSection;
use crate::identity::NodeId;

/// An authenticated connection to another member, with the peer's proven node id.
#[derive(Debug, Clone)]
pub struct PeerConnection {
    /// The QUIC connection.
    pub conn: quinn::Connection,
    /// Who is on the other end, recomputed from its certificate's key.
    pub peer: NodeId,
}

impl PeerConnection {
    /// Wraps an established connection, reading the peer's id from its certificate.
    pub fn from_connection(conn: quinn::Connection) -> Result<PeerConnection, TransportError> {
        let peer = peer_id(&conn)?;
        Ok(PeerConnection { conn, peer })
    }

    /// The peer's address as seen from here.
    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }
}

fn peer_id(conn: &quinn::Connection) -> Result<NodeId, TransportError> {
    let identity = conn
        .peer_identity()
        .ok_or_else(|| TransportError::PeerIdentity("no peer certificate".into()))?;
    let certs = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| TransportError::PeerIdentity("unexpected identity type".into()))?;
    let first = certs
        .first()
        .ok_or_else(|| TransportError::PeerIdentity("empty certificate chain".into()))?;
    node_id_of_cert(first).map_err(TransportError::PeerIdentity)
}

/// One service's QUIC endpoint. It listens (when bound as a server) and dials peers of the same
/// service, always with the mesh's mutual TLS and this service's ALPN.
#[derive(Debug, Clone)]
pub struct MeshEndpoint {
    endpoint: quinn::Endpoint,
    service: ServiceSpec,
    handshake_timeout: Duration,
}

/// The QUIC transport limits shared by both directions.
fn transport_config(cfg: &TransportSection) -> Result<Arc<quinn::TransportConfig>, TransportError> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(cfg.idle_timeout)
            .map_err(|e| TransportError::Config(format!("idle timeout: {e}")))?,
    ));
    t.keep_alive_interval(Some(cfg.keep_alive));
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(cfg.max_concurrent_streams));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(cfg.max_concurrent_streams));
    // Windows sized for LAN bulk transfer (shards, memory pages): ~1 Gbit/s at 10 ms RTT, so
    // flow control is not what limits a single stream on a Pi's or a server's link.
    t.stream_receive_window(quinn::VarInt::from_u32(16 * 1024 * 1024));
    t.receive_window(quinn::VarInt::from_u32(64 * 1024 * 1024));
    t.send_window(64 * 1024 * 1024);
    // Ask peers to acknowledge every 8th packet instead of every 2nd (the ACK frequency
    // extension): on a LAN, ACK processing is a large share of a bulk stream's CPU.
    let mut ack = quinn::AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(quinn::VarInt::from_u32(8));
    t.ack_frequency_config(Some(ack));
    Ok(Arc::new(t))
}

/// Socket buffers asked for (the kernel caps them at `net.core.{r,w}mem_max`): the default
/// ~208 KiB drops packets at LAN bulk rates, which QUIC's congestion control reads as loss.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// A dual-stack (for `::`) UDP socket with large buffers, bound to `addr`.
fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    // Best effort: a smaller buffer still works, only slower.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds a quinn endpoint on our own socket.
fn endpoint_on(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for quinn"))?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        udp_socket(addr)?,
        runtime,
    )
}

impl MeshEndpoint {
    /// Binds a service endpoint that accepts members' connections on `addr` (and dials from it).
    /// An IPv6 wildcard address falls back to IPv4 on hosts without IPv6.
    pub fn server(
        addr: SocketAddr,
        tls: &MeshTls,
        service: ServiceSpec,
        cfg: &TransportSection,
    ) -> Result<MeshEndpoint, TransportError> {
        MeshEndpoint::bind_server(addr, tls.server_config(service.alpn)?, tls, service, cfg)
    }

    /// Binds the admission endpoint: server-only TLS (see [`MeshTls::admission_server_config`]).
    /// Serve it with [`crate::rpc::serve_anonymous`]; it must carry only admission methods.
    pub fn admission_server(
        addr: SocketAddr,
        tls: &MeshTls,
        cfg: &TransportSection,
    ) -> Result<MeshEndpoint, TransportError> {
        let service = ServiceSpec::ADMISSION;
        let server_tls = tls.admission_server_config(service.alpn)?;
        MeshEndpoint::bind_server(addr, server_tls, tls, service, cfg)
    }

    /// Binds a listening endpoint with this server-side TLS on the tuned socket; it dials
    /// members with the mesh's client TLS.
    fn bind_server(
        addr: SocketAddr,
        server_tls: rustls::ServerConfig,
        tls: &MeshTls,
        service: ServiceSpec,
        cfg: &TransportSection,
    ) -> Result<MeshEndpoint, TransportError> {
        let transport = transport_config(cfg)?;
        let server_tls = QuicServerConfig::try_from(server_tls)
            .map_err(|e| TransportError::Config(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_tls));
        server.transport_config(transport.clone());
        let endpoint = bind_with_fallback(addr, |a| endpoint_on(a, Some(server.clone())))?;
        let client_tls = tls.client_config(service.alpn)?;
        MeshEndpoint::finish(endpoint, client_tls, service, cfg, transport)
    }

    /// A dial-only endpoint for a node that is not a member yet: it presents no certificate and
    /// trusts only admission servers whose CA matches `pin` (from the join token; see
    /// [`super::admission_client_config`] for `None`).
    pub fn admission_client(
        pin: Option<[u8; super::CA_PIN_BYTES]>,
        cfg: &TransportSection,
    ) -> Result<MeshEndpoint, TransportError> {
        let service = ServiceSpec::ADMISSION;
        let transport = transport_config(cfg)?;
        let any = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0);
        let endpoint = bind_with_fallback(any, |a| endpoint_on(a, None))?;
        let client_tls = super::admission_client_config(pin, service.alpn)?;
        MeshEndpoint::finish(endpoint, client_tls, service, cfg, transport)
    }

    /// A dial-only endpoint on an ephemeral port (the CLI, tests).
    pub fn client(
        tls: &MeshTls,
        service: ServiceSpec,
        cfg: &TransportSection,
    ) -> Result<MeshEndpoint, TransportError> {
        let transport = transport_config(cfg)?;
        let any = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0);
        let endpoint = bind_with_fallback(any, |a| endpoint_on(a, None))?;
        MeshEndpoint::finish(
            endpoint,
            tls.client_config(service.alpn)?,
            service,
            cfg,
            transport,
        )
    }

    /// Installs the client side (how this endpoint dials) and wraps the endpoint.
    fn finish(
        mut endpoint: quinn::Endpoint,
        client_tls: rustls::ClientConfig,
        service: ServiceSpec,
        cfg: &TransportSection,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<MeshEndpoint, TransportError> {
        let client_tls = QuicClientConfig::try_from(client_tls)
            .map_err(|e| TransportError::Config(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_tls));
        client.transport_config(transport);
        endpoint.set_default_client_config(client);
        Ok(MeshEndpoint {
            endpoint,
            service,
            handshake_timeout: cfg.request_timeout.min(Duration::from_secs(10)),
        })
    }

    /// Connects to the member at `addr`. With `expect`, the handshake fails unless that exact
    /// node answers; without, any member of this mesh will do.
    #[tracing::instrument(level = "debug", skip(self), fields(service = self.service.name))]
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expect: Option<NodeId>,
    ) -> Result<PeerConnection, TransportError> {
        let connecting = self
            .endpoint
            .connect(addr, &server_name_for(expect))
            .map_err(|source| TransportError::Connect { addr, source })?;
        let conn = tokio::time::timeout(self.handshake_timeout, connecting)
            .await
            .map_err(|_| TransportError::Timeout {
                addr,
                after: self.handshake_timeout,
            })?
            .map_err(|source| TransportError::Handshake { addr, source })?;
        let peer = PeerConnection::from_connection(conn)?;
        if let Some(expected) = expect {
            if peer.peer != expected {
                return Err(TransportError::WrongPeer {
                    addr,
                    expected,
                    found: peer.peer,
                });
            }
        }
        Ok(peer)
    }

    /// The next incoming connection attempt; `None` once the endpoint is closed.
    pub async fn accept(&self) -> Option<quinn::Incoming> {
        self.endpoint.accept().await
    }

    /// The local address (useful when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Which service this endpoint speaks.
    pub fn service(&self) -> ServiceSpec {
        self.service
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"shutting down");
    }

    /// Waits until every connection has been closed cleanly (bounded by the idle timeout).
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await
    }

    /// The raw quinn endpoint, for callers that need its statistics.
    pub fn quinn(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

/// Binds `addr`; if that is the IPv6 wildcard and IPv6 is unavailable, binds IPv4's instead.
pub(crate) fn bind_with_fallback(
    addr: SocketAddr,
    bind: impl Fn(SocketAddr) -> std::io::Result<quinn::Endpoint>,
) -> Result<quinn::Endpoint, TransportError> {
    match bind(addr) {
        Ok(e) => Ok(e),
        Err(first) if addr.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) => {
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port());
            tracing::info!(error = %first, "IPv6 unavailable; listening on IPv4 only");
            bind(v4).map_err(|source| TransportError::Bind { addr: v4, source })
        }
        Err(source) => Err(TransportError::Bind { addr, source }),
    }
}
