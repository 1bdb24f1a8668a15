//! The joiner's side of admission: TLS that trusts a CA it knows only by its pin.
//!
//! A node that is not a member yet has no CA certificate to verify servers with. Its join token
//! carries a pin (a truncated BLAKE3 of the CA certificate's DER, like kubeadm's
//! discovery-token-ca-cert-hash); the admission server sends its chain (node certificate, then
//! CA certificate), and the joiner accepts it only if the CA matches the pin and the node
//! certificate chains to that CA. A server of another mesh, or a man in the middle, fails here.

use std::sync::Arc;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, Error as TlsError};

use super::server_check::{client_config, ServerCheck};
use super::tls::{node_id_of_parsed, roots_of};
use super::TransportError;

/// How many bytes of the CA certificate's BLAKE3 a pin keeps (128 bits).
pub const CA_PIN_BYTES: usize = 16;

/// The pin of a CA certificate: the first [`CA_PIN_BYTES`] of BLAKE3 over its DER.
pub fn ca_pin(ca_der: &[u8]) -> [u8; CA_PIN_BYTES] {
    let hash = blake3::hash(ca_der);
    let mut pin = [0u8; CA_PIN_BYTES];
    pin.copy_from_slice(&hash.as_bytes()[..CA_PIN_BYTES]);
    pin
}

/// A client configuration for the admission endpoint: no client certificate, and a server
/// verifier that trusts exactly the CA with this pin. Without a pin (a node asking to be
/// admitted without a token) the server's chain need only be self-consistent: trust on first
/// use, since such a node is authenticated by the administrator's `hyphae admit`, not by us.
pub fn admission_client_config(
    pin: Option<[u8; CA_PIN_BYTES]>,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TransportError> {
    client_config(PinnedCa { pin }, None, alpn)
}

/// Accepts a server whose chain contains the pinned CA and whose certificate that CA signed.
#[derive(Debug)]
struct PinnedCa {
    pin: Option<[u8; CA_PIN_BYTES]>,
}

fn refuse(why: &str) -> TlsError {
    tracing::warn!("admission server refused: {why}");
    TlsError::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        std::io::Error::other(why.to_string()),
    ))))
}

impl ServerCheck for PinnedCa {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        now: UnixTime,
        algs: &WebPkiSupportedAlgorithms,
    ) -> Result<(), TlsError> {
        let ca = intermediates
            .iter()
            .find(|c| self.pin.is_none_or(|pin| ca_pin(c.as_ref()) == pin))
            .ok_or_else(|| refuse("no CA certificate matching the join token's pin"))?;
        let roots = roots_of(ca)?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &[],
            now,
            algs.all,
        )?;
        node_id_of_parsed(&parsed).map_err(|e| refuse(&e))?;
        Ok(())
    }
}
