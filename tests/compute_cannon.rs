//! Cannon's systolic mode on the harness: 4 real nodes form a 2×2 grid and pass blocks over
//! QUIC (udp/7443, mutual TLS). A job with `mode = cannon` matches the f64 reference; one worker
//! runs with `[compute] test_cannon_delay` (it holds every block it passes on), so its
//! neighbours' quorum-timeout fetches those blocks from the job's node and the pulse goes on;
//! killing that worker mid-pulse hands its `C` block to independent tiles and the job still
//! completes correctly. A small job in `auto` mode runs as tiles (the cost model). A worker that
//! returns a wrong `C` block (`[compute] test_corrupt_results`) is caught, its block recomputed
//! as tiles, and the lie counts as an offence towards its quarantine like a wrong tile.

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use hyphae_compute::Matrix;
use hyphae_harness::{wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::compute::{
    assert_product, compute_mesh_with, fetch_result, kv_scan, put_matrix, submit, wait_job, FAST,
};

/// How long the slow worker holds every block it passes on.
const SLOW: &str = "[compute]\ntest_cannon_delay = \"15s\"\n";

/// A mesh of `n` nodes; node `slow` holds every block it passes on.
fn mesh(n: usize, slow: usize) -> Result<Cluster> {
    compute_mesh_with(n, |i| {
        if i == slow {
            format!("{FAST}{SLOW}")
        } else {
            FAST.to_string()
        }
    })
}

fn status(n: &Node, id: &str) -> Result<Value> {
    let r = n.cli_ok(&["job", "status", id])?;
    Ok(serde_json::from_str(&r.stdout)?)
}

fn check_result(n: &Node, id: &str, dir: &Path, a: &Matrix, b: &Matrix) -> Result<()> {
    assert_product(a, b, &fetch_result(n, id, dir)?);
    Ok(())
}

fn fetched_from_origin(rec: &Value) -> u64 {
    rec["cannon"]["workers"]
        .as_object()
        .map(|w| {
            w.values()
                .filter_map(|r| r["fetched_from_origin"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn cannon_on_four_workers_matches_survives_a_slow_one_and_a_killed_one() -> Result<()> {
    let slow = 3;
    let c = mesh(4, slow)?;
    let tmp = tempfile::tempdir()?;
    let a = Matrix::random(200, 150, 1)?;
    let b = Matrix::random(150, 170, 2)?;
    put_matrix(&c[0], tmp.path(), "cn/a", &a)?;
    put_matrix(&c[0], tmp.path(), "cn/b", &b)?;

    // A small product in auto mode: a pulse's fixed costs outweigh its savings, so the cost
    // model keeps it on tiles (and says what it estimated for both).
    let (sa, sb) = (Matrix::random(40, 30, 3)?, Matrix::random(30, 20, 4)?);
    put_matrix(&c[0], tmp.path(), "cn/sa", &sa)?;
    put_matrix(&c[0], tmp.path(), "cn/sb", &sb)?;
    let id = submit(&c[0], ("cn/sa", "cn/sb", "cn/t"), 64, Some("auto"))?;
    let rec = wait_job(&c[0], &id)?;
    assert_eq!(rec["mode"], "tiles", "{rec:#}");
    assert!(
        rec["model"]["cannon"]["total_secs"].as_f64().is_some(),
        "{rec:#}"
    );
    check_result(&c[0], &id, tmp.path(), &sa, &sb)?;

    // Forced Cannon: a 2×2 pulse; the slow worker's neighbours fetch from the origin.
    let id = submit(&c[0], ("cn/a", "cn/b", "cn/c"), 64, Some("cannon"))?;
    let rec = wait_job(&c[0], &id)?;
    assert_eq!(rec["mode"], "cannon", "{rec:#}");
    assert_eq!(rec["cannon"]["state"], "done", "{rec:#}");
    assert_eq!(rec["cannon"]["q"], 2, "{rec:#}");
    assert!(
        fetched_from_origin(&rec) >= 1,
        "nobody fetched the slow worker's blocks from the origin: {rec:#}"
    );
    check_result(&c[1], &id, tmp.path(), &a, &b)?;
    eprintln!("cannon record: {}", rec["cannon"]);

    // Kill the slow worker while it holds its C block: its block falls back to tiles.
    let id = submit(&c[0], ("cn/a", "cn/b", "cn/k"), 64, Some("cannon"))?;
    wait_for(Duration::from_secs(60), "the pulse started", || {
        let v = status(&c[0], &id)?;
        Ok((v["cannon"]["state"] == "pulsing" || v["state"] != "running").then_some(()))
    })?;
    c[slow].kill()?;
    let rec = wait_job(&c[0], &id)?;
    assert_eq!(rec["cannon"]["state"], "fallback", "{rec:#}");
    assert_eq!(
        rec["cannon"]["fallback_blocks"].as_array().map(Vec::len),
        Some(1),
        "{rec:#}"
    );
    check_result(&c[0], &id, tmp.path(), &a, &b)?;
    eprintln!("cannon record after the kill: {}", rec["cannon"]);
    Ok(())
}

#[test]
fn a_lying_cannon_worker_is_caught_and_its_lie_counts_towards_quarantine() -> Result<()> {
    let liar = 3;
    let c = compute_mesh_with(4, |i| {
        if i == liar {
            format!("{FAST}[compute]\ntest_corrupt_results = true\n")
        } else {
            FAST.to_string()
        }
    })?;
    let liar_id = support::node_id(&c[liar])?;
    let tmp = tempfile::tempdir()?;
    let a = Matrix::random(200, 150, 5)?;
    let b = Matrix::random(150, 170, 6)?;
    put_matrix(&c[0], tmp.path(), "cl/a", &a)?;
    put_matrix(&c[0], tmp.path(), "cl/b", &b)?;
    // Tiles of 16: the liar's 100×85 block falls back to 42 tiles, more than the three honest
    // workers run at once, so the liar (trust cut by its Cannon lie) is given tiles too.
    let id = submit(&c[0], ("cl/a", "cl/b", "cl/c"), 16, Some("cannon"))?;
    let rec = wait_job(&c[0], &id)?;
    assert_eq!(rec["cannon"]["state"], "fallback", "{rec:#}");
    assert_eq!(
        rec["cannon"]["fallback_blocks"].as_array().map(Vec::len),
        Some(1),
        "only the liar's block falls back: {rec:#}"
    );
    let w = &rec["workers"][&liar_id];
    // Every rejected result was the liar's, the Cannon block included: without the Cannon
    // offence its offences would be one short of the job's rejections.
    assert!(rec["rejected"].as_u64().unwrap_or(0) >= 2, "{rec:#}");
    assert_eq!(w["offences"], rec["rejected"], "{rec:#}");
    assert_eq!(w["quarantined"], true, "{rec:#}");
    assert_eq!(w["verified"], 0, "{rec:#}");
    eprintln!(
        "liar: {w}; rejected {}; cannon {}",
        rec["rejected"], rec["cannon"]
    );
    for n in c.nodes() {
        wait_until(
            Duration::from_secs(30),
            "quarantine flag replicated",
            || {
                Ok(kv_scan(n, "compute_quarantine")?
                    .iter()
                    .any(|e| e["key"] == liar_id.as_str()))
            },
        )?;
    }
    check_result(&c[1], &id, tmp.path(), &a, &b)?;
    Ok(())
}
