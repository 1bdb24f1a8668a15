//! Offline enrolment: how a node's key gets a mesh certificate without the network.
//!
//! The node writes a certificate signing request (`hyphae cert request`), a CA holder signs it
//! into an [`EnrolmentBundle`] (`hyphae cert sign`), and the node installs the bundle
//! (`hyphae cert install`). Admission over the network (join tokens, pending nodes) uses the same
//! two calls, [`request_certificate`] and [`super::CertificateAuthority::sign_request`].

use std::path::Path;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ED25519};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use super::ca::{ca_cert_path, store_cert};
use super::{CertificateAuthority, MeshSecrets, PkiError};
use crate::identity::{pem_decode, pem_encode, NodeId, NodeKey};
use crate::secret_file::{self, Visibility};

/// Makes a PEM certificate signing request for this node's key (proof that it holds the key).
pub fn request_certificate(key: &NodeKey) -> Result<String, PkiError> {
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()),
        &PKCS_ED25519,
    )
    .map_err(|e| PkiError::Generate(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, key.node_id().to_string());
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&pair)
        .map_err(|e| PkiError::Generate(e.to_string()))?;
    csr.pem().map_err(|e| PkiError::Generate(e.to_string()))
}

/// Everything a node needs to become a member: its certificate, the CA certificate and the mesh
/// secrets. It contains secrets, so it is written with mode 0600 and should travel privately.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentBundle {
    /// The node this bundle was made for (its certificate's key must match the installing node).
    pub node_id: NodeId,
    /// PEM of the node certificate.
    pub node_cert: String,
    /// PEM of the mesh CA certificate.
    pub ca_cert: String,
    /// The mesh id and secrets.
    pub mesh: MeshSecrets,
}

impl EnrolmentBundle {
    /// Signs a request and packs the result with the mesh's CA certificate and secrets.
    pub fn issue(
        ca: &CertificateAuthority,
        secrets: &MeshSecrets,
        csr_pem: &str,
    ) -> Result<EnrolmentBundle, PkiError> {
        let (node_id, cert) = ca.sign_request(csr_pem)?;
        Ok(EnrolmentBundle {
            node_id,
            node_cert: pem_encode("CERTIFICATE", &cert),
            ca_cert: pem_encode("CERTIFICATE", ca.cert_der()),
            mesh: secrets.clone(),
        })
    }

    /// Serialises the bundle as TOML.
    pub fn to_toml(&self) -> Result<String, PkiError> {
        toml::to_string(self)
            .map(|t| format!("# Hyphae enrolment bundle for node {}: contains mesh secrets, keep private.\n{t}", self.node_id))
            .map_err(|e| PkiError::Generate(e.to_string()))
    }

    /// Reads a bundle file.
    pub fn load(path: &Path) -> Result<EnrolmentBundle, PkiError> {
        let text = std::fs::read_to_string(path).map_err(PkiError::io(path))?;
        toml::from_str(&text).map_err(|e| PkiError::invalid(path, e.message()))
    }

    /// Installs the bundle into an identity directory after checking that it was made for this
    /// node's key and that the node certificate really chains to the enclosed CA.
    pub fn install(&self, dir: &Path, key: &NodeKey) -> Result<(), PkiError> {
        let origin = dir.join("bundle");
        if self.node_id != key.node_id() {
            return Err(PkiError::invalid(
                &origin,
                format!(
                    "bundle is for node {}, but this node is {}",
                    self.node_id,
                    key.node_id()
                ),
            ));
        }
        let node_der = CertificateDer::from(
            pem_decode(&self.node_cert, "CERTIFICATE")
                .map_err(|e| PkiError::invalid(&origin, e))?,
        );
        let ca_der = CertificateDer::from(
            pem_decode(&self.ca_cert, "CERTIFICATE").map_err(|e| PkiError::invalid(&origin, e))?,
        );
        crate::transport::verify_member_cert(&node_der, &ca_der, None).map_err(|e| {
            PkiError::invalid(&origin, format!("node certificate does not verify: {e}"))
        })?;
        let certified = crate::transport::node_id_of_cert(&node_der)
            .map_err(|e| PkiError::invalid(&origin, e))?;
        if certified != key.node_id() {
            return Err(PkiError::invalid(
                &origin,
                "the certificate's key is not this node's key",
            ));
        }
        secret_file::create_private_dir(dir).map_err(PkiError::io(dir))?;
        store_cert(&ca_cert_path(dir), &ca_der)?;
        store_cert(&dir.join("node.crt"), &node_der)?;
        self.mesh.store(&dir.join("mesh.toml"))
    }

    /// Writes the bundle with mode 0600.
    pub fn store(&self, path: &Path) -> Result<(), PkiError> {
        secret_file::write_atomic(path, self.to_toml()?.as_bytes(), Visibility::Private)
            .map_err(PkiError::io(path))
    }
}
