//! Liveness as the queen sees it: heartbeats in, committed status transitions out.
//!
//! Pure bookkeeping (no clock of its own, no I/O) so that it is tested with made-up instants.
//! A new queen knows nobody's last heartbeat, so it counts from the moment it became queen:
//! nobody is marked suspect for the queen's own election.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use hyphae_core::NodeId;

use crate::directory::NodeStatus;

const JITTER_WINDOW: usize = 16;

#[derive(Debug, Clone)]
struct Track {
    last_seen: Instant,
    intervals: VecDeque<Duration>,
    uptime_s: u64,
}

/// What the queen has heard.
#[derive(Debug)]
pub struct Liveness {
    since: Instant,
    tracks: HashMap<NodeId, Track>,
}

/// A transition to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Which node.
    pub node: NodeId,
    /// Its new status.
    pub status: NodeStatus,
}

impl Liveness {
    /// Starts counting at `since` (when this node became queen).
    pub fn new(since: Instant) -> Liveness {
        Liveness {
            since,
            tracks: HashMap::new(),
        }
    }

    /// Records a heartbeat.
    pub fn heartbeat(&mut self, node: NodeId, now: Instant, uptime_s: u64) {
        let track = self.tracks.entry(node).or_insert(Track {
            last_seen: now,
            intervals: VecDeque::new(),
            uptime_s,
        });
        let gap = now.saturating_duration_since(track.last_seen);
        if !gap.is_zero() {
            track.intervals.push_back(gap);
            if track.intervals.len() > JITTER_WINDOW {
                track.intervals.pop_front();
            }
        }
        track.last_seen = now;
        track.uptime_s = uptime_s;
    }

    /// Mean absolute deviation of the heartbeat intervals, in milliseconds.
    pub fn jitter_ms(&self, node: &NodeId) -> u32 {
        let Some(t) = self.tracks.get(node) else {
            return 0;
        };
        if t.intervals.len() < 2 {
            return 0;
        }
        let n = t.intervals.len() as f64;
        let mean = t.intervals.iter().map(|d| d.as_secs_f64()).sum::<f64>() / n;
        let mad = t
            .intervals
            .iter()
            .map(|d| (d.as_secs_f64() - mean).abs())
            .sum::<f64>()
            / n;
        (mad * 1000.0).round().min(u32::MAX as f64) as u32
    }

    /// Whether `node` has sent a heartbeat since this queen took over. The queen's calls to
    /// princes (CA handovers) go only to those: a call to a dead one waits for its timeout,
    /// and the queen's duties, liveness among them, wait with it.
    pub fn heard_from(&self, node: &NodeId) -> bool {
        self.tracks.contains_key(node)
    }

    /// The last reported uptime.
    pub fn uptime_s(&self, node: &NodeId) -> u64 {
        self.tracks.get(node).map(|t| t.uptime_s).unwrap_or(0)
    }

    /// How long since the node was last heard (or since this queen took over).
    pub fn silence(&self, node: &NodeId, now: Instant) -> Duration {
        let last = self
            .tracks
            .get(node)
            .map(|t| t.last_seen)
            .unwrap_or(self.since)
            .max(self.since);
        now.saturating_duration_since(last)
    }

    /// The transitions to commit, given each member's committed status.
    pub fn evaluate(
        &self,
        now: Instant,
        committed: &BTreeMap<NodeId, NodeStatus>,
        suspect_after: Duration,
        heal_after: Duration,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        for (node, status) in committed {
            if !status.is_member() {
                continue;
            }
            let silent = self.silence(node, now);
            let wanted = if silent >= heal_after {
                NodeStatus::Down
            } else if silent >= suspect_after {
                NodeStatus::Suspect
            } else {
                NodeStatus::Up
            };
            // Down stays down until a heartbeat arrives (a fresh queen must not resurrect it
            // just because it has not been silent *to her* for long).
            let heard = self.tracks.contains_key(node);
            let stays_down = *status == NodeStatus::Down && (wanted != NodeStatus::Up || !heard);
            let wanted = if stays_down { NodeStatus::Down } else { wanted };
            if wanted != *status {
                out.push(Transition {
                    node: *node,
                    status: wanted,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyphae_core::NodeKey;

    const S: Duration = Duration::from_secs(5);
    const H: Duration = Duration::from_secs(60);

    #[test]
    fn silence_goes_suspect_then_down_then_back_up() {
        let t0 = Instant::now();
        let n = NodeKey::generate().unwrap().node_id();
        let mut l = Liveness::new(t0);
        l.heartbeat(n, t0, 1);
        let up = BTreeMap::from([(n, NodeStatus::Up)]);
        assert!(l
            .evaluate(t0 + Duration::from_secs(1), &up, S, H)
            .is_empty());
        let t = l.evaluate(t0 + Duration::from_secs(6), &up, S, H);
        assert_eq!(
            t,
            vec![Transition {
                node: n,
                status: NodeStatus::Suspect
            }]
        );
        let suspect = BTreeMap::from([(n, NodeStatus::Suspect)]);
        let t = l.evaluate(t0 + Duration::from_secs(61), &suspect, S, H);
        assert_eq!(
            t,
            vec![Transition {
                node: n,
                status: NodeStatus::Down
            }]
        );
        let down = BTreeMap::from([(n, NodeStatus::Down)]);
        l.heartbeat(n, t0 + Duration::from_secs(70), 2);
        let t = l.evaluate(t0 + Duration::from_secs(70), &down, S, H);
        assert_eq!(
            t,
            vec![Transition {
                node: n,
                status: NodeStatus::Up
            }]
        );
    }

    #[test]
    fn a_new_queen_gives_everyone_grace_and_keeps_down_nodes_down() {
        let t0 = Instant::now();
        let a = NodeKey::generate().unwrap().node_id();
        let b = NodeKey::generate().unwrap().node_id();
        let l = Liveness::new(t0);
        let committed = BTreeMap::from([(a, NodeStatus::Up), (b, NodeStatus::Down)]);
        assert!(l
            .evaluate(t0 + Duration::from_secs(2), &committed, S, H)
            .is_empty());
    }

    #[test]
    fn a_new_queen_has_heard_only_from_those_that_heartbeat_her() {
        let t0 = Instant::now();
        let alive = NodeKey::generate().unwrap().node_id();
        let dead = NodeKey::generate().unwrap().node_id();
        let mut l = Liveness::new(t0);
        assert!(!l.heard_from(&alive) && !l.heard_from(&dead));
        l.heartbeat(alive, t0 + Duration::from_millis(250), 9);
        assert!(l.heard_from(&alive));
        assert!(!l.heard_from(&dead));
    }

    #[test]
    fn jitter_measures_irregular_heartbeats() {
        let t0 = Instant::now();
        let n = NodeKey::generate().unwrap().node_id();
        let mut steady = Liveness::new(t0);
        let mut shaky = Liveness::new(t0);
        let mut t = t0;
        let mut u = t0;
        for i in 0..10u64 {
            t += Duration::from_millis(1000);
            u += Duration::from_millis(if i % 2 == 0 { 600 } else { 1400 });
            steady.heartbeat(n, t, i);
            shaky.heartbeat(n, u, i);
        }
        assert_eq!(steady.jitter_ms(&n), 0);
        assert!(shaky.jitter_ms(&n) >= 300, "{}", shaky.jitter_ms(&n));
    }
}
