//! The gateway's TLS certificate: an ECDSA P-256 key made here, a certificate for this node's
//! names and addresses signed by the mesh's web CA (ECDSA P-256, so browsers accept it; via the
//! local coordinator and the queen), kept in
//! `<state>/gateway/` and renewed when a third of its life is left or its names change.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::http::Method;
use hyphae_core::secret_file::{self, Visibility};
use rcgen::{CertificateParams, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

use crate::local::LocalServices;

/// Why the certificate could not be obtained or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Key or request generation failed.
    #[error("generating the gateway key or request: {0}")]
    Generate(String),
    /// The coordinator (or the queen behind it) refused or did not answer.
    #[error("the coordinator did not sign the gateway certificate: {0}")]
    Sign(String),
    /// Files could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The stored or returned certificate is unusable.
    #[error("unusable certificate: {0}")]
    Invalid(String),
}

/// The names and addresses this node's certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNames {
    /// DNS names.
    pub dns: BTreeSet<String>,
    /// Addresses.
    pub ips: BTreeSet<IpAddr>,
}

impl ServerNames {
    /// The names a node called `name` with id `id` and `addresses` asks for (the queen allows
    /// the same set, see the coordinator's `gateway_cert`).
    pub fn for_node(name: &str, id: &str, addresses: &[IpAddr]) -> ServerNames {
        let mut dns = BTreeSet::new();
        for n in [name.to_ascii_lowercase(), id.to_ascii_lowercase()] {
            dns.insert(format!("{n}.nodes.hyphae.internal"));
            dns.insert(format!("{n}.local"));
            dns.insert(n);
        }
        for b in crate::dns::name::BUILT_INS {
            dns.insert(b.to_string());
            dns.insert(format!("{b}.hyphae.internal"));
        }
        dns.insert("hyphae.local".into());
        dns.insert("localhost".into());
        let mut ips: BTreeSet<IpAddr> = addresses.iter().copied().collect();
        ips.insert(IpAddr::from([127, 0, 0, 1]));
        ips.insert(IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
        ServerNames { dns, ips }
    }

    fn sans(&self) -> Result<Vec<SanType>, CertError> {
        let mut out = vec![];
        for d in &self.dns {
            out.push(SanType::DnsName(
                d.as_str()
                    .try_into()
                    .map_err(|e: rcgen::Error| CertError::Generate(e.to_string()))?,
            ));
        }
        out.extend(self.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        Ok(out)
    }
}

/// What is on disk: the key and the chain (leaf, then CA).
#[derive(Debug, Clone)]
pub struct StoredCert {
    key_pem: String,
    chain_pem: String,
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join("tls.key")
}

fn chain_path(dir: &Path) -> PathBuf {
    dir.join("tls.crt")
}

impl StoredCert {
    /// Loads the stored key and chain, if both exist.
    pub fn load(dir: &Path) -> Option<StoredCert> {
        Some(StoredCert {
            key_pem: std::fs::read_to_string(key_path(dir)).ok()?,
            chain_pem: std::fs::read_to_string(chain_path(dir)).ok()?,
        })
    }

    fn chain(&self) -> Result<Vec<CertificateDer<'static>>, CertError> {
        let list =
            pem::parse_many(&self.chain_pem).map_err(|e| CertError::Invalid(e.to_string()))?;
        let chain: Vec<_> = list
            .into_iter()
            .filter(|p| p.tag() == "CERTIFICATE")
            .map(|p| CertificateDer::from(p.into_contents()))
            .collect();
        if chain.is_empty() {
            return Err(CertError::Invalid("no certificate in the chain".into()));
        }
        Ok(chain)
    }

    /// Whether the leaf was signed by the web CA (ECDSA; a leaf from before the web CA was
    /// signed by the Ed25519 mesh CA, which browsers refuse), still has more than a third of its
    /// life and names exactly `names`.
    pub fn is_fresh_for(&self, names: &ServerNames) -> bool {
        let Ok(chain) = self.chain() else {
            return false;
        };
        let Ok((_, leaf)) = x509_parser::parse_x509_certificate(&chain[0]) else {
            return false;
        };
        if leaf.signature_algorithm.algorithm
            != x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        {
            return false;
        }
        let validity = leaf.validity();
        let (start, end) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        let now = crate::state::now_unix() as i64;
        if now >= end - (end - start) / 3 {
            return false;
        }
        let mut dns = BTreeSet::new();
        let mut ips = BTreeSet::new();
        if let Ok(Some(san)) = leaf.subject_alternative_name() {
            for g in &san.value.general_names {
                match g {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        dns.insert(d.to_string());
                    }
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            ips.insert(IpAddr::from(a));
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            ips.insert(IpAddr::from(a));
                        }
                    }
                    _ => {}
                }
            }
        }
        dns == names.dns && ips == names.ips
    }

    /// The rustls form.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, CertError> {
        let key = pem::parse(&self.key_pem).map_err(|e| CertError::Invalid(e.to_string()))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.into_contents()));
        let signer = any_supported_type(&key).map_err(|e| CertError::Invalid(e.to_string()))?;
        Ok(Arc::new(CertifiedKey::new(self.chain()?, signer)))
    }
}

/// Makes a key and asks the coordinator to have it certified for `names`; stores both.
#[tracing::instrument(level = "info", skip_all)]
pub async fn obtain(
    local: &LocalServices,
    dir: &Path,
    names: &ServerNames,
) -> Result<StoredCert, CertError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CertError::Generate(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = names.sans()?;
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| CertError::Generate(e.to_string()))?;
    let answer = local
        .call(
            "coordinator",
            Method::POST,
            "/gateway-cert",
            Some(&json!({"csr_pem": csr})),
        )
        .await
        .map_err(|e| CertError::Sign(e.message))?;
    let chain = answer["chain_pem"].as_str().unwrap_or_default();
    if chain.is_empty() {
        return Err(CertError::Sign("no certificate in the answer".into()));
    }
    let stored = StoredCert {
        key_pem: key.serialize_pem(),
        chain_pem: chain.to_string(),
    };
    stored.certified_key()?;
    secret_file::write_atomic(
        &key_path(dir),
        stored.key_pem.as_bytes(),
        Visibility::Private,
    )
    .map_err(|e| CertError::Io(key_path(dir), e))?;
    secret_file::write_atomic(
        &chain_path(dir),
        stored.chain_pem.as_bytes(),
        Visibility::Public,
    )
    .map_err(|e| CertError::Io(chain_path(dir), e))?;
    tracing::info!(
        names = names.dns.len(),
        addresses = names.ips.len(),
        "gateway certificate issued by the web CA"
    );
    Ok(stored)
}

/// The current certificate, swappable while serving (renewal without restart).
#[derive(Debug)]
pub struct CertSlot {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertSlot {
    /// A slot holding `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Arc<CertSlot> {
        Arc::new(CertSlot {
            current: RwLock::new(key),
        })
    }

    /// Replaces the certificate for new connections.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut g) = self.current.write() {
            *g = key;
        }
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|g| g.clone())
    }
}

/// A rustls server configuration over `slot` offering `alpn`.
pub fn server_config(
    slot: Arc<CertSlot>,
    alpn: &[&[u8]],
    tls13_only: bool,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(slot);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
