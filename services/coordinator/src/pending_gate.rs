//! A limit on new pending entries: a tokenless join costs a Raft commit and a directory row,
//! and anyone on the LAN can ask, so a flood of hellos and join requests must not fill the
//! directory.
//!
//! Two rules, both checked by the queen before she records a new pending node: at most
//! [`MAX_PENDING`] pending nodes at once, and a token bucket of [`BURST`] new entries refilled
//! at one per [`REFILL`]. A node that is already pending polls freely (no new entry). Sans-IO:
//! the caller passes the time and the current count.

use std::time::{Duration, Instant};

/// Most nodes pending at once.
pub const MAX_PENDING: usize = 256;
/// New pending entries allowed in a burst (a LAN of machines switched on together).
pub const BURST: u32 = 32;
/// One more new entry allowed per this long.
pub const REFILL: Duration = Duration::from_secs(2);

/// The gate's state.
#[derive(Debug)]
pub struct PendingGate {
    tokens: u32,
    refilled: Instant,
}

impl PendingGate {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> PendingGate {
        PendingGate {
            tokens: BURST,
            refilled: now,
        }
    }

    /// Whether one more pending entry may be recorded at `now`, with `pending` already in the
    /// directory; takes a token when it may.
    pub fn admit_one(&mut self, now: Instant, pending: usize) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned = (elapsed.as_millis() / REFILL.as_millis()) as u32;
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(BURST);
            self.refilled += REFILL * earned;
        }
        if pending >= MAX_PENDING || self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_refill() {
        let t = Instant::now();
        let mut g = PendingGate::new(t);
        let allowed = (0..1000).filter(|_| g.admit_one(t, 0)).count();
        assert_eq!(allowed, BURST as usize);
        assert!(!g.admit_one(t + REFILL / 2, 0));
        assert!(g.admit_one(t + REFILL, 0));
        assert!(!g.admit_one(t + REFILL, 0));
        // A long quiet time refills the bucket, never beyond the burst.
        let later = t + REFILL * 1000;
        assert_eq!(
            (0..1000).filter(|_| g.admit_one(later, 0)).count(),
            BURST as usize
        );
    }

    #[test]
    fn a_full_table_refuses_whatever_the_bucket() {
        let t = Instant::now();
        let mut g = PendingGate::new(t);
        assert!(!g.admit_one(t, MAX_PENDING));
        assert!(g.admit_one(t, MAX_PENDING - 1));
    }
}
