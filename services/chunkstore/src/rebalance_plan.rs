//! Rebalancing after joins, without I/O: which single shard of a chunk should move where so
//! that, one move at a time, the chunk's holders become its rendezvous placement.
//!
//! The target is computed over *stable* weights: capacity rounded down to a power of two ×
//! `[storage] share`, not free bytes (which move with every write and would make shards chase
//! a moving target). A move is proposed only when a node of the target holds nothing of the
//! chunk and a holder is outside the target (or holds two shards, after a heal on a small
//! mesh): the copy is made first and the old one deleted after the placement is committed, so a
//! move never lowers redundancy.

use hyphae_core::NodeId;

use crate::placement::{place, Candidate};

/// A storage node for rebalancing: its stable weight inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct StableNode {
    /// The node.
    pub node: NodeId,
    /// What the node can hold in all (bytes).
    pub capacity_bytes: u64,
    /// `[storage] share`.
    pub share: f64,
    /// Up now.
    pub up: bool,
    /// Failure domain.
    pub domain: Option<String>,
}

/// One shard to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMove {
    /// Shard index in the chunk.
    pub index: usize,
    /// Current holder.
    pub from: NodeId,
    /// New holder.
    pub to: NodeId,
}

/// Capacity rounded down to a power of two (so small changes do not move the target).
fn stable_capacity(bytes: u64) -> u64 {
    if bytes == 0 {
        0
    } else {
        1u64 << (63 - bytes.leading_zeros())
    }
}

/// The placement candidates with stable weights.
pub fn stable_candidates(nodes: &[StableNode]) -> Vec<Candidate> {
    nodes
        .iter()
        .map(|n| Candidate {
            node: n.node,
            free_bytes: stable_capacity(n.capacity_bytes),
            share: n.share,
            health: if n.up { 1.0 } else { 0.0 },
            domain: n.domain.clone(),
        })
        .collect()
}

/// The next move for a chunk whose shard `i` is on `holders[i]`, if any. Nothing moves while a
/// holder is down (healing's job) or when the mesh has fewer usable nodes than shards.
pub fn next_move(key: &[u8; 32], holders: &[NodeId], nodes: &[StableNode]) -> Option<ShardMove> {
    if holders
        .iter()
        .any(|h| !nodes.iter().any(|n| n.node == *h && n.up))
    {
        return None;
    }
    let target = place(key, &stable_candidates(nodes), holders.len()).ok()?;
    let to = *target.iter().find(|t| !holders.contains(t))?;
    // A holder outside the target, else one holding two shards of this chunk.
    let index = holders
        .iter()
        .position(|h| !target.contains(h))
        .or_else(|| {
            holders
                .iter()
                .enumerate()
                .find(|(i, h)| holders[..*i].contains(h))
                .map(|(i, _)| i)
        })?;
    Some(ShardMove {
        index,
        from: holders[index],
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(i: u8) -> NodeId {
        NodeId::from_public_key(&[i])
    }

    fn nodes(n: u8) -> Vec<StableNode> {
        (0..n)
            .map(|i| StableNode {
                node: node(i),
                capacity_bytes: (10 << 30) + u64::from(i) * 1000,
                share: 1.0,
                up: true,
                domain: None,
            })
            .collect()
    }

    /// Applies moves until none is proposed; returns the holders and the number of moves.
    fn settle(
        key: &[u8; 32],
        mut holders: Vec<NodeId>,
        mesh: &[StableNode],
    ) -> (Vec<NodeId>, usize) {
        let mut moves = 0;
        while let Some(m) = next_move(key, &holders, mesh) {
            assert_eq!(holders[m.index], m.from);
            assert!(!holders.contains(&m.to), "a move never doubles up a node");
            holders[m.index] = m.to;
            moves += 1;
            assert!(moves <= holders.len(), "moves must converge");
        }
        (holders, moves)
    }

    proptest! {
        #[test]
        fn settled_chunks_stay_and_joins_converge_to_the_target(key in any::<[u8; 32]>(), n in 3u8..10, width in 2usize..4) {
            let before = nodes(n);
            prop_assume!((n as usize) >= width);
            let placed = place(&key, &stable_candidates(&before), width).unwrap();
            // Placed by the stable target: nothing to do.
            prop_assert_eq!(next_move(&key, &placed, &before), None);
            // A node joins: at most as many moves as shards, ending on the new target, with
            // every intermediate state on distinct nodes.
            let after = nodes(n + 1);
            let (end, moves) = settle(&key, placed.clone(), &after);
            let target = place(&key, &stable_candidates(&after), width).unwrap();
            let mut a = end.clone(); a.sort();
            let mut b = target.clone(); b.sort();
            prop_assert_eq!(a, b);
            prop_assert!(moves <= 1, "one join moves at most one shard of a chunk, moved {}", moves);
        }
    }

    #[test]
    fn nothing_moves_while_a_holder_is_down_and_doubles_are_split() {
        let mut mesh = nodes(4);
        let key = [7u8; 32];
        let holders = vec![node(0), node(1), node(2)];
        mesh[1].up = false;
        assert_eq!(next_move(&key, &holders, &mesh), None);
        // After a heal on a small mesh one node holds two shards; a join splits them.
        let mesh = nodes(4);
        let doubled = vec![node(0), node(0), node(1)];
        let (end, _) = settle(&key, doubled, &mesh);
        let mut distinct = end.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
    }

    #[test]
    fn capacity_rounds_to_powers_of_two() {
        assert_eq!(stable_capacity(0), 0);
        assert_eq!(stable_capacity(1), 1);
        assert_eq!(stable_capacity((10 << 30) + 12345), 8 << 30);
    }
}
