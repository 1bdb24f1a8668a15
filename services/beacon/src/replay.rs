//! Replay protection: per sender, only packets newer than the last accepted one pass.
//!
//! A sender numbers its packets `(epoch, sequence)`: the epoch grows at every start (it is the
//! start time in milliseconds, persisted so that it never goes back), the sequence within it.
//! An exact copy of the last accepted packet (the same packet arriving over IPv4 and IPv6, or
//! a network that duplicates) is a duplicate, not a replay: it is ignored without counting as
//! an attack. Anything older is a replay. The guard forgets the oldest sender when full, so
//! memory stays bounded; only authenticated packets reach it, so it only holds real members.

use std::collections::HashMap;

use hyphae_core::NodeId;

/// What the guard says about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Newer than anything seen from this sender: accept (the guard has recorded it).
    Fresh,
    /// The very packet accepted last (same numbers, same MAC): ignore quietly.
    Duplicate,
    /// Older than (or a different packet with the numbers of) the last accepted one.
    Replayed,
}

/// What the guard remembers of one sender.
#[derive(Debug)]
struct Last {
    /// `(epoch, sequence)` of the last accepted packet.
    stamp: (u64, u64),
    /// Its MAC (tells a duplicate from a different packet with the same stamp).
    mac: [u8; 32],
    /// When it was last used (guard clock), to evict the stalest sender when full.
    used: u64,
}

/// The last accepted `(epoch, sequence, MAC)` of each sender.
#[derive(Debug)]
pub struct ReplayGuard {
    last: HashMap<NodeId, Last>,
    capacity: usize,
    clock: u64,
}

impl ReplayGuard {
    /// A guard that remembers at most `capacity` senders.
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            last: HashMap::new(),
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    /// Judges a packet and records it when fresh.
    pub fn check(&mut self, node: NodeId, epoch: u64, seq: u64, mac: &[u8; 32]) -> Freshness {
        self.clock += 1;
        let stamp = (epoch, seq);
        if let Some(last) = self.last.get_mut(&node) {
            if stamp == last.stamp && *mac == last.mac {
                last.used = self.clock;
                return Freshness::Duplicate;
            }
            if stamp <= last.stamp {
                return Freshness::Replayed;
            }
            *last = Last {
                stamp,
                mac: *mac,
                used: self.clock,
            };
            return Freshness::Fresh;
        }
        if self.last.len() >= self.capacity {
            if let Some(oldest) = self
                .last
                .iter()
                .min_by_key(|(_, last)| last.used)
                .map(|(n, _)| *n)
            {
                self.last.remove(&oldest);
            }
        }
        self.last.insert(
            node,
            Last {
                stamp,
                mac: *mac,
                used: self.clock,
            },
        );
        Freshness::Fresh
    }

    /// Forgets a sender (it left, or was revoked).
    pub fn forget(&mut self, node: &NodeId) {
        self.last.remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(b: u8) -> NodeId {
        NodeId::from_raw([b; 10])
    }

    #[test]
    fn newer_passes_older_and_equal_do_not() {
        let mut g = ReplayGuard::new(16);
        assert_eq!(g.check(n(1), 5, 1, &[1; 32]), Freshness::Fresh);
        assert_eq!(g.check(n(1), 5, 1, &[1; 32]), Freshness::Duplicate);
        assert_eq!(g.check(n(1), 5, 1, &[2; 32]), Freshness::Replayed);
        assert_eq!(g.check(n(1), 5, 2, &[3; 32]), Freshness::Fresh);
        assert_eq!(g.check(n(1), 5, 1, &[1; 32]), Freshness::Replayed);
        // A restart: a new epoch starts its sequence again.
        assert_eq!(g.check(n(1), 6, 0, &[4; 32]), Freshness::Fresh);
        assert_eq!(g.check(n(1), 5, 99, &[5; 32]), Freshness::Replayed);
        // Senders are independent.
        assert_eq!(g.check(n(2), 1, 0, &[6; 32]), Freshness::Fresh);
    }

    #[test]
    fn capacity_is_bounded() {
        let mut g = ReplayGuard::new(4);
        for i in 0..100u8 {
            g.check(n(i), 1, 1, &[i; 32]);
        }
        assert!(g.last.len() <= 4);
    }

    proptest! {
        /// Whatever order packets arrive in, each stamp is accepted at most once and accepted
        /// stamps strictly increase.
        #[test]
        fn accepted_stamps_strictly_increase(stamps in proptest::collection::vec((0u64..4, 0u64..8), 0..64)) {
            let mut g = ReplayGuard::new(8);
            let mut accepted: Vec<(u64, u64)> = Vec::new();
            for (e, s) in stamps {
                if g.check(n(1), e, s, &[0; 32]) == Freshness::Fresh {
                    if let Some(last) = accepted.last() {
                        prop_assert!((e, s) > *last);
                    }
                    accepted.push((e, s));
                }
            }
        }
    }
}
