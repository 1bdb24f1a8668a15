//! rustls configuration for mesh members, with verifiers that know what a member is.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error as TlsError, RootCertStore,
    SignatureScheme,
};

use super::server_check::{client_config, ServerCheck};
use crate::identity::NodeId;
use crate::pki::{Membership, Revocations, NODE_NAME_SUFFIX};

use super::TransportError;

/// The server name a client uses when any member of the mesh will do (e.g. a first contact by
/// address). To insist on one node, the client uses `<node id>.nodes.hyphae.internal` instead.
pub const MESH_SERVER_NAME: &str = "mesh.hyphae.internal";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The crypto provider of the whole mesh: ring (no cmake, builds for the Pi), TLS 1.3 only.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Recomputes the node id from the Ed25519 key inside a certificate.
pub fn node_id_of_cert(cert: &CertificateDer<'_>) -> Result<NodeId, String> {
    let parsed = ParsedCertificate::try_from(cert).map_err(|e| e.to_string())?;
    node_id_of_parsed(&parsed)
}

pub(crate) fn node_id_of_parsed(cert: &ParsedCertificate<'_>) -> Result<NodeId, String> {
    let spki = cert.subject_public_key_info();
    let bytes: &[u8] = spki.as_ref();
    match bytes.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => Ok(NodeId::from_public_key(key)),
        _ => Err("the certificate's key is not Ed25519; mesh nodes use Ed25519 keys".into()),
    }
}

/// Checks that `cert` is a valid, unrevoked member certificate of the mesh whose CA is `ca`,
/// returning the member's node id. Used when installing credentials and by the verifiers.
pub fn verify_member_cert(
    cert: &CertificateDer<'_>,
    ca: &CertificateDer<'_>,
    revocations: Option<&Revocations>,
) -> Result<NodeId, TlsError> {
    let roots = roots_of(ca)?;
    let algs = provider().signature_verification_algorithms;
    let parsed = ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &[],
        UnixTime::now(),
        algs.all,
    )?;
    member_id(&parsed, revocations)
}

fn member_id(
    cert: &ParsedCertificate<'_>,
    revocations: Option<&Revocations>,
) -> Result<NodeId, TlsError> {
    let id = node_id_of_parsed(cert).map_err(|e| {
        TlsError::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            std::io::Error::other(e),
        ))))
    })?;
    if revocations.is_some_and(|r| r.is_revoked(&id)) {
        tracing::warn!(node = %id, "refused a revoked node's certificate");
        return Err(TlsError::InvalidCertificate(CertificateError::Revoked));
    }
    Ok(id)
}

pub(crate) fn roots_of(ca: &CertificateDer<'_>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone().into_owned())
        .map_err(|e| TlsError::General(format!("mesh CA certificate unusable: {e}")))?;
    Ok(roots)
}

/// Judges servers for members: chain to the mesh CA, Ed25519 key, not revoked, and — when the
/// client asked for a particular node by name — that node and no other.
#[derive(Debug)]
struct MemberServer {
    roots: Arc<RootCertStore>,
    revocations: Revocations,
}

impl ServerCheck for MemberServer {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
        algs: &WebPkiSupportedAlgorithms,
    ) -> Result<(), TlsError> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            algs.all,
        )?;
        let id = member_id(&parsed, Some(&self.revocations))?;
        if let ServerName::DnsName(name) = server_name {
            let name = name.as_ref();
            if name != MESH_SERVER_NAME {
                let expected = name
                    .strip_suffix(NODE_NAME_SUFFIX)
                    .and_then(|s| s.strip_suffix('.'))
                    .and_then(|s| s.parse::<NodeId>().ok());
                if expected != Some(id) {
                    return Err(TlsError::InvalidCertificate(
                        CertificateError::NotValidForName,
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Verifies clients: rustls' WebPKI client verifier (chain, validity, clientAuth usage) plus the
/// mesh rules (Ed25519 key, not revoked). A client without a certificate is refused.
#[derive(Debug)]
struct MeshClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revocations: Revocations,
}

impl ClientCertVerifier for MeshClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| tracing::warn!(error = %e, "refused a client certificate"))?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        member_id(&parsed, Some(&self.revocations))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A member's TLS material, ready to make rustls server and client configurations.
#[derive(Debug)]
pub struct MeshTls {
    node_cert: CertificateDer<'static>,
    ca_cert: CertificateDer<'static>,
    node_key: PrivatePkcs8KeyDer<'static>,
    roots: Arc<RootCertStore>,
    revocations: Revocations,
}

impl MeshTls {
    /// From a node's membership.
    pub fn new(membership: &Membership) -> Result<MeshTls, TransportError> {
        let roots =
            roots_of(&membership.ca_cert).map_err(|e| TransportError::Config(e.to_string()))?;
        Ok(MeshTls {
            node_cert: membership.node_cert.clone(),
            ca_cert: membership.ca_cert.clone(),
            node_key: PrivatePkcs8KeyDer::from(membership.key.pkcs8_der().to_vec()),
            roots: Arc::new(roots),
            revocations: membership.revocations.clone(),
        })
    }

    /// The revocation list the verifiers consult.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The server side of a service: requires and verifies client certificates.
    pub fn server_config(&self, alpn: &[u8]) -> Result<rustls::ServerConfig, TransportError> {
        let provider = provider();
        let inner =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
                .build()
                .map_err(|e| TransportError::Config(e.to_string()))?;
        let verifier = Arc::new(MeshClientVerifier {
            inner,
            revocations: self.revocations.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.node_cert.clone()],
                PrivateKeyDer::Pkcs8(self.node_key.clone_key()),
            )
            .map_err(|e| TransportError::Config(e.to_string()))?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(config)
    }

    /// The server side of the admission endpoint, the only one that asks for no client
    /// certificate: a joining node has none yet. It presents the node certificate *and* the CA
    /// certificate, so a joiner that knows only the CA's pin (from its join token) can verify
    /// the chain. Every other endpoint keeps the mutual-TLS [`MeshTls::server_config`].
    pub fn admission_server_config(
        &self,
        alpn: &[u8],
    ) -> Result<rustls::ServerConfig, TransportError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.node_cert.clone(), self.ca_cert.clone()],
                PrivateKeyDer::Pkcs8(self.node_key.clone_key()),
            )
            .map_err(|e| TransportError::Config(e.to_string()))?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(config)
    }

    /// The client side of a service: presents this node's certificate, verifies the server's.
    pub fn client_config(&self, alpn: &[u8]) -> Result<rustls::ClientConfig, TransportError> {
        let check = MemberServer {
            roots: self.roots.clone(),
            revocations: self.revocations.clone(),
        };
        let auth = (
            self.node_cert.clone(),
            PrivateKeyDer::Pkcs8(self.node_key.clone_key()),
        );
        client_config(check, Some(auth), alpn)
    }
}

/// The DNS name that asks for exactly this node during the handshake.
pub(crate) fn server_name_for(expect: Option<NodeId>) -> String {
    match expect {
        Some(id) => format!("{id}.{NODE_NAME_SUFFIX}"),
        None => MESH_SERVER_NAME.to_string(),
    }
}
