//! Which nodes keep a VM's replicas (sans-IO): backups named by the user (node name, node id
//! or `IP[:PORT]`) are resolved through the directory; missing ones are chosen among live
//! nodes by rendezvous hashing of (VM, node), so choices spread VMs over the mesh, are
//! stable while the mesh is, and need no coordination.

use std::net::IpAddr;

use hyphae_core::NodeId;

/// A node as backup choice sees it (from the coordinator's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Its first address, where its memrep listens.
    pub addr: Option<IpAddr>,
    /// Whether the directory says it is up (not suspect, down, revoked or gone).
    pub up: bool,
}

impl Member {
    /// From the directory's entry.
    pub fn from_directory(n: &crate::tables::DirectoryEntry) -> Member {
        Member {
            id: n.id,
            name: n.name.clone(),
            addr: n.addresses.iter().find_map(|a| a.parse().ok()),
            up: n.status == "up",
        }
    }
}

/// Why the backups asked for cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    /// A name that matches no node.
    #[error("no node called {0:?} in the directory")]
    Unknown(String),
    /// A named node that is not up.
    #[error("node {0} is not up")]
    NotUp(String),
    /// The primary itself, or the same node twice.
    #[error("node {0} cannot be a backup here (it is the primary or named twice)")]
    Duplicate(String),
    /// Fewer live nodes than replicas wanted.
    #[error("{wanted} backups wanted, only {live} live nodes other than the primary")]
    TooFew {
        /// Backups asked for.
        wanted: usize,
        /// Candidates there are.
        live: usize,
    },
}

/// Finds the node a user named: by id, by name, or by address (`IP` or `IP:PORT`).
pub fn resolve<'a>(text: &str, members: &'a [Member]) -> Result<&'a Member, ChoiceError> {
    let text = text.trim();
    if let Ok(id) = text.parse::<NodeId>() {
        if let Some(m) = members.iter().find(|m| m.id == id) {
            return Ok(m);
        }
    }
    if let Some(m) = members.iter().find(|m| m.name == text) {
        return Ok(m);
    }
    let ip = text
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| text.parse::<IpAddr>());
    if let Ok(ip) = ip {
        if let Some(m) = members.iter().find(|m| m.addr == Some(ip)) {
            return Ok(m);
        }
    }
    Err(ChoiceError::Unknown(text.to_string()))
}

/// Rendezvous score of `node` for `vm`: the highest scores get the replicas.
fn score(vm: &str, node: &NodeId) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(vm.as_bytes());
    h.update(&[0]);
    h.update(node.as_bytes());
    *h.finalize().as_bytes()
}

/// Adds live nodes to `have` until it holds `wanted` backups: never a node in `exclude` (the
/// primary, a dead old primary), never twice. Returns what could be had (possibly fewer).
pub fn fill(
    vm: &str,
    members: &[Member],
    exclude: &[NodeId],
    mut have: Vec<NodeId>,
    wanted: usize,
) -> Vec<NodeId> {
    let mut candidates: Vec<&Member> = members
        .iter()
        .filter(|m| m.up && m.addr.is_some())
        .filter(|m| !exclude.contains(&m.id) && !have.contains(&m.id))
        .collect();
    candidates.sort_by_key(|m| std::cmp::Reverse(score(vm, &m.id)));
    for m in candidates {
        if have.len() >= wanted {
            break;
        }
        have.push(m.id);
    }
    have
}

/// The backups of a new VM on `primary`: the named ones (resolved, live, distinct, not the
/// primary), then chosen ones up to `wanted`.
pub fn choose(
    vm: &str,
    members: &[Member],
    primary: NodeId,
    named: &[String],
    wanted: usize,
) -> Result<Vec<NodeId>, ChoiceError> {
    let mut have = Vec::new();
    for text in named {
        let m = resolve(text, members)?;
        if m.id == primary || have.contains(&m.id) {
            return Err(ChoiceError::Duplicate(text.clone()));
        }
        if !m.up || m.addr.is_none() {
            return Err(ChoiceError::NotUp(text.clone()));
        }
        have.push(m.id);
    }
    let wanted = wanted.max(have.len());
    let out = fill(vm, members, &[primary], have, wanted);
    if out.len() < wanted {
        let live = members
            .iter()
            .filter(|m| m.up && m.addr.is_some() && m.id != primary)
            .count();
        return Err(ChoiceError::TooFew { wanted, live });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u8, up: bool) -> Member {
        Member {
            id: NodeId::from_raw([i; 10]),
            name: format!("n{i}"),
            addr: Some(IpAddr::from([10, 0, 0, i])),
            up,
        }
    }

    fn id(i: u8) -> NodeId {
        NodeId::from_raw([i; 10])
    }

    #[test]
    fn names_ids_and_addresses_resolve() {
        let ms = vec![member(1, true), member(2, true)];
        assert_eq!(resolve("n2", &ms).unwrap().id, id(2));
        assert_eq!(resolve(&id(1).to_string(), &ms).unwrap().id, id(1));
        assert_eq!(resolve("10.0.0.2:7444", &ms).unwrap().id, id(2));
        assert_eq!(resolve("10.0.0.1", &ms).unwrap().id, id(1));
        assert_eq!(resolve("n9", &ms), Err(ChoiceError::Unknown("n9".into())));
    }

    #[test]
    fn chosen_backups_are_live_distinct_and_not_the_primary() {
        let ms: Vec<Member> = (1..=5).map(|i| member(i, i != 3)).collect();
        for vm in ["a", "b", "c", "d", "e", "f"] {
            let b = choose(vm, &ms, id(1), &[], 2).unwrap();
            assert_eq!(b.len(), 2);
            assert_ne!(b[0], b[1]);
            assert!(!b.contains(&id(1)) && !b.contains(&id(3)), "{b:?}");
            // Stable: the same answer twice.
            assert_eq!(choose(vm, &ms, id(1), &[], 2).unwrap(), b);
        }
    }

    #[test]
    fn named_backups_come_first_and_are_checked() {
        let ms: Vec<Member> = (1..=4).map(|i| member(i, i != 4)).collect();
        let b = choose("vm", &ms, id(1), &["n3".into()], 2).unwrap();
        assert_eq!(b[0], id(3));
        assert_eq!(b[1], id(2));
        assert_eq!(
            choose("vm", &ms, id(1), &["n1".into()], 1),
            Err(ChoiceError::Duplicate("n1".into()))
        );
        assert_eq!(
            choose("vm", &ms, id(1), &["n2".into(), "n2".into()], 2),
            Err(ChoiceError::Duplicate("n2".into()))
        );
        assert_eq!(
            choose("vm", &ms, id(1), &["n4".into()], 1),
            Err(ChoiceError::NotUp("n4".into()))
        );
        assert_eq!(
            choose("vm", &ms, id(1), &[], 3),
            Err(ChoiceError::TooFew { wanted: 3, live: 2 })
        );
    }

    #[test]
    fn fill_keeps_what_it_has_and_skips_the_excluded() {
        let ms: Vec<Member> = (1..=4).map(|i| member(i, true)).collect();
        let b = fill("vm", &ms, &[id(1), id(2)], vec![id(3)], 2);
        assert_eq!(b, vec![id(3), id(4)]);
        // Not enough candidates: what can be had.
        assert_eq!(
            fill("vm", &ms, &[id(1), id(2), id(4)], vec![id(3)], 2),
            vec![id(3)]
        );
    }
}
