//! Linearizability of the coordinator's key space under faults: clients write unique values
//! and read linearizably through random nodes while one node at a time is killed and
//! restarted, paused (SIGSTOP) or cut off (link down) for over 60 s; every key's history must
//! be linearizable (`hyphae_harness::linearizability`), with unknown outcomes allowed.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use hyphae_harness::linearizability::{is_linearizable, Op, OpKind};
use hyphae_harness::{Cluster, Node};
use support::{form_mesh, queen_index};

const KEYS: u64 = 4;
const CLIENTS: u64 = 3;
const FAULT_PERIOD: Duration = Duration::from_secs(62);
const OP_TIMEOUT: Duration = Duration::from_secs(6);

/// A small deterministic PRNG (xorshift64*), seeded per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type History = Mutex<BTreeMap<u64, Vec<Op>>>;

fn nanos(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

fn client(c: &Cluster, id: u64, t0: Instant, stop: &AtomicBool, history: &History) -> Result<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0xdead_beef));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let node: &Node = &c[rng.below(c.len() as u64) as usize];
        let key = rng.below(KEYS);
        let key_name = format!("r{key}");
        let invoke = nanos(t0);
        let op = if rng.below(2) == 0 {
            n += 1;
            let value = format!("c{id}-{n}");
            // A failed write (error, or killed at the timeout) may still have been applied:
            // its outcome is unknown.
            let out = node.cli_timeout(&["kv", "put", "lin", &key_name, &value], OP_TIMEOUT);
            let ok = matches!(&out, Ok(o) if o.success());
            Some(Op {
                invoke,
                complete: ok.then(|| nanos(t0)),
                kind: OpKind::Write(value),
            })
        } else {
            let Ok(out) = node.cli_timeout(
                &["kv", "get", "--linearizable", "lin", &key_name],
                OP_TIMEOUT,
            ) else {
                continue; // timed out: a failed read tells nothing
            };
            let complete = Some(nanos(t0));
            if out.success() {
                let value = out
                    .stdout_trimmed()
                    .split_once('\t')
                    .map(|(_, v)| v.to_string());
                Some(Op {
                    invoke,
                    complete,
                    kind: OpKind::Read(value),
                })
            } else if out.stderr.contains("no such key") {
                Some(Op {
                    invoke,
                    complete,
                    kind: OpKind::Read(None),
                })
            } else {
                None // a failed read tells nothing
            }
        };
        if let Some(op) = op {
            if let Ok(mut h) = history.lock() {
                h.entry(key).or_default().push(op);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn faults(c: &Cluster, stop: &AtomicBool) -> Result<Vec<String>> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut done = Vec::new();
    let start = Instant::now();
    while start.elapsed() < FAULT_PERIOD {
        std::thread::sleep(Duration::from_millis(1000 + rng.below(1500)));
        let i = rng.below(c.len() as u64) as usize;
        let hold = Duration::from_millis(1000 + rng.below(2000));
        match rng.below(3) {
            0 => {
                c[i].kill()?;
                std::thread::sleep(hold);
                c[i].restart()?;
                c[i].wait_ready(c.ready_timeout())?;
                done.push(format!("kill n{i}"));
            }
            1 => {
                c[i].stop()?;
                std::thread::sleep(hold);
                c[i].cont()?;
                done.push(format!("pause n{i}"));
            }
            _ => {
                c[i].link_down()?;
                std::thread::sleep(hold);
                c[i].link_up()?;
                done.push(format!("partition n{i}"));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    Ok(done)
}

#[test]
fn the_key_space_stays_linearizable_under_kills_pauses_and_partitions() -> Result<()> {
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    form_mesh(&c, 2)?;
    let t0 = Instant::now();
    let stop = AtomicBool::new(false);
    let history: History = Mutex::new(BTreeMap::new());
    let injected = std::thread::scope(|s| -> Result<Vec<String>> {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let (c, stop, history) = (&c, &stop, &history);
                s.spawn(move || client(c, id, t0, stop, history))
            })
            .collect();
        let injected = faults(&c, &stop);
        stop.store(true, Ordering::Relaxed);
        for cl in clients {
            cl.join()
                .map_err(|_| anyhow::anyhow!("a client panicked"))??;
        }
        injected
    })?;
    // The mesh recovers once the faults stop.
    if let Err(e) = queen_index(&c, &[0, 1, 2], Duration::from_secs(30)) {
        for n in c.nodes() {
            println!("n{}: {:?}", n.index(), support::coord_status(n));
        }
        return Err(e);
    }

    let history = history
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut total = 0;
    let mut unknown = 0;
    let mut reads = 0;
    for (key, ops) in &history {
        total += ops.len();
        unknown += ops.iter().filter(|o| o.complete.is_none()).count();
        reads += ops
            .iter()
            .filter(|o| matches!(o.kind, OpKind::Read(_)))
            .count();
        let started = Instant::now();
        let ok = is_linearizable(ops);
        println!(
            "key r{key}: {} operations, linearizable: {ok} (checked in {} ms)",
            ops.len(),
            started.elapsed().as_millis()
        );
        ensure!(ok, "key r{key} is not linearizable: {ops:#?}");
    }
    println!(
        "{total} operations ({reads} reads, {unknown} writes of unknown outcome) over {} s with faults: {injected:?}",
        t0.elapsed().as_secs()
    );
    ensure!(total >= 200, "too few operations completed: {total}");
    ensure!(injected.len() >= 10, "too few faults: {injected:?}");
    Ok(())
}
