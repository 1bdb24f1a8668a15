//! Diagnostic dialers that deliberately break the mesh's rules.
//!
//! `hyphae ping --anonymous` uses [`anonymous_client`] to show an operator (and the cluster
//! tests) that an endpoint refuses a client without a certificate. It trusts any server, so it
//! must never carry real requests: it exists to be refused.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use quinn::crypto::rustls::QuicClientConfig;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::endpoint::bind_with_fallback;
use super::server_check::{client_config, ServerCheck};
use super::TransportError;

/// Believes any server: the probe exists to be refused, never to carry real requests.
#[derive(Debug)]
struct AnyServer;

impl ServerCheck for AnyServer {
    fn check(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: UnixTime,
        _: &WebPkiSupportedAlgorithms,
    ) -> Result<(), rustls::Error> {
        Ok(())
    }
}

/// A client endpoint that presents no certificate and believes any server.
pub fn anonymous_client(alpn: &[u8]) -> Result<quinn::Endpoint, TransportError> {
    let tls = client_config(AnyServer, None, alpn)?;
    let quic =
        QuicClientConfig::try_from(tls).map_err(|e| TransportError::Config(e.to_string()))?;
    let any = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);
    let mut endpoint = bind_with_fallback(any, quinn::Endpoint::client)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    Ok(endpoint)
}
