//! When to take the next checkpoint, and how hard to throttle the guest: the primary's epoch
//! policy as a sans-IO state machine (time is an input).
//!
//! - The interval starts at `base_interval` and adapts: it stretches when an epoch takes longer
//!   to reach the backups than the interval (slow link or heavy dirtying) and shrinks back
//!   towards the base when transfers are quick.
//! - Lag = bytes sent but not acknowledged by every backup / measured link rate. Past
//!   `lag_soft` the vCPUs get a CPU quota, stepped along the configured curve (like QEMU's
//!   auto-converge); below half of it the quota is stepped back.
//! - Past `lag_hard`, *consistent* keeps the guest paused until the backups catch up;
//!   *best-effort* stretches epochs to `max_interval` and marks the replica stale.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What happens when the backups fall too far behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Pause the guest until the lag is back under the soft limit: a replica is never more
    /// than `lag_hard` behind.
    Consistent,
    /// Keep the guest running, stretch epochs, mark the replica stale.
    BestEffort,
}

/// How the CPU quota steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Curve {
    /// Throttle `initial`, then +`step` percentage points per epoch over the soft limit.
    Linear {
        /// First throttle (percent of CPU taken away).
        initial: u8,
        /// Increment.
        step: u8,
    },
    /// Throttle `initial`, then take away half of what is left per epoch over the limit.
    Exponential {
        /// First throttle.
        initial: u8,
    },
}

/// The policy's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// Interval when the link keeps up.
    pub base_interval: Duration,
    /// Never shorter than this.
    pub min_interval: Duration,
    /// Never longer than this.
    pub max_interval: Duration,
    /// Lag at which throttling starts.
    pub lag_soft: Duration,
    /// Lag at which the mode's emergency measure applies.
    pub lag_hard: Duration,
    /// Throttle steps.
    pub curve: Curve,
    /// Most CPU taken away (percent).
    pub max_throttle: u8,
    /// Emergency policy.
    pub mode: Mode,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            base_interval: Duration::from_millis(200),
            min_interval: Duration::from_millis(25),
            max_interval: Duration::from_secs(5),
            lag_soft: Duration::from_millis(400),
            lag_hard: Duration::from_secs(2),
            curve: Curve::Linear {
                initial: 20,
                step: 10,
            },
            max_throttle: 95,
            mode: Mode::Consistent,
        }
    }
}

/// What the primary should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing until this much time has passed (or an ack arrives).
    Wait(Duration),
    /// Take checkpoint number `epoch` now.
    Checkpoint {
        /// Its number.
        epoch: u64,
    },
    /// Consistent mode over the hard limit: keep the guest paused; ask again after acks.
    HoldPaused,
}

#[derive(Debug)]
struct InFlight {
    bytes: u64,
    sent: Instant,
    acks_missing: usize,
}

/// The epoch policy of one primary.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    backups: usize,
    interval: Duration,
    last: Option<Instant>,
    next_epoch: u64,
    in_flight: BTreeMap<u64, InFlight>,
    /// Link rate estimate, bytes/s (EWMA over acknowledged epochs).
    link_rate: f64,
    throttle: u8,
    stale: bool,
    holding: bool,
    acknowledged: u64,
}

/// A link-rate guess before anything is measured: 100 Mbit/s.
const INITIAL_LINK_RATE: f64 = 12.5e6;

impl Scheduler {
    /// A scheduler for a primary with `backups` backups, next epoch `first_epoch`.
    pub fn new(cfg: SchedulerConfig, backups: usize, first_epoch: u64) -> Scheduler {
        Scheduler {
            cfg,
            backups,
            interval: cfg.base_interval,
            last: None,
            next_epoch: first_epoch.max(1),
            in_flight: BTreeMap::new(),
            link_rate: INITIAL_LINK_RATE,
            throttle: 0,
            stale: false,
            holding: false,
            acknowledged: 0,
        }
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: Instant) -> Decision {
        let lag = self.lag();
        if lag > self.cfg.lag_hard || (self.holding && lag > self.cfg.lag_soft) {
            match self.cfg.mode {
                Mode::Consistent => {
                    self.holding = true;
                    return Decision::HoldPaused;
                }
                Mode::BestEffort => {
                    self.stale = true;
                    self.interval = self.cfg.max_interval;
                }
            }
        } else {
            self.holding = false;
        }
        match self.last {
            Some(t) if now < t + self.interval => Decision::Wait(t + self.interval - now),
            _ => {
                let epoch = self.next_epoch;
                Decision::Checkpoint { epoch }
            }
        }
    }

