//! mDNS for the web dashboard: `_https._tcp.local.` for every node's gateway, and the name
//! `hyphae.local.` for "a dashboard of this mesh".
//!
//! Every node runs a gateway with the dashboard, and every node advertises it as
//! `Hyphae on <name>._https._tcp.local.` (SRV to its own `<name>.local.`, the gateway port from
//! `[gateway] port`, TXT `path=/`, `node=<id>`).
//!
//! `hyphae.local.` must be one name for the whole mesh. mDNS host records are *unique*
//! records: mdns-sd probes a name before it answers for it and, when another host already
//! answers, renames its own (`hyphae-2.local.`), so "every node answers with its own addresses"
//! cannot be done with it. Only the **queen** publishes `hyphae.local.` (and the instance
//! `Hyphae._https._tcp.local.` pointing at it); a node that stops being queen withdraws both
//! (goodbye packets), and the new queen takes them over at its next role check (every 5 s).
//! If the new queen probes while the old one still answers, mdns-sd renames the new queen's
//! records; the beacon notices the rename and publishes again at the next role check.

use std::net::IpAddr;

use hyphae_core::NodeId;
use mdns_sd::{DaemonEvent, Receiver, ServiceDaemon, ServiceInfo};

/// The DNS-SD service type browsers and `avahi-browse` list web servers under.
pub const HTTPS_TYPE: &str = "_https._tcp.local.";
/// The mesh-wide dashboard name (answered by the queen).
pub const DASHBOARD_HOST: &str = "hyphae.local.";
/// The queen's instance name under `_https._tcp`.
pub const CANONICAL_INSTANCE: &str = "Hyphae";

/// What this node advertises for its dashboard.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Its id (TXT `node`).
    pub node: NodeId,
    /// Its host label (`<host>.local.`).
    pub host: String,
    /// The gateway's HTTPS port.
    pub port: u16,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Whether this node is the queen (then it also answers `hyphae.local.`).
    pub queen: bool,
}

/// The service records for `d`: the node's own instance, plus the mesh-wide one on the queen.
pub fn records(d: &Dashboard) -> Result<Vec<ServiceInfo>, mdns_sd::Error> {
    let node = d.node.to_string();
    let txt = [("path", "/"), ("node", node.as_str())];
    let own = ServiceInfo::new(
        HTTPS_TYPE,
        &format!("Hyphae on {}", d.host),
        &format!("{}.local.", d.host),
        &d.addresses[..],
        d.port,
        &txt[..],
    )?
    .enable_addr_auto();
    let mut out = vec![own];
    if d.queen {
        let mesh_wide = ServiceInfo::new(
            HTTPS_TYPE,
            CANONICAL_INSTANCE,
            DASHBOARD_HOST,
            &d.addresses[..],
            d.port,
            &txt[..],
        )?
        .enable_addr_auto();
        out.push(mesh_wide);
    }
    Ok(out)
}

/// This node's dashboard registrations in the mDNS daemon.
pub struct DashboardAds {
    registered: Vec<String>,
    queen: bool,
    events: Receiver<DaemonEvent>,
}

impl DashboardAds {
    /// Watches the daemon for renames of the mesh-wide names.
    pub fn new(daemon: &ServiceDaemon) -> Result<DashboardAds, mdns_sd::Error> {
        Ok(DashboardAds {
            registered: Vec::new(),
            queen: false,
            events: daemon.monitor()?,
        })
    }

    /// Whether what is published was published as queen.
    pub fn published_as_queen(&self) -> bool {
        self.queen
    }

    /// Replaces the registrations with those for `d`.
    pub fn publish(&mut self, daemon: &ServiceDaemon, d: &Dashboard) -> Result<(), mdns_sd::Error> {
        for old in self.registered.drain(..) {
            let _ = daemon.unregister(&old);
        }
        self.queen = d.queen;
        for info in records(d)? {
            let fullname = info.get_fullname().to_string();
            daemon.register(info)?;
            self.registered.push(fullname);
        }
        Ok(())
    }

    /// Whether mdns-sd renamed `hyphae.local.` or the queen's instance since the last call
    /// (another host still answered for it when this node probed).
    pub fn lost_the_name(&self) -> bool {
        let mut lost = false;
        while let Ok(event) = self.events.try_recv() {
            if let DaemonEvent::NameChange(change) = event {
                if change.original == DASHBOARD_HOST
                    || change
                        .original
                        .starts_with(&format!("{CANONICAL_INSTANCE}.{HTTPS_TYPE}"))
                {
                    tracing::warn!(new = %change.new_name, "mDNS renamed the dashboard name; publishing it again later");
                    lost = true;
                }
            }
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dashboard(queen: bool) -> Dashboard {
        Dashboard {
            node: NodeId::from_raw([1; 10]),
            host: "pi-kitchen".into(),
            port: 8443,
            addresses: vec!["10.0.0.5".parse().unwrap()],
            queen,
        }
    }

    #[test]
    fn every_node_advertises_its_gateway_and_only_the_queen_hyphae_local() {
        let bee = records(&dashboard(false)).unwrap();
        assert_eq!(bee.len(), 1);
        assert_eq!(
            bee[0].get_fullname(),
            "Hyphae on pi-kitchen._https._tcp.local."
        );
        assert_eq!(bee[0].get_hostname(), "pi-kitchen.local.");
        assert_eq!(bee[0].get_port(), 8443);
        assert_eq!(bee[0].get_property_val_str("path"), Some("/"));

        let queen = records(&dashboard(true)).unwrap();
        assert_eq!(queen.len(), 2);
        assert_eq!(queen[1].get_fullname(), "Hyphae._https._tcp.local.");
        assert_eq!(queen[1].get_hostname(), DASHBOARD_HOST);
        assert_eq!(queen[1].get_port(), 8443);
    }
}
