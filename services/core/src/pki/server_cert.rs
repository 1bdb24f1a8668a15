//! Server certificates for a node's gateway (HTTPS and HTTP/3), signed by the mesh's web CA.
//!
//! Unlike node certificates (Ed25519, named by node id, for mutual TLS between nodes), a gateway
//! certificate names what browsers and `curl` type: the node's name, the mesh's built-in names,
//! its IP addresses. Its key is whatever the requester chose (the gateway uses ECDSA P-256,
//! which every TLS client supports). The signer decides which names a node may claim; this
//! module only refuses a request that claims any other.

use std::collections::BTreeSet;
use std::net::IpAddr;

use rcgen::{
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use super::{PkiError, WebCertificateAuthority};

/// How long a gateway certificate is valid; the gateway renews it when a third is left.
pub const SERVER_CERT_VALIDITY_DAYS: i64 = 90;

/// The names and addresses a node may put in its gateway certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedServerNames {
    /// DNS names (lower case, no trailing dot).
    pub dns: BTreeSet<String>,
    /// IP addresses.
    pub ips: BTreeSet<IpAddr>,
}

impl WebCertificateAuthority {
    /// Signs a server certificate for the key in a PEM CSR, with exactly the subject
    /// alternative names the request asks for, provided every one is in `allowed`.
    pub fn sign_server_request(
        &self,
        csr_pem: &str,
        allowed: &AllowedServerNames,
    ) -> Result<CertificateDer<'static>, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadRequest(e.to_string()))?;
        let requested = &csr.params.subject_alt_names;
        if requested.is_empty() {
            return Err(PkiError::BadRequest(
                "the request names no subject alternative name".into(),
            ));
        }
        let mut first_dns = None;
        for san in requested {
            match san {
                SanType::DnsName(name) => {
                    let name = name.as_str().trim_end_matches('.').to_ascii_lowercase();
                    if !allowed.dns.contains(&name) {
                        return Err(PkiError::BadRequest(format!(
                            "this node may not claim the name {name:?}"
                        )));
                    }
                    first_dns.get_or_insert(name);
                }
                SanType::IpAddress(ip) => {
                    if !allowed.ips.contains(ip) {
                        return Err(PkiError::BadRequest(format!(
                            "this node may not claim the address {ip}"
                        )));
                    }
                }
                other => {
                    return Err(PkiError::BadRequest(format!(
                        "unsupported subject alternative name {other:?}"
                    )))
                }
            }
        }
        let mut params = rcgen::CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            first_dns.unwrap_or_else(|| "hyphae gateway".into()),
        );
        dn.push(
            DnType::OrganizationName,
            format!("hyphae-mesh-{}", self.mesh_id()),
        );
        params.distinguished_name = dn;
        params.subject_alt_names = requested.clone();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(SERVER_CERT_VALIDITY_DAYS);
        let mut serial = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut serial);
        serial[0] &= 0x7f;
        params.serial_number = Some(serial.to_vec().into());
        let issuer = Issuer::from_ca_cert_der(self.cert_der(), self.signing_key())
            .map_err(|e| PkiError::Generate(e.to_string()))?;
        let cert = params
            .signed_by(&csr.public_key, &issuer)
            .map_err(|e| PkiError::Generate(e.to_string()))?;
        Ok(cert.der().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::MeshId;

    fn csr(names: &[&str], ips: &[&str]) -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|n| SanType::DnsName((*n).try_into().unwrap()))
            .chain(ips.iter().map(|i| SanType::IpAddress(i.parse().unwrap())))
            .collect();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn signs_allowed_names_and_refuses_others() {
        let ca = WebCertificateAuthority::create(MeshId::random()).unwrap();
        let allowed = AllowedServerNames {
            dns: ["n1".to_string(), "hypermesh".to_string()].into(),
            ips: ["10.0.0.1".parse().unwrap()].into(),
        };
        let cert = ca
            .sign_server_request(&csr(&["n1", "hypermesh"], &["10.0.0.1"]), &allowed)
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let sans = parsed.subject_alternative_name().unwrap().unwrap();
        assert_eq!(sans.value.general_names.len(), 3);
        assert!(ca
            .sign_server_request(&csr(&["n2"], &[]), &allowed)
            .is_err());
        assert!(ca
            .sign_server_request(&csr(&["n1"], &["10.0.0.2"]), &allowed)
            .is_err());
        assert!(ca.sign_server_request("garbage", &allowed).is_err());
    }
}
