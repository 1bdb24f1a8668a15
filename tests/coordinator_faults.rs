//! The coordinator under faults on the harness: the queen killed, a minority partitioned, every
//! node restarted. No acknowledged write may be lost.

mod support;

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use hyphae_harness::{wait_for, wait_until, Cluster};
use support::{
    coord_status, form_mesh, get, ms_since, put, put_until_acked, queen_index, wait_directory,
};

fn mesh(n: usize) -> Result<Cluster> {
    Cluster::builder()
        .nodes(n)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()
}

/// Every acknowledged key is readable with its value on every listed node.
fn assert_all_present(c: &Cluster, among: &[usize], acked: &[(String, String)]) -> Result<()> {
    for &i in among {
        wait_until(
            Duration::from_secs(30),
            "acknowledged writes everywhere",
            || {
                for (k, v) in acked {
                    if get(&c[i], k)?.as_deref() != Some(v.as_str()) {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )?;
    }
    Ok(())
}

#[test]
fn killing_the_queen_elects_a_new_one_that_accepts_writes() -> Result<()> {
    let c = mesh(3)?;
    form_mesh(&c, 2)?;
    let all = [0, 1, 2];
    let q = queen_index(&c, &all, Duration::from_secs(10))?;
    let mut acked = Vec::new();
    for i in 0..5 {
        let (k, v) = (format!("pre{i}"), format!("v{i}"));
        put_until_acked(&c[q], &k, &v, Duration::from_secs(10))?;
        acked.push((k, v));
    }
    let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != q).collect();
    let writer = survivors[0];

    let t0 = Instant::now();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    c[q].kill()?;
    println!("killed the queen n{q} at {:.3} (unix)", wall.as_secs_f64());
    // The first write through a survivor that commits marks the end of the failover (retried
    // at once: a write in flight to the dead queen fails with "outcome unknown").
    let version = loop {
        if let Ok(v) = put(&c[writer], "after", "1", Duration::from_secs(5))? {
            break v;
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(30),
            "no write within 30 s of the kill"
        );
    };
    let write_ms = ms_since(t0);
    let new_q = queen_index(&c, &survivors, Duration::from_secs(10))?;
    ensure!(new_q != q, "the dead queen is still queen");
    println!("failover: first write committed {write_ms} ms after kill -9 of the queen (version {version})");
    acked.push(("after".into(), "1".into()));
    // A linearizable read through the other survivor (a follower) sees it at once.
    let read = c[survivors[1]].cli_ok(&["kv", "get", "--linearizable", "test", "after"])?;
    assert!(read.stdout.ends_with("\t1\n"), "{read}");

    // The old queen comes back as a follower and catches up.
    c[q].restart()?;
    c[q].wait_ready(c.ready_timeout())?;
    assert_all_present(&c, &all, &acked)?;
    let status = coord_status(&c[q])?.unwrap_or_default();
    assert_ne!(status["role"], "queen", "{status}");
    Ok(())
}

#[test]
fn a_partitioned_minority_cannot_commit_and_healing_converges() -> Result<()> {
    let c = mesh(3)?;
    form_mesh(&c, 2)?;
    let all = [0, 1, 2];
    let q = queen_index(&c, &all, Duration::from_secs(10))?;
    let majority: Vec<usize> = all.iter().copied().filter(|i| *i != q).collect();
    let mut acked = vec![];
    put_until_acked(&c[q], "k0", "a", Duration::from_secs(10))?;
    acked.push(("k0".to_string(), "a".to_string()));

    // Cut the queen off: she is the minority.
    c[q].link_down()?;
    // The majority elects a new queen and commits.
    let v = wait_for(Duration::from_secs(30), "a majority write", || {
        Ok(put(&c[majority[0]], "k1", "b", Duration::from_secs(5))?.ok())
    })?;
    assert!(v > 0);
    acked.push(("k1".into(), "b".into()));
    // The old queen cannot commit anything.
    let minority = put(&c[q], "lost", "x", Duration::from_secs(15))?;
    assert!(minority.is_err(), "the minority committed: {minority:?}");
    assert_eq!(get(&c[majority[1]], "lost")?, None);

    // Heal: one queen again, and every acknowledged write everywhere; the refused one nowhere.
    c[q].link_up()?;
    queen_index(&c, &all, Duration::from_secs(30))?;
    put_until_acked(&c[q], "k2", "c", Duration::from_secs(20))?;
    acked.push(("k2".into(), "c".into()));
    assert_all_present(&c, &all, &acked)?;
    for i in all {
        assert_eq!(get(&c[i], "lost")?, None, "n{i} has the refused write");
    }
    Ok(())
}

#[test]
fn everything_committed_survives_a_restart_of_every_node() -> Result<()> {
    let c = mesh(3)?;
    form_mesh(&c, 2)?;
    let mut acked = vec![];
    for i in 0..20 {
        let (k, v) = (format!("k{i}"), format!("value {i}"));
        put_until_acked(&c[i % 3], &k, &v, Duration::from_secs(10))?;
        acked.push((k, v));
    }
    for n in c.nodes() {
        n.kill()?;
    }
    for n in c.nodes() {
        n.restart()?;
    }
    for n in c.nodes() {
        n.wait_ready(c.ready_timeout())?;
        wait_directory(n, 3, 2, Duration::from_secs(60))?;
    }
    assert_all_present(&c, &[0, 1, 2], &acked)?;
    // And the mesh still takes writes.
    put_until_acked(&c[1], "later", "1", Duration::from_secs(20))?;
    Ok(())
}

#[test]
fn a_lagging_node_catches_up_from_a_snapshot_when_its_log_is_purged() -> Result<()> {
    let c = mesh(3)?;
    // Snapshots every 20 entries, 5 kept behind: the log the dead node misses is soon gone.
    support::form_mesh_with(
        &c,
        2,
        "[coordinator]\nsnapshot_every = 20\nsnapshot_keep_logs = 5\n",
    )?;
    let all = [0, 1, 2];
    let q = queen_index(&c, &all, Duration::from_secs(10))?;
    let f = all.iter().copied().find(|i| *i != q).unwrap_or(0);
    let status = coord_status(&c[f])?.unwrap_or_default();
    let lagging_at = status["last_log_index"].as_u64().unwrap_or(0);
    c[f].kill()?;

    let mut acked = vec![];
    for i in 0..60 {
        let (k, v) = (format!("s{i}"), format!("value {i}"));
        // Generous: a snapshot is built while these writes go in, on a possibly loaded machine.
        put_until_acked(&c[q], &k, &v, Duration::from_secs(30))?;
        acked.push((k, v));
    }
    // The queen has purged past everything the dead node has: only a snapshot can bring it back.
    let purged = wait_for(Duration::from_secs(30), "the queen's log purged", || {
        let s = coord_status(&c[q])?.unwrap_or_default();
        Ok(s["purged_index"].as_u64().filter(|p| *p > lagging_at))
    })?;
    println!("n{f} stopped at log index {lagging_at}; the queen purged up to {purged}");

    c[f].restart()?;
    c[f].wait_ready(c.ready_timeout())?;
    assert_all_present(&c, &[f], &acked)?;
    let s = coord_status(&c[f])?.unwrap_or_default();
    let snapshot = s["snapshot_index"].as_u64().unwrap_or(0);
    ensure!(
        snapshot >= purged,
        "n{f} caught up without a snapshot covering the purged log: {s}"
    );
    // The installed snapshot is kept as a RocksDB checkpoint beside the database, one at a time.
    let kept: Vec<_> = std::fs::read_dir(c[f].state_dir().join("coordinator/raft.snapshots"))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    ensure!(kept.len() == 1, "n{f} keeps {kept:?}");
    // It is a full member again: a write through it commits.
    put_until_acked(&c[f], "after-snapshot", "1", Duration::from_secs(20))?;
    Ok(())
}
