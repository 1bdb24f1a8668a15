//! Node-to-node transport: QUIC (quinn) with mutual TLS (rustls) pinned to the mesh CA.
//!
//! Every connection is authenticated both ways during the handshake: each side presents a
//! certificate that must chain to this mesh's CA, carry an Ed25519 key, and belong to a node that
//! is not revoked. A peer that fails any of this is refused before a single request byte is read.
//! The peer's [`NodeId`] is recomputed from the key in its certificate, so identity cannot be
//! claimed, only proven. Each service has its own ALPN ([`ServiceSpec`]), so a client of one
//! service can never end up talking to another.

mod admission;
mod endpoint;
pub mod probe;
mod server_check;
mod service;
mod tls;

pub use admission::{admission_client_config, ca_pin, CA_PIN_BYTES};
pub use endpoint::{MeshEndpoint, PeerConnection};
pub use service::ServiceSpec;
pub use tls::{node_id_of_cert, verify_member_cert, MeshTls, MESH_SERVER_NAME};

use std::net::SocketAddr;

use crate::identity::NodeId;

/// Why a connection could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The TLS configuration could not be built from the node's credentials.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The connection attempt could not start (bad address, endpoint closed).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: quinn::ConnectError,
    },
    /// The handshake failed or the peer was refused (not a member, revoked, wrong service).
    #[error("connection to {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        source: quinn::ConnectionError,
    },
    /// The handshake did not finish in time (peer down, or dropping packets).
    #[error("connection to {addr} timed out after {after:?}")]
    Timeout {
        addr: SocketAddr,
        after: std::time::Duration,
    },
    /// The peer's certificate could not be read after the handshake (should not happen).
    #[error("peer presented no usable certificate: {0}")]
    PeerIdentity(String),
    /// We asked for one node and reached another.
    #[error("expected node {expected} at {addr}, found {found}")]
    WrongPeer {
        addr: SocketAddr,
        expected: NodeId,
        found: NodeId,
    },
}
