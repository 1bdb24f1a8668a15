//! kill -9 at random moments: a child process (this same test binary, re-executed with an
//! environment variable) puts and deletes shards concurrently and prints each acknowledgement;
//! the parent SIGKILLs it at a random moment, reopens the store and checks that every
//! acknowledged put reads back verified, every acknowledged delete stayed deleted, and
//! `check()` finds the store consistent. Many rounds on one store, alternating backends.

mod local_common;

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyphae_chunkstore::local::{ShardStore, StoreError, StoreOptions};
use local_common::{data, err, id, len_of, tempdir};
use rand::Rng;

const CHILD_DIR: &str = "HYPHAE_SHARD_CRASH_DIR";
const CHILD_ROUND: &str = "HYPHAE_SHARD_CRASH_ROUND";
const TEST_NAME: &str = "kill9_at_random_moments_loses_no_acknowledged_put";
const ROUNDS: u64 = 24;
const MAX_LEN: usize = 24_000;

fn store_options(round: u64) -> StoreOptions {
    StoreOptions {
        force_pread: !round.is_multiple_of(2),
        segment_bytes: 96 << 10,
        reserve_bytes: Some(0),
        compaction_threshold: 0.5,
        ..StoreOptions::default()
    }
}

/// What the parent knows of a shard from the child's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Acked,
    DeleteInFlight,
    Deleted,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_moments_loses_no_acknowledged_put() -> Result<(), StoreError> {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let round = std::env::var(CHILD_ROUND)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        return child(std::path::Path::new(&dir), round).await;
    }
    let dir = tempdir()?;
    let exe = std::env::current_exe().map_err(err)?;
    let mut known: HashMap<u64, Known> = HashMap::new();
    let mut rng = rand::rng();
    let mut total_acked = 0usize;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(err)?;
        let stdout = child.stdout.take().ok_or_else(|| err("no stdout"))?;
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        // Half the rounds die at a random moment after start (possibly during recovery);
        // the others once the child is busy writing.
        if round.is_multiple_of(2) {
            let start = Instant::now();
            while lines.lock().map(|l| l.len()).unwrap_or(0) < 5
                && start.elapsed() < Duration::from_secs(60)
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        } else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..700))).await;
        }
        child.kill().map_err(err)?; // SIGKILL
        child.wait().map_err(err)?;
        reader.join().map_err(|_| err("reader thread panicked"))?;
        let lines = lines.lock().map_err(err)?.clone();
        for line in &lines {
            let mut parts = line.split_whitespace();
            let (Some(op), Some(n)) = (parts.next(), parts.next().and_then(|n| n.parse().ok()))
            else {
                continue;
            };
            match op {
                "P" => {
                    known.insert(n, Known::Acked);
                    total_acked += 1;
                }
                "d" => {
                    known.insert(n, Known::DeleteInFlight);
                }
                "D" => {
                    known.insert(n, Known::Deleted);
                }
                _ => {}
            }
        }

        // Reopen (with the other backend than the child used) and verify.
        let store = ShardStore::open(dir.path(), store_options(round + 1))?;
        for (n, k) in &known {
            let got = store.get(&id(*n)).await;
            match (k, got) {
                (Known::Acked, Ok(d)) => assert_eq!(d, data(*n, len_of(*n, MAX_LEN))),
                (Known::Acked, Err(e)) => {
                    panic!("round {round}: acknowledged shard {n} lost: {e}")
                }
                (Known::Deleted, Err(StoreError::NotFound(_))) => {}
                (Known::Deleted, r) => {
                    panic!(
                        "round {round}: deleted shard {n} is back: {:?}",
                        r.map(|d| d.len())
                    )
                }
                (Known::DeleteInFlight, Ok(d)) => {
                    assert_eq!(d, data(*n, len_of(*n, MAX_LEN)));
                }
                (Known::DeleteInFlight, Err(StoreError::NotFound(_))) => {}
                (Known::DeleteInFlight, Err(e)) => panic!("round {round}: shard {n}: {e}"),
            }
        }
        let check = store.check().await?;
        assert!(check.is_consistent(), "round {round}: {check:?}");
        let stats = store.stats();
        eprintln!(
            "round {round}: {} lines, {} shards, {} segments, recovery {:?}",
            lines.len(),
            stats.shards,
            stats.segments,
            stats.recovery
        );
        // Settle what a killed delete did, so later rounds know.
        for (n, k) in known.iter_mut() {
            if *k == Known::DeleteInFlight {
                *k = if store.contains(&id(*n)) {
                    Known::Acked
                } else {
                    Known::Deleted
                };
            }
        }
    }
    assert!(
        total_acked >= 50,
        "the children acknowledged only {total_acked} puts: the test exercised too little"
    );
    Ok(())
}

/// The child: puts and deletes from several tasks until killed (or 60 s pass).
async fn child(dir: &std::path::Path, round: u64) -> Result<(), StoreError> {
    let store = ShardStore::open(dir, store_options(round))?;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut tasks = Vec::new();
    for worker in 0..6u64 {
        let (store, next, acked) = (store.clone(), next.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                if worker == 0 && i.is_multiple_of(4) {
                    let victim = acked.lock().ok().and_then(|mut a| {
                        let len = a.len();
                        (len > 0).then(|| a.swap_remove((i as usize * 7919) % len))
                    });
                    if let Some(v) = victim {
                        println!("d {v}");
                        store.delete(&id(v)).await?;
                        println!("D {v}");
                    }
                    continue;
                }
                let n = round * 1_000_000 + next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                store.put(id(n), data(n, len_of(n, MAX_LEN))).await?;
                println!("P {n}");
                if let Ok(mut a) = acked.lock() {
                    a.push(n);
                }
            }
            Ok::<(), StoreError>(())
        }));
    }
    for t in tasks {
        t.await.map_err(err)??;
    }
    Ok(())
}
