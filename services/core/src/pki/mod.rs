//! The mesh's public-key infrastructure ("TrustChain").
//!
//! A mesh is born with `hyphae init`: a CA (Ed25519, made with rcgen), a random mesh id and two
//! random 256-bit secrets (the beacon key that authenticates discovery packets, the data key that
//! chunk encryption keys derive from). The CA signs one certificate per node over the node's own
//! key; the certificate is what the transport checks on every connection. A node that has a
//! certificate, the CA certificate and the mesh secrets is a *member* ([`Membership`]).
//!
//! Files, all under `<state>/identity/`:
//! - `node.key` (0600), `node.crt`, `ca.crt`, `mesh.toml` (0600: mesh id and secrets);
//! - `ca.key` (0600) only on nodes that hold the CA (the node that ran `init`; admission in the
//!   coordinator decides who else).
//! - `web-ca.crt`, `web-ca.key` (0600): the ECDSA P-256 web CA that signs gateway HTTPS
//!   certificates (browsers refuse Ed25519), on the same nodes as `ca.key`.
//! - `revocations.json`: the last revocation list this node has seen.

mod ca;
mod enrolment;
mod membership;
mod mesh;
mod revocation;
mod server_cert;
mod web_ca;

pub use ca::{node_id_of_request, CertificateAuthority, NODE_CERT_VALIDITY_DAYS};
pub use enrolment::{request_certificate, EnrolmentBundle};
pub use membership::Membership;
pub use mesh::{MeshId, MeshSecrets, SecretKey};
pub use revocation::{Revocation, RevocationList, Revocations};
pub use server_cert::{AllowedServerNames, SERVER_CERT_VALIDITY_DAYS};
pub use web_ca::{web_ca_cert_path, WebCertificateAuthority};

use std::path::PathBuf;

/// The DNS suffix under which node certificates name their holder (`<id>.nodes.<suffix>`).
pub const NODE_NAME_SUFFIX: &str = "nodes.hyphae.internal";

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file exists but its contents are not what they should be.
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// This state directory already holds a mesh.
    #[error("this node already belongs to mesh {0}; refusing to create another (remove {1} to start over)")]
    AlreadyMember(MeshId, PathBuf),
    /// This node cannot sign certificates: it does not hold the mesh CA key.
    #[error("this node does not hold the mesh CA key ({0} is missing)")]
    NotCa(PathBuf),
    /// The node has not joined a mesh yet.
    #[error("this node is not a member of a mesh yet (run `hyphae init`, or enrol it)")]
    NotMember,
    /// A certificate signing request was malformed, badly signed, or not for an Ed25519 key.
    #[error("certificate request refused: {0}")]
    BadRequest(String),
    /// rcgen refused to build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

impl PkiError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
        move |source| PkiError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(path: &std::path::Path, reason: impl ToString) -> PkiError {
        PkiError::Invalid {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}
