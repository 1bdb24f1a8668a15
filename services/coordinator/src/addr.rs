//! The address this node advertises for its coordinator endpoint.

use std::net::IpAddr;

/// The first global-looking address of this host: an IPv4 address that is not loopback, else
/// an IPv6 one that is neither loopback nor link-local. Other members dial it for Raft.
pub fn advertised_ip() -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut v6 = None;
    for ifa in addrs {
        let Some(sa) = ifa.address else { continue };
        if let Some(v4) = sa.as_sockaddr_in() {
            let ip = v4.ip();
            if !ip.is_loopback() && !ip.is_unspecified() {
                return Some(IpAddr::V4(ip));
            }
        } else if let Some(s6) = sa.as_sockaddr_in6() {
            let ip = s6.ip();
            let link_local = (ip.segments()[0] & 0xffc0) == 0xfe80;
            if !ip.is_loopback() && !link_local && v6.is_none() {
                v6 = Some(IpAddr::V6(ip));
            }
        }
    }
    v6
}

/// `IP:PORT`, bracketing IPv6.
pub fn join_host_port(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}
