//! Where a chunk's shards go: weighted rendezvous (highest random weight) hashing over the
//! storage nodes, k + m distinct nodes, spread over failure domains first.
//!
//! Each node gets the score `-w / ln(u)` where `u ∈ (0,1)` is a hash of (chunk, node) and `w`
//! its weight (free bytes × storage share × health). The highest scores win. This gives each
//! node a share of shards proportional to its weight, the same answer on every node, and when
//! a node leaves only the shards it held move.

use hyphae_core::NodeId;

/// A storage node as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The node.
    pub node: NodeId,
    /// Free bytes in its shard store.
    pub free_bytes: u64,
    /// The share of its disk the operator gives the mesh, 0..=1 (`[storage] share`).
    pub share: f64,
    /// 1.0 healthy, less when suspect, 0 when down (never chosen).
    pub health: f64,
    /// Failure domain label (rack, room, power strip); `None` = its own domain.
    pub domain: Option<String>,
}

impl Candidate {
    fn weight(&self) -> f64 {
        let w = (self.free_bytes as f64) * self.share.clamp(0.0, 1.0) * self.health.clamp(0.0, 1.0);
        if w.is_finite() {
            w
        } else {
            0.0
        }
    }
}

/// Why no placement was possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("placement needs {need} distinct storage nodes with free space, {have} are usable")]
pub struct PlacementError {
    /// Nodes asked for.
    pub need: usize,
    /// Usable nodes.
    pub have: usize,
}

/// The rendezvous score of `node` for `key`.
fn score(key: &[u8; 32], c: &Candidate) -> f64 {
    let mut h = blake3::Hasher::new();
    h.update(b"hyphae placement v1");
    h.update(key);
    h.update(c.node.as_bytes());
    let bytes = h.finalize();
    let mut x = [0u8; 8];
    x.copy_from_slice(&bytes.as_bytes()[..8]);
    // 53 random bits → u in (0, 1).
    let u = ((u64::from_le_bytes(x) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -c.weight() / u.ln()
}

/// Picks `count` distinct nodes for the chunk `key`, best first: one per failure domain while
/// domains last, then the best remaining nodes.
pub fn place(
    key: &[u8; 32],
    candidates: &[Candidate],
    count: usize,
) -> Result<Vec<NodeId>, PlacementError> {
    let mut scored: Vec<(f64, &Candidate)> = candidates
        .iter()
        .filter(|c| c.weight() > 0.0)
        .map(|c| (score(key, c), c))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.node.cmp(&b.1.node)));
    scored.dedup_by(|a, b| a.1.node == b.1.node);
    if scored.len() < count {
        return Err(PlacementError {
            need: count,
            have: scored.len(),
        });
    }
    let mut chosen: Vec<NodeId> = Vec::with_capacity(count);
    let mut domains: Vec<String> = Vec::new();
    for (_, c) in &scored {
        if chosen.len() == count {
            break;
        }
        let domain = c
            .domain
            .clone()
            .unwrap_or_else(|| format!("node:{}", c.node));
        if !domains.contains(&domain) {
            domains.push(domain);
            chosen.push(c.node);
        }
    }
    for (_, c) in &scored {
        if chosen.len() == count {
            break;
        }
        if !chosen.contains(&c.node) {
            chosen.push(c.node);
        }
    }
    Ok(chosen)
}

/// Picks `count` replacement nodes for a chunk, avoiding the nodes that already hold a shard
/// (`exclude`); used by healing.
pub fn place_replacements(
    key: &[u8; 32],
    candidates: &[Candidate],
    exclude: &[NodeId],
    count: usize,
) -> Result<Vec<NodeId>, PlacementError> {
    let rest: Vec<Candidate> = candidates
        .iter()
        .filter(|c| !exclude.contains(&c.node))
        .cloned()
        .collect();
    place(key, &rest, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    fn node(i: u8) -> NodeId {
        NodeId::from_public_key(&[i])
    }

    fn cands(n: u8) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                node: node(i),
                free_bytes: 1 << 30,
                share: 1.0,
                health: 1.0,
                domain: None,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn distinct_and_deterministic(key in any::<[u8; 32]>(), n in 1u8..20, want in 1usize..8) {
            let c = cands(n);
            match place(&key, &c, want) {
                Ok(p) => {
                    prop_assert_eq!(p.len(), want);
                    let set: HashSet<_> = p.iter().collect();
                    prop_assert_eq!(set.len(), want);
                    prop_assert_eq!(place(&key, &c, want).unwrap(), p);
                }
                Err(e) => prop_assert!((n as usize) < want, "{e}"),
            }
        }

        #[test]
        fn removing_an_unchosen_node_changes_nothing(key in any::<[u8; 32]>(), n in 7u8..16) {
            let c = cands(n);
            let p = place(&key, &c, 6).unwrap();
            let unchosen = c.iter().find(|x| !p.contains(&x.node)).unwrap().node;
            let fewer: Vec<_> = c.iter().filter(|x| x.node != unchosen).cloned().collect();
            prop_assert_eq!(place(&key, &fewer, 6).unwrap(), p);
        }
    }

    #[test]
    fn balance_follows_weight_and_skips_down_nodes() {
        let mut c = cands(6);
        c[0].free_bytes = 2 << 30; // twice the weight
        c[5].health = 0.0; // down
        let mut count: HashMap<NodeId, usize> = HashMap::new();
        for i in 0u32..6000 {
            let key = *blake3::hash(&i.to_le_bytes()).as_bytes();
            for n in place(&key, &c, 1).unwrap() {
                *count.entry(n).or_default() += 1;
            }
        }
        assert!(!count.contains_key(&node(5)));
        // Weights 2:1:1:1:1 → node 0 ≈ 2000, the others ≈ 1000 each.
        let heavy = count[&node(0)] as f64;
        for i in 1..5 {
            let light = count[&node(i)] as f64;
            assert!((800.0..1200.0).contains(&light), "node {i}: {light}");
        }
        assert!((1700.0..2300.0).contains(&heavy), "heavy: {heavy}");
    }

    #[test]
    fn failure_domains_are_spread_first() {
        let mut c = cands(6);
        for (i, x) in c.iter_mut().enumerate() {
            x.domain = Some(format!("rack{}", i % 3));
        }
        for i in 0u32..200 {
            let key = *blake3::hash(&i.to_le_bytes()).as_bytes();
            let p = place(&key, &c, 3).unwrap();
            let racks: HashSet<_> = p
                .iter()
                .map(|n| c.iter().find(|x| x.node == *n).unwrap().domain.clone())
                .collect();
            assert_eq!(racks.len(), 3);
        }
        let key = [7u8; 32];
        let p = place(&key, &c, 4).unwrap();
        let r = place_replacements(&key, &c, &p, 2).unwrap();
        assert!(r.iter().all(|n| !p.contains(n)));
    }
}
