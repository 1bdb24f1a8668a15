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

/// The subnet-directed broadcast address of `ip` in the subnet `mask`: used when an address
/// was configured without one (`ip addr add A/24` sets none unless told `brd +`).
pub fn directed_broadcast(ip: Ipv4Addr, mask: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) | !u32::from(mask))
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
                let configured = ifa
                    .broadcast
                    .as_ref()
                    .and_then(|b| b.as_sockaddr_in())
                    .map(|b| b.ip())
                    .filter(|b| !b.is_unspecified());
                let mask = ifa
                    .netmask
                    .as_ref()
                    .and_then(|m| m.as_sockaddr_in())
                    .map(|m| m.ip());
                // The kernel reports the address itself when none was configured; the mask
                // gives the right one either way.
                let derived = mask.map(|m| directed_broadcast(ip, m)).filter(|b| *b != ip);
                if let Some(b) = derived.or(configured.filter(|b| *b != ip)) {
                    out.broadcast.insert(b);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_from_mask() {
        let b = directed_broadcast(
            Ipv4Addr::new(10, 213, 0, 14),
            Ipv4Addr::new(255, 255, 255, 0),
        );
        assert_eq!(b, Ipv4Addr::new(10, 213, 0, 255));
        let b = directed_broadcast(
            Ipv4Addr::new(192, 168, 5, 9),
            Ipv4Addr::new(255, 255, 252, 0),
        );
        assert_eq!(b, Ipv4Addr::new(192, 168, 7, 255));
    }
}