    /// Checkpoint `epoch` was taken at `now`, carrying `bytes`, and is being sent.
    pub fn checkpointed(&mut self, epoch: u64, now: Instant, bytes: u64) {
        self.last = Some(now);
        self.next_epoch = epoch + 1;
        if self.backups == 0 {
            self.acknowledged = epoch;
            return;
        }
        self.in_flight.insert(
            epoch,
            InFlight {
                bytes,
                sent: now,
                acks_missing: self.backups,
            },
        );
        self.step_throttle();
    }

    /// One backup acknowledged `epoch` at `now`.
    pub fn acked(&mut self, epoch: u64, now: Instant) {
        let Some(f) = self.in_flight.get_mut(&epoch) else {
            return;
        };
        f.acks_missing = f.acks_missing.saturating_sub(1);
        if f.acks_missing > 0 {
            return;
        }
        let done = self.in_flight.remove(&epoch);
        if let Some(f) = done {
            let took = now
                .saturating_duration_since(f.sent)
                .as_secs_f64()
                .max(1e-4);
            if f.bytes > 64 * 1024 {
                let sample = f.bytes as f64 / took;
                self.link_rate = 0.7 * self.link_rate + 0.3 * sample;
            }
            // Adapt the interval to how long delivery took.
            let took = Duration::from_secs_f64(took);
            self.interval = if took > self.interval {
                (took * 5 / 4).min(self.cfg.max_interval)
            } else {
                ((self.interval + self.cfg.base_interval) / 2).max(self.cfg.min_interval)
            };
        }
        self.acknowledged = self.acknowledged.max(epoch);
        if self.in_flight.is_empty() && self.lag() < self.cfg.lag_soft {
            self.stale = false;
        }
    }

    /// A backup failed to take `epoch` (disconnected): it no longer counts for this epoch.
    pub fn backup_failed(&mut self, epoch: u64, now: Instant) {
        self.acked(epoch, now);
    }

    /// Replication lag: unacknowledged bytes over the link rate.
    pub fn lag(&self) -> Duration {
        let bytes: u64 = self.in_flight.values().map(|f| f.bytes).sum();
        Duration::from_secs_f64(bytes as f64 / self.link_rate.max(1.0))
    }

    fn step_throttle(&mut self) {
        let lag = self.lag();
        if lag > self.cfg.lag_soft {
            self.throttle = match (self.throttle, self.cfg.curve) {
                (0, Curve::Linear { initial, .. }) | (0, Curve::Exponential { initial }) => initial,
                (t, Curve::Linear { step, .. }) => t.saturating_add(step),
                (t, Curve::Exponential { .. }) => t + (100 - t.min(100)) / 2,
            }
            .min(self.cfg.max_throttle);
        } else if lag < self.cfg.lag_soft / 2 && self.throttle > 0 {
            self.throttle = match self.cfg.curve {
                Curve::Linear { step, .. } => self.throttle.saturating_sub(step),
                Curve::Exponential { .. } => self.throttle / 2,
            };
        }
    }

    /// Percent of CPU taken from the vCPUs now.
    pub fn throttle(&self) -> u8 {
        self.throttle
    }

    /// Whether best-effort mode has let the replica fall behind its bound.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// The current interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Measured link rate, bytes/s.
    pub fn link_rate(&self) -> f64 {
        self.link_rate
    }

