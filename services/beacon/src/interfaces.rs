//! The host's network interfaces as the beacon needs them: where to broadcast, which index to
//! multicast on, and which addresses to advertise.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use nix::net::if_::InterfaceFlags;

/// What the beacon sends on and advertises, read fresh at every tick (links come and go).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    /// IPv4 broadcast addresses of every up, non-loopback interface.
    pub broadcast: BTreeSet<Ipv4Addr>,
    /// Indexes of every up, non-loopback, multicast-capable interface with an IPv6 address.
    pub multicast_v6: BTreeSet<u32>,
    /// Addresses to advertise: IPv4 first, then global IPv6 (never loopback or link-local).
    pub advertised: Vec<IpAddr>,
}

/// Whether an IPv6 address is link-local (fe80::/10).
pub fn is_link_local_v6(ip: &std::net::Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

/// Reads the interfaces; an error reading them yields an empty set (nothing to send on).
pub fn scan() -> Interfaces {
    let mut out = Interfaces::default();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    let mut v6 = Vec::new();
    for ifa in addrs {
        let up = ifa.flags.contains(InterfaceFlags::IFF_UP)
            && !ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        if !up {
            continue;
        }
        let Some(addr) = ifa.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            let ip = v4.ip();
            if ip.is_unspecified() {
                continue;
            }
            out.advertised.push(IpAddr::V4(ip));
            if ifa.flags.contains(InterfaceFlags::IFF_BROADCAST) {
                if let Some(b) = ifa.broadcast.as_ref().and_then(|b| b.as_sockaddr_in()) {
                    out.broadcast.insert(b.ip());
                }
            }
        } else if let Some(s6) = addr.as_sockaddr_in6() {
            let ip = s6.ip();
            if ifa.flags.contains(InterfaceFlags::IFF_MULTICAST) {
                if let Ok(index) = nix::net::if_::if_nametoindex(ifa.interface_name.as_str()) {
                    out.multicast_v6.insert(index);
                }
            }
            if !is_link_local_v6(&ip) && !ip.is_loopback() {
                v6.push(IpAddr::V6(ip));
            }
        }
    }
    out.advertised.extend(v6);
    out
}
