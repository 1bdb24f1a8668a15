//! Who should vote: the queen's choice of princes, as a pure function (tested without Raft).
//!
//! The voter count is 1 for one or two members (two voters would halve availability: either
//! loss stops the mesh), 3 from three members on and 5 from seven on. Princes are chosen among
//! healthy members by long uptime, then low heartbeat jitter. Hysteresis: a healthy prince is
//! never swapped for a slightly better bee, only an unhealthy one is replaced, and only the
//! surplus is demoted when the target shrinks.

use std::collections::BTreeSet;

use hyphae_core::NodeId;

/// What the queen knows about a member when choosing princes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The member.
    pub id: NodeId,
    /// Whether it is up (heartbeating); suspect and down members are not healthy.
    pub healthy: bool,
    /// Its process uptime (seconds).
    pub uptime_s: u64,
    /// Its heartbeat jitter (milliseconds).
    pub jitter_ms: u32,
}

/// How many voters a mesh of `members` nodes keeps.
pub fn voter_target(members: usize) -> usize {
    match members {
        0..=2 => 1,
        3..=6 => 3,
        _ => 5,
    }
}

/// The better prince first: longer uptime, then lower jitter, then id (deterministic).
fn rank(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.uptime_s
        .cmp(&a.uptime_s)
        .then(a.jitter_ms.cmp(&b.jitter_ms))
        .then(a.id.cmp(&b.id))
}

/// The voter set the queen wants, given the current voters and every member.
pub fn desired_voters(
    queen: NodeId,
    current: &BTreeSet<NodeId>,
    members: &[Candidate],
) -> BTreeSet<NodeId> {
    let target = voter_target(members.len());
    let healthy = |id: &NodeId| members.iter().any(|c| c.id == *id && c.healthy);
    // Keep the queen and every healthy current voter that is still a member.
    let mut voters: BTreeSet<NodeId> = current
        .iter()
        .filter(|id| **id == queen || healthy(id))
        .copied()
        .collect();
    voters.insert(queen);
    // Promote the best healthy bees while short.
    let mut bees: Vec<&Candidate> = members
        .iter()
        .filter(|c| c.healthy && !voters.contains(&c.id))
        .collect();
    bees.sort_by(|a, b| rank(a, b));
    for bee in bees {
        if voters.len() >= target {
            break;
        }
        voters.insert(bee.id);
    }
    // Too many (the mesh shrank): demote the weakest, never the queen.
    if voters.len() > target {
        let mut ranked: Vec<&Candidate> = members
            .iter()
            .filter(|c| voters.contains(&c.id) && c.id != queen)
            .collect();
        ranked.sort_by(|a, b| rank(a, b));
        while voters.len() > target {
            match ranked.pop() {
                Some(worst) => {
                    voters.remove(&worst.id);
                }
                None => break,
            }
        }
    }
    // An unhealthy voter we could not replace stays: removing it would not help quorum.
    for id in current {
        if voters.len() < target && !voters.contains(id) && members.iter().any(|c| c.id == *id) {
            voters.insert(*id);
        }
    }
    voters
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyphae_core::NodeKey;

    fn ids(n: usize) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = (0..n)
            .map(|_| NodeKey::generate().unwrap().node_id())
            .collect();
        v.sort();
        v
    }

    fn cand(id: NodeId, uptime_s: u64) -> Candidate {
        Candidate {
            id,
            healthy: true,
            uptime_s,
            jitter_ms: 1,
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            [1, 2, 3, 5, 6, 7, 20].map(voter_target),
            [1, 1, 3, 3, 3, 5, 5]
        );
    }

    #[test]
    fn one_and_two_nodes_keep_one_voter() {
        let n = ids(2);
        let one = desired_voters(n[0], &BTreeSet::from([n[0]]), &[cand(n[0], 5)]);
        assert_eq!(one, BTreeSet::from([n[0]]));
        let two = desired_voters(
            n[0],
            &BTreeSet::from([n[0]]),
            &[cand(n[0], 5), cand(n[1], 50)],
        );
        assert_eq!(two, BTreeSet::from([n[0]]));
    }

    #[test]
    fn grows_to_three_then_five_by_uptime() {
        let n = ids(7);
        let members: Vec<_> = n
            .iter()
            .enumerate()
            .map(|(i, id)| cand(*id, i as u64))
            .collect();
        let three = desired_voters(n[0], &BTreeSet::from([n[0]]), &members[..4]);
        assert_eq!(three, BTreeSet::from([n[0], n[3], n[2]]));
        let five = desired_voters(n[0], &three, &members);
        assert_eq!(five.len(), 5);
        assert!(five.is_superset(&three), "healthy princes are kept");
        assert!(five.contains(&n[6]) && five.contains(&n[5]));
    }

    #[test]
    fn healthy_princes_are_not_swapped_for_better_bees() {
        let n = ids(4);
        let current = BTreeSet::from([n[0], n[1], n[2]]);
        let mut members: Vec<_> = n.iter().map(|id| cand(*id, 10)).collect();
        members[3].uptime_s = 1_000_000;
        assert_eq!(desired_voters(n[0], &current, &members), current);
    }

    #[test]
    fn a_dead_prince_is_replaced() {
        let n = ids(4);
        let current = BTreeSet::from([n[0], n[1], n[2]]);
        let mut members: Vec<_> = n.iter().map(|id| cand(*id, 10)).collect();
        members[2].healthy = false;
        assert_eq!(
            desired_voters(n[0], &current, &members),
            BTreeSet::from([n[0], n[1], n[3]])
        );
    }

    #[test]
    fn an_irreplaceable_dead_prince_stays() {
        let n = ids(3);
        let current = BTreeSet::from([n[0], n[1], n[2]]);
        let mut members: Vec<_> = n.iter().map(|id| cand(*id, 10)).collect();
        members[2].healthy = false;
        assert_eq!(desired_voters(n[0], &current, &members), current);
    }

    #[test]
    fn shrinking_demotes_the_weakest_not_the_queen() {
        let n = ids(3);
        let current = BTreeSet::from([n[0], n[1], n[2]]);
        // n[2] left: two members remain, target 1.
        let members = [cand(n[0], 1), cand(n[1], 100)];
        assert_eq!(
            desired_voters(n[0], &current, &members),
            BTreeSet::from([n[0]])
        );
    }
}
