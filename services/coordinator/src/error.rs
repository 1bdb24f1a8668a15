//! The coordinator's errors.

use hyphae_core::ipc::IpcError;
use hyphae_core::pki::PkiError;
use hyphae_core::transport::TransportError;

/// Why the coordinator stopped or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The QUIC endpoints could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The local socket could not be served.
    #[error(transparent)]
    Ipc(#[from] IpcError),
    /// Certificates or keys were unusable.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::OpenError),
    /// openraft refused its configuration or stopped.
    #[error("raft: {0}")]
    Raft(String),
    /// No queen is known right now (election in progress, or no quorum).
    #[error("no queen reachable: {0}")]
    NoQueen(String),
    /// A write may or may not have been applied (its queen fell silent while it was in
    /// flight, or no quorum answered in time). Read before retrying.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The request was refused by the state machine or by policy.
    #[error("refused: {0}")]
    Refused(String),
    /// The node could not join its mesh.
    #[error("joining the mesh: {0}")]
    Join(String),
    /// A request was invalid.
    #[error("bad request: {0}")]
    BadRequest(String),
}
