//! Serving the one router twice: HTTPS with HTTP/1.1 and HTTP/2 over TCP ([`https`]) and HTTP/3
//! over QUIC ([`h3`]), with the certificate from [`certificate`].

pub mod certificate;
pub mod h3;
pub mod https;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `addr`, or the IPv4 wildcard when `addr` is the IPv6 wildcard and the host has no IPv6.
pub fn fallback_v4(addr: SocketAddr) -> Option<SocketAddr> {
    match addr.ip() {
        IpAddr::V6(v6) if v6.is_unspecified() => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            addr.port(),
        )),
        _ => None,
    }
}
