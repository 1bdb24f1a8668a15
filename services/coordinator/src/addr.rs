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
            let ip = IpAddr::V6(s6.ip());
            if !ip.is_loopback() && dialable_by_others(ip) && v6.is_none() {
                v6 = Some(ip);
            }
        }
    }
    v6
}

/// Whether other members can dial `ip` as the directory writes it down. An IPv6 link-local
/// address means nothing without the interface it was seen on, and that differs per host (the
/// directory keeps no zone): a node recorded at one is unreachable for Raft and for its shards.
pub fn dialable_by_others(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_unspecified(),
        IpAddr::V6(v6) => !v6.is_unspecified() && !v6.is_unicast_link_local(),
    }
}

/// `IP:PORT`, bracketing IPv6.
pub fn join_host_port(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// How long a coordinator waits for the network to give the host an address worth
/// advertising before it settles for loopback.
pub const ADDRESS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// The address to advertise: [`advertised_ip`], waiting up to `patience` for one. On the
/// appliance the coordinator starts with `network.target`, before DHCP has answered; the
/// address it picks goes into the Raft membership and the directory, so settling for loopback
/// at once would leave other nodes unable to dial it. A node that listens on loopback only
/// (development) has nothing to wait for.
pub async fn wait_for_advertised_ip(
    listen: IpAddr,
    patience: std::time::Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) -> IpAddr {
    let fallback = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    if listen.is_loopback() {
        return advertised_ip().unwrap_or(fallback);
    }
    let deadline = tokio::time::Instant::now() + patience;
    let mut said = false;
    loop {
        if let Some(ip) = advertised_ip() {
            return ip;
        }
        if !said {
            said = true;
            tracing::info!("no routable address yet; waiting for the network");
            hyphae_core::notify::status("coordinator: waiting for a network address");
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                "no routable address after {}s; advertising loopback (other nodes cannot reach \
                 this coordinator until it restarts with one)",
                patience.as_secs()
            );
            return fallback;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return fallback,
            _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_ipv6_and_unspecified_addresses_are_not_dialable_by_others() {
        for bad in ["fe80::5054:ff:fe48:5902", "febf::1", "::", "0.0.0.0"] {
            assert!(!dialable_by_others(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "169.254.160.33",
            "10.0.0.2",
            "2001:db8::1",
            "fd00::1",
            "127.0.0.1",
        ] {
            assert!(dialable_by_others(good.parse().unwrap()), "{good}");
        }
    }
}
