//! The mesh certificate authority: made once by `hyphae init`, signs every node certificate.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ED25519,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use super::{MeshId, PkiError, NODE_NAME_SUFFIX};
use crate::identity::{pem_decode, pem_encode, NodeId, NodeKey};
use crate::secret_file::{self, Visibility};

/// How long the CA certificate is valid: it outlives the hardware.
const CA_VALIDITY_DAYS: i64 = 365 * 30;
/// How long a node certificate is valid. There is no automatic renewal yet, so this is long;
/// a compromised node is cut off by revocation, not by expiry (see docs/security.md).
pub const NODE_CERT_VALIDITY_DAYS: i64 = 365 * 10;

/// The mesh CA: its certificate, and (on nodes that hold it) its private key.
pub struct CertificateAuthority {
    cert_der: CertificateDer<'static>,
    key: KeyPair,
    mesh_id: MeshId,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateAuthority(mesh {})", self.mesh_id)
    }
}

fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join("ca.key")
}

/// The path of the CA certificate in an identity directory.
pub(crate) fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join("ca.crt")
}

impl CertificateAuthority {
    /// Creates the CA of a new mesh.
    pub fn create(mesh_id: MeshId) -> Result<CertificateAuthority, PkiError> {
        let key_doc = NodeKey::generate().map_err(|e| PkiError::Generate(e.to_string()))?;
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(key_doc.pkcs8_der().to_vec()),
            &PKCS_ED25519,
        )
        .map_err(|e| PkiError::Generate(e.to_string()))?;
        let cert_der = self_signed_ca(
            &key,
            &format!("Hyphae mesh {mesh_id} CA"),
            mesh_id,
            CA_VALIDITY_DAYS,
        )?;
        Ok(CertificateAuthority {
            cert_der,
            key,
            mesh_id,
        })
    }

    /// Loads the CA (certificate and key) from an identity directory.
    pub fn load(dir: &Path, mesh_id: MeshId) -> Result<CertificateAuthority, PkiError> {
        let key_path = ca_key_path(dir);
        if !key_path.exists() {
            return Err(PkiError::NotCa(key_path));
        }
        secret_file::check_private(&key_path).map_err(PkiError::io(&key_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(PkiError::io(&key_path))?;
        let key_der =
            pem_decode(&key_pem, "PRIVATE KEY").map_err(|e| PkiError::invalid(&key_path, e))?;
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(key_der),
            &PKCS_ED25519,
        )
        .map_err(|e| PkiError::invalid(&key_path, e))?;
        let cert_path = ca_cert_path(dir);
        let cert_der = load_cert(&cert_path)?;
        Ok(CertificateAuthority {
            cert_der,
            key,
            mesh_id,
        })
    }

    /// Stores the CA certificate (public) and key (0600) in an identity directory.
    pub fn store(&self, dir: &Path) -> Result<(), PkiError> {
        let key_path = ca_key_path(dir);
        secret_file::write_atomic(
            &key_path,
            self.key.serialize_pem().as_bytes(),
            Visibility::Private,
        )
        .map_err(PkiError::io(&key_path))?;
        store_cert(&ca_cert_path(dir), &self.cert_der)
    }

    /// The CA certificate, which every member trusts.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The mesh this CA certifies nodes for.
    pub fn mesh_id(&self) -> MeshId {
        self.mesh_id
    }

    /// The CA key as PEM, for handing the CA to another CA holder over mutual TLS (the
    /// coordinator gives it to princes so that any future queen can admit nodes).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Installs a CA key received from another CA holder, after checking it belongs to the CA
    /// certificate already in `dir`.
    pub fn install_key(dir: &Path, mesh_id: MeshId, key_pem: &str) -> Result<(), PkiError> {
        let key_path = ca_key_path(dir);
        let key_der =
            pem_decode(key_pem, "PRIVATE KEY").map_err(|e| PkiError::invalid(&key_path, e))?;
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(key_der),
            &PKCS_ED25519,
        )
        .map_err(|e| PkiError::invalid(&key_path, e))?;
        let cert_der = load_cert(&ca_cert_path(dir))?;
        let parsed = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| PkiError::invalid(&key_path, e))?
            .1;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::invalid(
                &key_path,
                "the key does not belong to this mesh's CA certificate",
            ));
        }
        let ca = CertificateAuthority {
            cert_der,
            key,
            mesh_id,
        };
        ca.store(dir)
    }

    /// Signs a node certificate for the key in a PEM certificate signing request.
    ///
    /// Only the request's public key and its proof of possession (the CSR signature) are used:
    /// names, usages and lifetime are decided here, so a request cannot ask for a CA certificate
    /// or for another node's name. Returns the node id and the certificate.
    pub fn sign_request(
        &self,
        csr_pem: &str,
    ) -> Result<(NodeId, CertificateDer<'static>), PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadRequest(e.to_string()))?;
        if csr.public_key.algorithm() != &PKCS_ED25519 {
            return Err(PkiError::BadRequest(
                "node keys must be Ed25519".to_string(),
            ));
        }
        let raw = rcgen::PublicKeyData::der_bytes(&csr.public_key);
        let node_id = NodeId::from_public_key(raw);
        let params = self.node_params(node_id)?;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key)
            .map_err(|e| PkiError::Generate(e.to_string()))?;
        let cert = params
            .signed_by(&csr.public_key, &issuer)
            .map_err(|e| PkiError::Generate(e.to_string()))?;
        Ok((node_id, cert.der().clone()))
    }

    /// The certificate fields of a node: its id as subject and DNS name, both TLS usages.
    fn node_params(&self, node_id: NodeId) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_id.to_string());
        dn.push(
            DnType::OrganizationName,
            format!("hyphae-mesh-{}", self.mesh_id),
        );
        params.distinguished_name = dn;
        let name = format!("{node_id}.{NODE_NAME_SUFFIX}");
        params.subject_alt_names = vec![SanType::DnsName(
            name.try_into()
                .map_err(|e: rcgen::Error| PkiError::Generate(e.to_string()))?,
        )];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(NODE_CERT_VALIDITY_DAYS);
        let mut serial = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut serial);
        serial[0] &= 0x7f;
        params.serial_number = Some(serial.to_vec().into());
        Ok(params)
    }
}

