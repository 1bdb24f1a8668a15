//! One rustls server verifier for the three ways this crate judges a server.
//!
//! rustls asks a custom verifier for four things; only the certificate decision differs between
//! a member dialling a member ([`super::tls`]), a joiner trusting a pinned CA
//! ([`super::admission`]) and the diagnostic probe ([`super::probe`]). Each supplies a
//! [`ServerCheck`]; the signature checks and the client configuration are shared here.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, SignatureScheme};

use super::tls::provider;
use super::TransportError;

/// Decides whether a server's certificate is acceptable (signatures are checked separately).
pub(crate) trait ServerCheck: std::fmt::Debug + Send + Sync + 'static {
    /// `Ok(())` to accept the server.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
        algs: &WebPkiSupportedAlgorithms,
    ) -> Result<(), TlsError>;
}

#[derive(Debug)]
struct CheckedServer<C> {
    check: C,
    algs: WebPkiSupportedAlgorithms,
}

impl<C: ServerCheck> ServerCertVerifier for CheckedServer<C> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        self.check
            .check(end_entity, intermediates, server_name, now, &self.algs)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A TLS 1.3 client configuration that judges servers with `check` and presents
/// `client_auth` (certificate and key) when given, nothing otherwise.
pub(crate) fn client_config(
    check: impl ServerCheck,
    client_auth: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TransportError> {
    let config_err = |e: TlsError| TransportError::Config(e.to_string());
    let provider = provider();
    let verifier = Arc::new(CheckedServer {
        check,
        algs: provider.signature_verification_algorithms,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_auth {
        Some((cert, key)) => builder
            .with_client_auth_cert(vec![cert], key)
            .map_err(config_err)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}
