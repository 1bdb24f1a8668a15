//! Step 2 of the discovery chain: mDNS (`_hyphae._udp.local.`), through mdns-sd.
//!
//! Every node publishes one service instance (named by its node id) whose SRV points at
//! `<name>.local.` — so the node's host record is published too — on its admission port, with
//! TXT records `v=1`, `node=<id>`, `coord=<port>` and, for members, `mesh=<mesh id>` and
//! `tag=<MAC>`: a BLAKE3-keyed tag under the beacon key over `(mesh, node, port)`, so that a
//! member only trusts records of its own mesh. A joiner cannot check the tag (it has no key
//! yet); it filters on the mesh id of its token, and admission checks the CA pin.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use hyphae_core::pki::MeshId;
use hyphae_core::NodeId;
use mdns_sd::{ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo};

use crate::discovery::Standing;
use crate::packet::MacKey;

/// The DNS-SD service type of Hyphae nodes.
pub const SERVICE_TYPE: &str = "_hyphae._udp.local.";
const TAG_CONTEXT: &str = "hyphae 2026 mdns tag v1";

/// What this node publishes.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Its id (the instance name).
    pub node: NodeId,
    /// Its host name label (`<name>.local.`).
    pub host: String,
    /// Its mesh and MAC key, once a member.
    pub mesh: Option<(MeshId, MacKey)>,
    /// Its admission port (the SRV port).
    pub admission_port: u16,
    /// Its coordinator port.
    pub coordinator_port: u16,
    /// Its addresses (A/AAAA records); mdns-sd keeps them current.
    pub addresses: Vec<IpAddr>,
}

/// A Hyphae node found over mDNS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MdnsFind {
    /// Its id.
    pub node: String,
    /// Its mesh, as its TXT record claims.
    pub mesh: Option<String>,
    /// Whether the tag verified under our key (members only).
    pub verified: bool,
    /// Its admission endpoints.
    pub admission: Vec<SocketAddr>,
    /// Its host name.
    pub host: String,
}

/// The tag that binds a record to the mesh key.
pub fn tag(key: &MacKey, mesh: &MeshId, node: &str, port: u16) -> String {
    let k = key.derive_sub(TAG_CONTEXT);
    let mut h = blake3::Hasher::new_keyed(&k);
    h.update(mesh.as_bytes());
    h.update(node.as_bytes());
    h.update(&port.to_be_bytes());
    h.finalize().to_hex()[..32].to_string()
}

/// Judges a resolved record against where this node stands; `None` when it is not ours.
pub fn judge(
    node: &str,
    mesh: Option<&str>,
    tag_text: Option<&str>,
    port: u16,
    standing: &Standing,
) -> Option<bool> {
    let mesh_id = mesh.and_then(|m| m.parse::<MeshId>().ok())?;
    match standing {
        Standing::Member { mesh, key } => {
            if mesh_id != *mesh {
                return None;
            }
            let expected = tag(key, mesh, node, port);
            // Constant-time enough for a 128-bit tag via blake3's Hash comparison.
            let ok = tag_text
                .is_some_and(|t| blake3::hash(t.as_bytes()) == blake3::hash(expected.as_bytes()));
            ok.then_some(true)
        }
        Standing::Joining { wanted } => match wanted {
            Some(w) if *w != mesh_id => None,
            _ => Some(false),
        },
    }
}

/// The mdns-sd daemon with this node's registration.
pub struct Mdns {
    daemon: ServiceDaemon,
    registered: Option<String>,
}

