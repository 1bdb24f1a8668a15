//! Where blocks from neighbours wait for their worker's pulse. A neighbour may be a step ahead
//! and send before this worker's pulse started, so a slot is made by whichever comes first.
//! Blocks for a pulse that is over are dropped (remembered for the last jobs), and slots
//! nobody claimed are swept after [`UNCLAIMED_TTL`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::grid::{Kind, Pos};
use crate::Matrix;

/// How long blocks for a pulse that never starts are kept.
pub const UNCLAIMED_TTL: Duration = Duration::from_secs(600);
/// How many finished pulses are remembered (their late blocks are dropped).
const FINISHED_KEPT: usize = 1024;

/// A block for a step.
#[derive(Debug)]
pub struct Delivery {
    /// Which input.
    pub kind: Kind,
    /// The step.
    pub step: usize,
    /// The block.
    pub block: Arc<Matrix>,
}

type Key = (String, Pos);

struct Slot {
    tx: mpsc::UnboundedSender<Delivery>,
    rx: Option<mpsc::UnboundedReceiver<Delivery>>,
    created: Instant,
}

#[derive(Default)]
struct State {
    slots: HashMap<Key, Slot>,
    finished: HashSet<Key>,
    order: VecDeque<Key>,
}

/// The inboxes of this worker's pulses.
#[derive(Clone, Default)]
pub struct Inboxes {
    state: Arc<Mutex<State>>,
}

impl Inboxes {
    fn slot(state: &mut State, key: Key) -> &mut Slot {
        state.slots.entry(key).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            Slot {
                tx,
                rx: Some(rx),
                created: Instant::now(),
            }
        })
    }

    /// Hands a block to the pulse `(job, pos)`; false if that pulse is over (dropped).
    pub fn deliver(&self, job: &str, pos: Pos, d: Delivery) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let key = (job.to_string(), pos);
        if state.finished.contains(&key) {
            return false;
        }
        state
            .slots
            .retain(|_, s| s.rx.is_none() || s.created.elapsed() < UNCLAIMED_TTL);
        Self::slot(&mut state, key).tx.send(d).is_ok()
    }

    /// The receiving end for the pulse `(job, pos)` (once; `None` if already claimed).
    pub fn claim(&self, job: &str, pos: Pos) -> Option<mpsc::UnboundedReceiver<Delivery>> {
        let mut state = self.state.lock().ok()?;
        Self::slot(&mut state, (job.to_string(), pos)).rx.take()
    }

    /// The pulse `(job, pos)` is over: drop its slot and any block still coming.
    pub fn finish(&self, job: &str, pos: Pos) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let key = (job.to_string(), pos);
        state.slots.remove(&key);
        if state.finished.insert(key.clone()) {
            state.order.push_back(key);
        }
        while state.order.len() > FINISHED_KEPT {
            if let Some(old) = state.order.pop_front() {
                state.finished.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_blocks_wait_and_late_ones_are_dropped() {
        let boxes = Inboxes::default();
        let p = Pos { row: 0, col: 1 };
        let blk = || Arc::new(Matrix::zeros(1, 1).unwrap());
        assert!(boxes.deliver(
            "j",
            p,
            Delivery {
                kind: Kind::A,
                step: 1,
                block: blk()
            }
        ));
        let mut rx = boxes.claim("j", p).unwrap();
        assert!(boxes.claim("j", p).is_none());
        assert_eq!(rx.try_recv().unwrap().step, 1);
        boxes.finish("j", p);
        assert!(!boxes.deliver(
            "j",
            p,
            Delivery {
                kind: Kind::B,
                step: 1,
                block: blk()
            }
        ));
    }
}
