//! A node's membership in a mesh: the credentials it loads to talk to the other members.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use super::ca::{ca_cert_path, load_cert, store_cert};
use super::{CertificateAuthority, MeshSecrets, PkiError, Revocations, WebCertificateAuthority};
use crate::identity::{NodeId, NodeKey};

/// The credentials of a member node, loaded from its identity directory.
#[derive(Debug, Clone)]
pub struct Membership {
    /// This node's key.
    pub key: Arc<NodeKey>,
    /// This node's certificate, signed by the mesh CA.
    pub node_cert: CertificateDer<'static>,
    /// The mesh CA certificate.
    pub ca_cert: CertificateDer<'static>,
    /// The mesh id and secrets.
    pub secrets: MeshSecrets,
    /// Nodes this node refuses to talk to (shared with the transport).
    pub revocations: Revocations,
}

impl Membership {
    /// Creates a new mesh in `dir` with this node as its first member and CA holder.
    pub fn init(dir: &Path, key: Arc<NodeKey>) -> Result<Membership, PkiError> {
        if let Some(existing) = Membership::load(dir, key.clone())? {
            return Err(PkiError::AlreadyMember(
                existing.secrets.mesh_id,
                dir.join("mesh.toml"),
            ));
        }
        let secrets = MeshSecrets::generate();
        let ca = CertificateAuthority::create(secrets.mesh_id)?;
        let csr = super::request_certificate(&key)?;
        let (_, node_cert) = ca.sign_request(&csr)?;
        ca.store(dir)?;
        WebCertificateAuthority::create(secrets.mesh_id)?.store(dir)?;
        store_cert(&dir.join("node.crt"), &node_cert)?;
        // mesh.toml last: its presence is what makes this directory a member.
        secrets.store(&dir.join("mesh.toml"))?;
        Ok(Membership {
            key,
            node_cert,
            ca_cert: ca.cert_der().clone(),
            revocations: Revocations::load_or_empty(&dir.join("revocations.json"))?,
            secrets,
        })
    }

    /// Loads the membership of the node whose identity lives in `dir`; `None` when the node has
    /// not joined a mesh yet.
    pub fn load(dir: &Path, key: Arc<NodeKey>) -> Result<Option<Membership>, PkiError> {
        let mesh_path = dir.join("mesh.toml");
        if !mesh_path.exists() {
            return Ok(None);
        }
        let secrets = MeshSecrets::load(&mesh_path)?;
        let ca_cert = load_cert(&ca_cert_path(dir))?;
        let cert_path = dir.join("node.crt");
        let node_cert = load_cert(&cert_path)?;
        let certified = crate::transport::node_id_of_cert(&node_cert)
            .map_err(|e| PkiError::invalid(&cert_path, e))?;
        if certified != key.node_id() {
            return Err(PkiError::invalid(
                &cert_path,
                format!(
                    "certificate is for node {certified}, but node.key is node {}",
                    key.node_id()
                ),
            ));
        }
        Ok(Some(Membership {
            key,
            node_cert,
            ca_cert,
            revocations: Revocations::load_or_empty(&dir.join("revocations.json"))?,
            secrets,
        }))
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.key.node_id()
    }

    /// The CA of this mesh, if this node holds its key.
    pub fn certificate_authority(&self, dir: &Path) -> Result<CertificateAuthority, PkiError> {
        CertificateAuthority::load(dir, self.secrets.mesh_id)
    }

    /// The web CA (gateway HTTPS certificates), if this node holds its key.
    pub fn web_certificate_authority(
        &self,
        dir: &Path,
    ) -> Result<WebCertificateAuthority, PkiError> {
        WebCertificateAuthority::load(dir, self.secrets.mesh_id)
    }

    /// Where the CA certificate of a member lives (for `hyphae ca export`).
    pub fn ca_cert_path(dir: &Path) -> PathBuf {
        ca_cert_path(dir)
    }
}