    /// The newest epoch every backup has acknowledged.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged
    }

    /// Epochs sent but not acknowledged by every backup.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn checkpoints_follow_the_interval() {
        let mut s = Scheduler::new(SchedulerConfig::default(), 2, 1);
        let t0 = Instant::now();
        assert_eq!(s.poll(t0), Decision::Checkpoint { epoch: 1 });
        s.checkpointed(1, t0, 4096);
        assert_eq!(s.poll(t0 + ms(50)), Decision::Wait(ms(150)));
        s.acked(1, t0 + ms(10));
        assert_eq!(s.acknowledged(), 0, "one of two backups is not enough");
        s.acked(1, t0 + ms(12));
        assert_eq!(s.acknowledged(), 1);
        assert_eq!(s.poll(t0 + ms(200)), Decision::Checkpoint { epoch: 2 });
    }

    #[test]
    fn a_slow_link_stretches_the_interval_and_a_fast_one_brings_it_back() {
        let mut s = Scheduler::new(SchedulerConfig::default(), 1, 1);
        let t0 = Instant::now();
        s.checkpointed(1, t0, 10_000_000);
        s.acked(1, t0 + ms(800));
        assert_eq!(s.interval(), ms(1000));
        let mut t = t0 + ms(1000);
        for e in 2..20 {
            s.checkpointed(e, t, 1000);
            s.acked(e, t + ms(1));
            t += s.interval();
        }
        assert!(s.interval() < ms(210), "{:?}", s.interval());
    }

    #[test]
    fn lag_throttles_along_the_curve_then_releases() {
        let cfg = SchedulerConfig {
            curve: Curve::Linear {
                initial: 20,
                step: 10,
            },
            ..SchedulerConfig::default()
        };
        let mut s = Scheduler::new(cfg, 1, 1);
        let t0 = Instant::now();
        // 12.5 MB/s assumed: 6 MB unacknowledged is ~0.48 s of lag > 0.4 s soft limit.
        s.checkpointed(1, t0, 6_000_000);
        assert_eq!(s.throttle(), 20);
        s.checkpointed(2, t0, 1_000_000);
        assert_eq!(s.throttle(), 30);
        s.acked(1, t0 + ms(400));
        s.acked(2, t0 + ms(450));
        s.checkpointed(3, t0 + ms(500), 1000);
        assert_eq!(s.throttle(), 20);
    }

    #[test]
    fn exponential_curve_halves_what_is_left() {
        let cfg = SchedulerConfig {
            curve: Curve::Exponential { initial: 50 },
            max_throttle: 99,
            ..SchedulerConfig::default()
        };
        let mut s = Scheduler::new(cfg, 1, 1);
        let t0 = Instant::now();
        let seen: Vec<u8> = (1..5)
            .map(|e| {
                s.checkpointed(e, t0, 6_000_000);
                s.throttle()
            })
            .collect();
        assert_eq!(seen, vec![50, 75, 87, 93]);
    }

    #[test]
    fn consistent_mode_holds_the_guest_until_backups_catch_up() {
        let mut s = Scheduler::new(SchedulerConfig::default(), 1, 1);
        let t0 = Instant::now();
        s.checkpointed(1, t0, 30_000_000); // ~2.4 s of lag at 12.5 MB/s
        assert_eq!(s.poll(t0 + ms(300)), Decision::HoldPaused);
        s.acked(1, t0 + ms(2500));
        assert_ne!(s.poll(t0 + ms(2600)), Decision::HoldPaused);
        // The slow delivery stretched the interval; once it has passed, epoch 2 follows.
        assert_eq!(
            s.poll(t0 + ms(2500) + s.interval()),
            Decision::Checkpoint { epoch: 2 }
        );
    }

    #[test]
    fn best_effort_stretches_and_marks_stale() {
        let cfg = SchedulerConfig {
            mode: Mode::BestEffort,
            ..SchedulerConfig::default()
        };
        let mut s = Scheduler::new(cfg, 1, 1);
        let t0 = Instant::now();
        s.checkpointed(1, t0, 30_000_000);
        assert!(matches!(s.poll(t0 + ms(300)), Decision::Wait(_)));
        assert!(s.stale());
        assert_eq!(s.interval(), cfg.max_interval);
        s.acked(1, t0 + ms(2500));
        assert!(!s.stale());
    }
}