/// The node id of the key in a PEM certificate signing request, after checking the request's
/// signature (proof that the sender holds that key). Used to match a waiting node's poll to its
/// admission without signing anything.
pub fn node_id_of_request(csr_pem: &str) -> Result<NodeId, PkiError> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| PkiError::BadRequest(e.to_string()))?;
    if csr.public_key.algorithm() != &PKCS_ED25519 {
        return Err(PkiError::BadRequest(
            "node keys must be Ed25519".to_string(),
        ));
    }
    Ok(NodeId::from_public_key(rcgen::PublicKeyData::der_bytes(
        &csr.public_key,
    )))
}

/// Reads one PEM certificate.
pub(crate) fn load_cert(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let text = std::fs::read_to_string(path).map_err(PkiError::io(path))?;
    let der = pem_decode(&text, "CERTIFICATE").map_err(|e| PkiError::invalid(path, e))?;
    Ok(CertificateDer::from(der))
}

/// Writes one PEM certificate (public, mode 0644).
pub(crate) fn store_cert(path: &Path, der: &CertificateDer<'_>) -> Result<(), PkiError> {
    secret_file::write_atomic(
        path,
        pem_encode("CERTIFICATE", der).as_bytes(),
        Visibility::Public,
    )
    .map_err(PkiError::io(path))
}

/// A self-signed CA certificate of a mesh for `key`: no intermediate CAs below it, valid from an
/// hour ago (clock skew between nodes) for `validity_days`. The mesh CA and the web CA differ
/// only in their key's algorithm and their name.
pub(crate) fn self_signed_ca(
    key: &KeyPair,
    common_name: &str,
    mesh_id: MeshId,
    validity_days: i64,
) -> Result<CertificateDer<'static>, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, format!("hyphae-mesh-{mesh_id}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(validity_days);
    let cert = params
        .self_signed(key)
        .map_err(|e| PkiError::Generate(e.to_string()))?;
    Ok(cert.der().clone())
}