impl Mdns {
    /// Starts the daemon (its own thread) and browses for Hyphae nodes.
    pub fn start() -> Result<(Mdns, mdns_sd::Receiver<ServiceEvent>), mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        let events = daemon.browse(SERVICE_TYPE)?;
        Ok((
            Mdns {
                daemon,
                registered: None,
            },
            events,
        ))
    }

    /// (Re)publishes this node's record.
    pub fn publish(&mut self, p: &Publication) -> Result<(), mdns_sd::Error> {
        if let Some(old) = self.registered.take() {
            let _ = self.daemon.unregister(&old);
        }
        let node = p.node.to_string();
        let mut txt: Vec<(String, String)> = vec![
            ("v".into(), "1".into()),
            ("node".into(), node.clone()),
            ("coord".into(), p.coordinator_port.to_string()),
        ];
        if let Some((mesh, key)) = &p.mesh {
            txt.push(("mesh".into(), mesh.to_string()));
            txt.push(("tag".into(), tag(key, mesh, &node, p.admission_port)));
        }
        let addrs: Vec<IpAddr> = p.addresses.clone();
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            &node,
            &format!("{}.local.", p.host),
            &addrs[..],
            p.admission_port,
            &txt[..],
        )?
        .enable_addr_auto();
        let fullname = info.get_fullname().to_string();
        self.daemon.register(info)?;
        self.registered = Some(fullname);
        Ok(())
    }

    /// The daemon, for the dashboard's registrations (`crate::dashboard_mdns`).
    pub fn daemon(&self) -> &ServiceDaemon {
        &self.daemon
    }

    /// Stops the daemon (sends goodbyes).
    pub fn shutdown(self) {
        let _ = self.daemon.shutdown();
    }
}

/// Reads what a resolved record says, judged against `standing`.
pub fn find_of(svc: &ResolvedService, standing: &Standing) -> Option<(String, MdnsFind)> {
    let node = svc.get_property_val_str("node")?.to_string();
    let mesh = svc.get_property_val_str("mesh");
    let verified = judge(
        &node,
        mesh,
        svc.get_property_val_str("tag"),
        svc.get_port(),
        standing,
    )?;
    let mut admission: Vec<SocketAddr> = svc
        .get_addresses()
        .iter()
        .map(|a| a.to_ip_addr())
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if crate::interfaces::is_link_local_v6(v6)))
        .map(|ip| SocketAddr::new(ip, svc.get_port()))
        .collect();
    admission.sort_by_key(|a| !a.is_ipv4());
    Some((
        svc.get_fullname().to_string(),
        MdnsFind {
            node,
            mesh: mesh.map(str::to_string),
            verified,
            admission,
            host: svc.host.clone(),
        },
    ))
}

/// The finds by full name; the service keeps one and drops removed instances.
pub type Finds = HashMap<String, MdnsFind>;

#[cfg(test)]
mod tests {
    use super::*;
    use hyphae_core::pki::SecretKey;

    fn key(b: u8) -> MacKey {
        MacKey::derive(&SecretKey([b; 32]))
    }

    #[test]
    fn members_trust_only_tagged_records_of_their_mesh() {
        let mesh = MeshId::from_bytes([7; 10]);
        let other = MeshId::from_bytes([8; 10]);
        let member = Standing::Member { mesh, key: key(7) };
        let good = tag(&key(7), &mesh, "n1", 7445);
        let m = mesh.to_string();
        assert_eq!(
            judge("n1", Some(&m), Some(&good), 7445, &member),
            Some(true)
        );
        assert_eq!(
            judge("n1", Some(&m), Some("00"), 7445, &member),
            None,
            "forged tag"
        );
        assert_eq!(
            judge("n2", Some(&m), Some(&good), 7445, &member),
            None,
            "tag of another node"
        );
        assert_eq!(
            judge("n1", Some(&m), Some(&good), 9, &member),
            None,
            "another port"
        );
        assert_eq!(
            judge("n1", Some(&other.to_string()), Some(&good), 7445, &member),
            None
        );
        assert_eq!(
            judge("n1", None, None, 7445, &member),
            None,
            "an unadmitted node"
        );
    }

    #[test]
    fn joiners_filter_on_their_token_mesh() {
        let mesh = MeshId::from_bytes([7; 10]);
        let m = mesh.to_string();
        let o = MeshId::from_bytes([8; 10]).to_string();
        let joining = Standing::Joining { wanted: Some(mesh) };
        assert_eq!(judge("n1", Some(&m), None, 7445, &joining), Some(false));
        assert_eq!(judge("n1", Some(&o), None, 7445, &joining), None);
        let any = Standing::Joining { wanted: None };
        assert_eq!(judge("n1", Some(&o), None, 7445, &any), Some(false));
    }
}
