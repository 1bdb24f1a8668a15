//! Resolution of a mesh name on a snapshot: the one function both the DNS server and
//! `GET /api/v1/resolve/NAME` answer from.

use std::net::IpAddr;

use serde::Serialize;

use super::name::{parse, MeshName, NameError};
use super::snapshot::{MeshSnapshot, NodeEntry};
use super::ZONE;

/// How many user names may point at each other before resolution gives up.
const MAX_ALIAS_DEPTH: usize = 4;

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Record {
    /// An IPv4 address.
    A {
        /// The address.
        value: IpAddr,
    },
    /// An IPv6 address.
    Aaaa {
        /// The address.
        value: IpAddr,
    },
    /// A service instance: `priority weight port target`.
    Srv {
        /// `0 0 PORT TARGET.` (the presentation form).
        value: String,
        /// The port.
        #[serde(skip)]
        port: u16,
        /// The target host (fully qualified).
        #[serde(skip)]
        target: String,
    },
    /// An alias to another mesh name (fully qualified).
    Cname {
        /// The target.
        value: String,
    },
}

/// The outcome of a resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The name exists; its records (possibly none of the asked type).
    Found(Vec<Record>),
    /// The name does not exist in the zone.
    NxDomain,
    /// The name is not in our zone at all.
    NotOurs,
}

fn address_records(addresses: &[IpAddr]) -> Vec<Record> {
    addresses
        .iter()
        .map(|a| match a {
            IpAddr::V4(_) => Record::A { value: *a },
            IpAddr::V6(_) => Record::Aaaa { value: *a },
        })
        .collect()
}

fn find_node<'a>(snapshot: &'a MeshSnapshot, label: &str) -> Option<&'a NodeEntry> {
    snapshot
        .nodes
        .iter()
        .find(|n| n.up && (n.name == label || n.id == label))
}

/// The nodes that are up and run `service`.
fn service_nodes<'a>(snapshot: &'a MeshSnapshot, service: &str) -> Vec<(&'a NodeEntry, u16)> {
    snapshot
        .nodes
        .iter()
        .filter(|n| n.up)
        .filter_map(|n| {
            let port = snapshot
                .services
                .get(&n.id)?
                .iter()
                .find(|s| s.name == service)?
                .port;
            Some((n, port))
        })
        .collect()
}

/// Resolves `name` on `snapshot`.
pub fn resolve(snapshot: &MeshSnapshot, name: &str) -> Resolution {
    resolve_depth(snapshot, name, 0)
}

fn resolve_depth(snapshot: &MeshSnapshot, name: &str, depth: usize) -> Resolution {
    let parsed = match parse(name) {
        Ok(p) => p,
        Err(NameError::OutOfZone) => return Resolution::NotOurs,
        Err(_) => return Resolution::NxDomain,
    };
    match parsed {
        MeshName::Apex => Resolution::Found(vec![]),
        MeshName::Node(label) => match find_node(snapshot, &label) {
            Some(n) => Resolution::Found(address_records(&n.addresses)),
            None => Resolution::NxDomain,
        },
        MeshName::Service(service) => {
            let nodes = service_nodes(snapshot, &service);
            if nodes.is_empty() {
                return Resolution::NxDomain;
            }
            let mut records = vec![];
            for (n, port) in nodes {
                records.extend(address_records(&n.addresses));
                // Ids are unique; names need not be.
                let target = format!("{}.nodes.{ZONE}.", n.id);
                records.push(Record::Srv {
                    value: format!("0 0 {port} {target}"),
                    port,
                    target,
                });
            }
            Resolution::Found(records)
        }
        MeshName::BuiltIn(_) => {
            // Every gateway serves the dashboard, files and admission: all up gateways.
            let records: Vec<Record> = service_nodes(snapshot, "gateway")
                .into_iter()
                .flat_map(|(n, _)| address_records(&n.addresses))
                .collect();
            if records.is_empty() {
                Resolution::NxDomain
            } else {
                Resolution::Found(records)
            }
        }
        MeshName::User(label) => {
            let Some(target) = snapshot.names.get(&label) else {
                return Resolution::NxDomain;
            };
            if let Ok(ip) = target.parse::<IpAddr>() {
                return Resolution::Found(address_records(&[ip]));
            }
            if depth >= MAX_ALIAS_DEPTH {
                return Resolution::NxDomain;
            }
            let fqdn = fully_qualified(target);
            let mut records = vec![Record::Cname {
                value: fqdn.clone(),
            }];
            if let Resolution::Found(more) = resolve_depth(snapshot, &fqdn, depth + 1) {
                records.extend(more);
            }
            Resolution::Found(records)
        }
    }
}

