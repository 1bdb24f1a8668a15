//! Cannon's systolic mode on the harness: 4 real nodes form a 2×2 grid and pass blocks over
//! QUIC (udp/7443, mutual TLS). A job with `mode = cannon` matches the f64 reference; one worker
//! runs with `[compute] test_cannon_delay` (it holds every block it passes on), so its
//! neighbours' quorum-timeout fetches those blocks from the job's node and the pulse goes on;
//! killing that worker mid-pulse hands its `C` block to independent tiles and the job still
//! completes correctly. A small job in `auto` mode runs as tiles (the cost model).

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyphae_compute::{matrix_file, tolerance, Matrix};
use hyphae_harness::{uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::{found_mesh_with, join_config, token, wait_directory};

/// Quick liveness and a short QUIC idle timeout, so a killed worker is noticed in seconds.
const FAST: &str = "[coordinator]\nheartbeat_interval = \"250ms\"\nsuspect_after = \"1s\"\n\
[transport]\nidle_timeout = \"3s\"\nkeep_alive = \"1s\"\n";
/// How long the slow worker holds every block it passes on.
const SLOW: &str = "[compute]\ntest_cannon_delay = \"15s\"\n";

fn mesh(n: usize, slow: usize) -> Result<Cluster> {
    let c = Cluster::builder()
        .nodes(n)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    let extra = |i: usize| {
        if i == slow {
            format!("{FAST}{SLOW}")
        } else {
            FAST.to_string()
        }
    };
    found_mesh_with(&c, &extra(0))?;
    let tok = token(&c[0], (n - 1) as u32, "1h")?;
    for (i, node) in c.nodes().iter().enumerate().skip(1) {
        node.write_config(&format!(
            "{}{}",
            join_config(Some(&tok), &[&c[0]]),
            extra(i)
        ))?;
        node.start()?;
    }
    for node in c.nodes().iter().skip(1) {
        node.wait_ready(c.ready_timeout())?;
    }
    wait_directory(&c[0], n, 0, Duration::from_secs(150))?;
    wait_until(Duration::from_secs(90), "every worker advertised", || {
        Ok(kv_scan(&c[0], "compute_workers")?.len() == n)
    })?;
    wait_until(
        Duration::from_secs(60),
        "every storage node published",
        || Ok(kv_scan(&c[0], "storage_nodes")?.len() == n),
    )?;
    Ok(c)
}

fn kv_scan(n: &Node, table: &str) -> Result<Vec<Value>> {
    let r = uds_get(
        n.state_dir().join("run/coordinator.sock"),
        &format!("/kv/{table}?prefix="),
    )?;
    if r.status != 200 {
        return Ok(Vec::new());
    }
    Ok(r.json()?["entries"].as_array().cloned().unwrap_or_default())
}

fn put_matrix(n: &Node, dir: &Path, path: &str, m: &Matrix) -> Result<()> {
    let local = dir.join(path.replace('/', "_"));
    std::fs::write(&local, matrix_file::encode(m))?;
    let out = n.cli_timeout(
        &["put", local.to_str().unwrap_or(""), path],
        Duration::from_secs(120),
    )?;
    if !out.success() {
        bail!("put {path}: {out}");
    }
    Ok(())
}

fn submit(n: &Node, a: &str, b: &str, out: &str, mode: &str) -> Result<String> {
    let r = n.cli_timeout(
        &["job", "submit", a, b, out, "--tile", "64", "--mode", mode],
        Duration::from_secs(120),
    )?;
    if !r.success() {
        bail!("job submit: {r}");
    }
    Ok(r.stdout.trim().to_string())
}

fn status(n: &Node, id: &str) -> Result<Value> {
    let r = n.cli_ok(&["job", "status", id])?;
    Ok(serde_json::from_str(&r.stdout)?)
}

fn wait_job(n: &Node, id: &str) -> Result<Value> {
    let r = n.cli_timeout(
        &["job", "wait", id, "--timeout", "150s"],
        Duration::from_secs(170),
    )?;
    let v: Value =
        serde_json::from_str(&r.stdout).with_context(|| format!("job wait output: {r}"))?;
    if v["state"] != "done" {
        bail!("job {id} did not finish: {v:#}");
    }
    Ok(v)
}

fn check_result(n: &Node, id: &str, dir: &Path, a: &Matrix, b: &Matrix) -> Result<()> {
    let dest = dir.join(format!("result-{id}"));
    n.cli_ok(&["job", "result", id, dest.to_str().unwrap_or("")])?;
    let c = matrix_file::decode(&std::fs::read(&dest)?)?;
    assert_eq!(
        tolerance::check_product(a, b, &c)?,
        None,
        "product differs from the reference"
    );
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
    let id = submit(&c[0], "cn/sa", "cn/sb", "cn/t", "auto")?;
    let rec = wait_job(&c[0], &id)?;
    assert_eq!(rec["mode"], "tiles", "{rec:#}");
    assert!(
        rec["model"]["cannon"]["total_secs"].as_f64().is_some(),
        "{rec:#}"
    );
    check_result(&c[0], &id, tmp.path(), &sa, &sb)?;

    // Forced Cannon: a 2×2 pulse; the slow worker's neighbours fetch from the origin.
    let id = submit(&c[0], "cn/a", "cn/b", "cn/c", "cannon")?;
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
    let id = submit(&c[0], "cn/a", "cn/b", "cn/k", "cannon")?;
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
