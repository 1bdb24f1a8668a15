//! Fuzzes Cannon's pulse state machine with the events a network can produce: blocks for any
//! kind and step (neighbours and the origin are remote peers), products, timeouts, restarts,
//! in any order, on grids up to 16×16. It must never panic, never multiply more than `q` times,
//! and only ever multiply blocks of its own row and column for the step's inner index.
#![no_main]

use hyphae_compute::cannon::{Action, Grid, Kind, Pos, Pulse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&head, events)) = data.split_first() else {
        return;
    };
    let q = usize::from(head % 16) + 1;
    let grid = Grid::new(q);
    let pos = Pos {
        row: usize::from(head / 16) % q,
        col: usize::from(head.rotate_left(3)) % q,
    };
    // Blocks are their own coordinates, so the test can check what is multiplied.
    let mut pulse: Pulse<(Kind, usize, usize)> = Pulse::new(grid, pos);
    let mut multiplies = 0;
    let mut pending = Vec::new();
    for ev in events.chunks(3) {
        let acts = match ev {
            [0, ..] => {
                let (a, b) = (grid.block(Kind::A, pos, 0), grid.block(Kind::B, pos, 0));
                pulse
                    .start((Kind::A, a.0, a.1), (Kind::B, b.0, b.1))
                    .unwrap_or_default()
            }
            [1, s, ..] => pulse.on_multiplied(usize::from(*s)).unwrap_or_default(),
            [2, ..] => pulse.on_timeout(),
            [3, s, honest] => {
                // A block for step s: the right one, or (odd byte) a wrong one from a liar.
                let step = usize::from(*s);
                let kind = if honest & 2 == 0 { Kind::A } else { Kind::B };
                let (i, j) = if step < q && honest & 1 == 0 {
                    grid.block(kind, pos, step)
                } else {
                    (usize::from(*honest), usize::from(*s))
                };
                pulse.on_block(kind, step, (kind, i, j)).unwrap_or_default()
            }
            [4, ..] => {
                // The driver finishes the oldest multiply.
                match pending.first().copied() {
                    Some(step) => {
                        pending.remove(0);
                        pulse.on_multiplied(step).unwrap_or_default()
                    }
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        for act in acts {
            match act {
                Action::Multiply { step, a, b } => {
                    multiplies += 1;
                    assert!(multiplies <= q, "more than q multiplies");
                    assert!(step < q);
                    assert_eq!(a.0, Kind::A);
                    assert_eq!(b.0, Kind::B);
                    pending.push(step);
                }
                Action::Send { to, step, .. } => {
                    assert!(step >= 1 && step < q);
                    assert!(to.row < q && to.col < q);
                }
                Action::Fetch { step, block, .. } => {
                    assert!(step >= 1 && step < q);
                    assert!(block.0 < q && block.1 < q);
                }
                Action::Finished => assert_eq!(multiplies, q),
            }
        }
    }
});
