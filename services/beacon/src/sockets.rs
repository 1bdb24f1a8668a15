//! The beacon's two UDP sockets: IPv4 (broadcast) and IPv6 (link-local multicast ff02::1).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// IPv6 all-nodes, link-local scope.
pub const ALL_NODES_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The bound sockets; either may be missing (a host without IPv6, a port in use).
pub struct BeaconSockets {
    /// IPv4, `0.0.0.0:port`, broadcast allowed.
    pub v4: Option<UdpSocket>,
    /// IPv6 only, `[::]:port`, joined to ff02::1 on every interface.
    pub v6: Option<UdpSocket>,
    joined: BTreeSet<u32>,
    port: u16,
}

fn bind_v4(port: u16) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    UdpSocket::from_std(s.into())
}

fn bind_v6(port: u16) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.set_multicast_loop_v6(false)?;
    s.set_multicast_hops_v6(1)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    UdpSocket::from_std(s.into())
}

impl BeaconSockets {
    /// Binds both; fails only when neither can be bound.
    pub fn bind(port: u16) -> std::io::Result<BeaconSockets> {
        let v4 = bind_v4(port);
        let v6 = bind_v6(port);
        if let (Err(e4), Err(e6)) = (&v4, &v6) {
            return Err(std::io::Error::new(
                e4.kind(),
                format!("udp/{port}: IPv4: {e4}; IPv6: {e6}"),
            ));
        }
        if let Err(e) = &v6 {
            tracing::info!(error = %e, "no IPv6 beacon socket; IPv4 broadcast only");
        }
        Ok(BeaconSockets {
            v4: v4.ok(),
            v6: v6.ok(),
            joined: BTreeSet::new(),
            port,
        })
    }

    /// Joins ff02::1 on interfaces that appeared since the last call.
    pub fn join_multicast(&mut self, indexes: &BTreeSet<u32>) {
        let Some(v6) = &self.v6 else { return };
        for index in indexes {
            if self.joined.contains(index) {
                continue;
            }
            match v6.join_multicast_v6(&ALL_NODES_V6, *index) {
                Ok(()) => {
                    self.joined.insert(*index);
                }
                // Already a member (the kernel joins ff02::1 itself on some setups): fine.
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    self.joined.insert(*index);
                }
                Err(e) => tracing::debug!(index, error = %e, "cannot join ff02::1 yet"),
            }
        }
        self.joined.retain(|i| indexes.contains(i));
    }

    /// Sends `packet` to every broadcast address and to ff02::1 on every interface; returns
    /// how many copies went out.
    pub async fn broadcast(
        &self,
        packet: &[u8],
        broadcast: &BTreeSet<Ipv4Addr>,
        multicast: &BTreeSet<u32>,
    ) -> usize {
        let mut sent = 0;
        if let Some(v4) = &self.v4 {
            for b in broadcast {
                match v4.send_to(packet, SocketAddr::from((*b, self.port))).await {
                    Ok(_) => sent += 1,
                    Err(e) => tracing::debug!(to = %b, error = %e, "beacon broadcast failed"),
                }
            }
        }
        if let Some(v6) = &self.v6 {
            for index in multicast {
                let to = SocketAddrV6::new(ALL_NODES_V6, self.port, 0, *index);
                match v6.send_to(packet, to).await {
                    Ok(_) => sent += 1,
                    // Before DAD finishes there is no source address yet: next tick.
                    Err(e) => tracing::debug!(index, error = %e, "beacon multicast failed"),
                }
            }
        }
        sent
    }

    /// Sends `packet` to one address (an answer to a query).
    pub async fn send_to(&self, packet: &[u8], to: SocketAddr) -> bool {
        let socket = match to {
            SocketAddr::V4(_) => self.v4.as_ref(),
            SocketAddr::V6(_) => self.v6.as_ref(),
        };
        match socket {
            Some(s) => s.send_to(packet, to).await.is_ok(),
            None => false,
        }
    }
}

/// Receives on an optional socket (pending forever when absent, for `select!`).
pub async fn recv(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}