/// `target` as a fully qualified name in the zone.
pub fn fully_qualified(target: &str) -> String {
    let t = target.trim_end_matches('.').to_ascii_lowercase();
    if t == ZONE || t.ends_with(&format!(".{ZONE}")) {
        format!("{t}.")
    } else {
        format!("{t}.{ZONE}.")
    }
}

/// Checks a name's target as `hyphae name set` gives it: an IP address or a mesh name.
pub fn check_target(target: &str) -> Result<(), NameError> {
    if target.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    parse(&fully_qualified(target)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::snapshot::ServiceEntry;

    fn snapshot() -> MeshSnapshot {
        let node = |id: &str, name: &str, ip: &str, up: bool| NodeEntry {
            id: id.into(),
            name: name.into(),
            addresses: vec![ip.parse().unwrap()],
            up,
        };
        let svc = |name: &str, port| ServiceEntry {
            name: name.into(),
            port,
        };
        MeshSnapshot {
            nodes: vec![
                node("aaaa", "n1", "10.0.0.1", true),
                node("bbbb", "n2", "10.0.0.2", true),
                node("cccc", "n3", "fd00::3", false),
            ],
            services: [
                (
                    "aaaa".into(),
                    vec![svc("gateway", 8443), svc("chunkstore", 7442)],
                ),
                ("bbbb".into(), vec![svc("gateway", 8443)]),
                ("cccc".into(), vec![svc("chunkstore", 7442)]),
            ]
            .into(),
            names: [
                ("wiki".into(), "10.9.9.9".into()),
                ("store".into(), "chunkstore.services".into()),
                ("loop".into(), "loop".into()),
            ]
            .into(),
        }
    }

    #[test]
    fn answers_nodes_services_builtins_and_user_names() {
        let s = snapshot();
        assert_eq!(
            resolve(&s, "n1.nodes.hyphae.internal."),
            Resolution::Found(vec![Record::A {
                value: "10.0.0.1".parse().unwrap()
            }])
        );
        assert_eq!(resolve(&s, "aaaa.nodes"), resolve(&s, "n1.nodes"));
        assert_eq!(resolve(&s, "n3.nodes"), Resolution::NxDomain, "down node");
        let Resolution::Found(r) = resolve(&s, "chunkstore.services") else {
            panic!()
        };
        assert_eq!(r.len(), 2, "only the healthy instance: {r:?}");
        assert!(matches!(&r[1], Record::Srv { port: 7442, .. }));
        let Resolution::Found(r) = resolve(&s, "hypermesh") else {
            panic!()
        };
        assert_eq!(r.len(), 2);
        assert_eq!(
            resolve(&s, "wiki.hyphae.internal."),
            Resolution::Found(vec![Record::A {
                value: "10.9.9.9".parse().unwrap()
            }])
        );
        let Resolution::Found(r) = resolve(&s, "store") else {
            panic!()
        };
        assert!(
            matches!(&r[0], Record::Cname { value } if value == "chunkstore.services.hyphae.internal.")
        );
        assert!(matches!(resolve(&s, "loop"), Resolution::Found(_)));
        assert_eq!(resolve(&s, "nope"), Resolution::NxDomain);
        assert_eq!(resolve(&s, "nope.services"), Resolution::NxDomain);
        assert_eq!(resolve(&s, "example.com."), Resolution::NotOurs);
        assert!(check_target("10.1.1.1").is_ok());
        assert!(check_target("n1.nodes").is_ok());
        assert!(check_target("bad name!").is_err());
    }
}
