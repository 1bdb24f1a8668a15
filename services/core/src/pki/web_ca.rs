//! The mesh's web CA: an ECDSA P-256 CA that signs only the gateways' HTTPS certificates.
//!
//! The mesh CA is Ed25519, which rustls, OpenSSL and Go accept but browsers (Chrome, Firefox,
//! Safari) do not accept in certificate chains. So a mesh has a second CA for what browsers
//! see, made at `hyphae init` (or by the queen of a mesh made before it existed), held by the
//! same nodes as the mesh CA key, and trusted by people via `hyphae ca export`. It never signs
//! node certificates, so importing it into a browser grants nothing inside the mesh.

use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::CertificateDer;

use super::ca::{load_cert, store_cert};
use super::{MeshId, PkiError};
use crate::identity::pem_encode;
use crate::secret_file::{self, Visibility};

/// How long the web CA certificate is valid (browsers do not limit a private root's life).
const WEB_CA_VALIDITY_DAYS: i64 = 365 * 20;

/// The path of the web CA certificate in an identity directory.
pub fn web_ca_cert_path(dir: &Path) -> PathBuf {
    dir.join("web-ca.crt")
}

fn web_ca_key_path(dir: &Path) -> PathBuf {
    dir.join("web-ca.key")
}

/// The web CA: its certificate and private key (only CA holders have one).
pub struct WebCertificateAuthority {
    cert_der: CertificateDer<'static>,
    key: KeyPair,
    mesh_id: MeshId,
}

impl std::fmt::Debug for WebCertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebCertificateAuthority(mesh {})", self.mesh_id)
    }
}

impl WebCertificateAuthority {
    /// Creates the web CA of a mesh.
    pub fn create(mesh_id: MeshId) -> Result<WebCertificateAuthority, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| PkiError::Generate(e.to_string()))?;
        let cert_der = super::ca::self_signed_ca(
            &key,
            &format!("Hyphae mesh {mesh_id} web CA"),
            mesh_id,
            WEB_CA_VALIDITY_DAYS,
        )?;
        Ok(WebCertificateAuthority {
            cert_der,
            key,
            mesh_id,
        })
    }

    /// Loads the web CA from an identity directory; [`PkiError::NotCa`] when this node does not
    /// hold its key.
    pub fn load(dir: &Path, mesh_id: MeshId) -> Result<WebCertificateAuthority, PkiError> {
        let key_path = web_ca_key_path(dir);
        if !key_path.exists() {
            return Err(PkiError::NotCa(key_path));
        }
        secret_file::check_private(&key_path).map_err(PkiError::io(&key_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(PkiError::io(&key_path))?;
        let cert_der = load_cert(&web_ca_cert_path(dir))?;
        Self::from_parts(cert_der, &key_pem, mesh_id).map_err(|e| PkiError::invalid(&key_path, e))
    }

    /// Checks that `key_pem` is a P-256 key, `cert_der` a CA certificate for it, and pairs them.
    fn from_parts(
        cert_der: CertificateDer<'static>,
        key_pem: &str,
        mesh_id: MeshId,
    ) -> Result<WebCertificateAuthority, String> {
        let key = KeyPair::from_pem_and_sign_algo(key_pem, &PKCS_ECDSA_P256_SHA256)
            .map_err(|e| format!("not an ECDSA P-256 key: {e}"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| format!("not a certificate: {e}"))?;
        if !parsed.is_ca() {
            return Err("the certificate is not a CA certificate".into());
        }
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err("the key does not belong to the web CA certificate".into());
        }
        Ok(WebCertificateAuthority {
            cert_der,
            key,
            mesh_id,
        })
    }

    /// Stores the certificate (public) and key (0600) in an identity directory.
    pub fn store(&self, dir: &Path) -> Result<(), PkiError> {
        let key_path = web_ca_key_path(dir);
        secret_file::write_atomic(
            &key_path,
            self.key.serialize_pem().as_bytes(),
            Visibility::Private,
        )
        .map_err(PkiError::io(&key_path))?;
        store_cert(&web_ca_cert_path(dir), &self.cert_der)
    }

    /// Installs a web CA received from another CA holder (certificate and key, PEM) after
    /// checking that they belong together.
    pub fn install(
        dir: &Path,
        mesh_id: MeshId,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<(), PkiError> {
        let key_path = web_ca_key_path(dir);
        let der = crate::identity::pem_decode(cert_pem, "CERTIFICATE")
            .map_err(|e| PkiError::invalid(&key_path, e))?;
        let ca = Self::from_parts(CertificateDer::from(der), key_pem, mesh_id)
            .map_err(|e| PkiError::invalid(&key_path, e))?;
        ca.store(dir)
    }

    /// The certificate people import into browsers.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The certificate as PEM.
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// The key as PEM, for handing the web CA to another CA holder over mutual TLS.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The signing key (for server certificates).
    pub(crate) fn signing_key(&self) -> &KeyPair {
        &self.key
    }

    /// The mesh this CA belongs to.
    pub fn mesh_id(&self) -> MeshId {
        self.mesh_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_loads_and_installs_only_matching_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let mesh = MeshId::random();
        let ca = WebCertificateAuthority::create(mesh).unwrap();
        ca.store(dir.path()).unwrap();
        let loaded = WebCertificateAuthority::load(dir.path(), mesh).unwrap();
        assert_eq!(loaded.cert_der(), ca.cert_der());
        let (_, parsed) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        assert_eq!(
            parsed.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        );

        let other = tempfile::tempdir().unwrap();
        let stranger = WebCertificateAuthority::create(mesh).unwrap();
        assert!(WebCertificateAuthority::install(
            other.path(),
            mesh,
            &ca.cert_pem(),
            &stranger.key_pem()
        )
        .is_err());
        assert!(
            WebCertificateAuthority::install(other.path(), mesh, "junk", &ca.key_pem()).is_err()
        );
        assert!(!web_ca_cert_path(other.path()).exists());
        WebCertificateAuthority::install(other.path(), mesh, &ca.cert_pem(), &ca.key_pem())
            .unwrap();
        let installed = WebCertificateAuthority::load(other.path(), mesh).unwrap();
        assert_eq!(installed.cert_der(), ca.cert_der());
    }
}
