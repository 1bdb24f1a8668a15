//! The compute worker on the harness: a GEMM job of two stored matrices on 3 nodes is correct
//! (against the f64 reference, under the documented tolerance); a faulty worker
//! (`[compute] test_corrupt_results`) is caught by Freivalds' check and quarantined, the flag
//! visible on every node; bad input (missing files, non-matrices, mismatched shapes, absurd
//! sizes) is refused with a clear error and no worker crashes; killing a worker mid-job still
//! completes the job.

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
const FAULTY: &str = "[compute]\ntest_corrupt_results = true\n";

/// A mesh of `n` nodes; the nodes in `faulty` run with the corrupting switch.
fn compute_mesh(n: usize, faulty: &[usize]) -> Result<Cluster> {
    let c = Cluster::builder()
        .nodes(n)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    let extra = |i: usize| {
        if faulty.contains(&i) {
            format!("{FAST}{FAULTY}")
        } else {
            FAST.to_string()
        }
    };
    found_mesh_with(&c, &extra(0))?;
    let tok = token(&c[0], (n - 1).max(1) as u32, "1h")?;
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
    wait_directory(&c[0], n, 0, Duration::from_secs(60))?;
    for node in c.nodes() {
        wait_for(Duration::from_secs(90), "compute ready", || status(node))?;
    }
    wait_until(Duration::from_secs(60), "every worker advertised", || {
        Ok(kv_scan(&c[0], "compute_workers")?.len() == n)
    })?;
    // The store must be writable (every chunkstore published) before inputs go in.
    wait_until(
        Duration::from_secs(60),
        "every storage node published",
        || Ok(kv_scan(&c[0], "storage_nodes")?.len() == n),
    )?;
    Ok(c)
}

fn status(n: &Node) -> Result<Option<Value>> {
    match uds_get(n.state_dir().join("run/compute.sock"), "/status") {
        Ok(r) if r.status == 200 => Ok(Some(r.json()?)),
        _ => Ok(None),
    }
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
    put_bytes(n, dir, path, &matrix_file::encode(m))
}

fn put_bytes(n: &Node, dir: &Path, path: &str, bytes: &[u8]) -> Result<()> {
    let local = dir.join(path.replace('/', "_"));
    std::fs::write(&local, bytes)?;
    let out = n.cli_timeout(
        &["put", local.to_str().unwrap_or(""), path],
        Duration::from_secs(120),
    )?;
    if !out.success() {
        bail!("put {path}: {out}");
    }
    Ok(())
}

fn submit(n: &Node, a: &str, b: &str, out: &str, tile: usize) -> Result<String> {
    let r = n.cli_timeout(
        &["job", "submit", a, b, out, "--tile", &tile.to_string()],
        Duration::from_secs(120),
    )?;
    if !r.success() {
        bail!("job submit: {r}");
    }
    Ok(r.stdout.trim().to_string())
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

fn result(n: &Node, id: &str, dir: &Path) -> Result<Matrix> {
    let dest = dir.join(format!("result-{id}"));
    n.cli_ok(&["job", "result", id, dest.to_str().unwrap_or("")])?;
    Ok(matrix_file::decode(&std::fs::read(&dest)?)?)
}

fn assert_product(a: &Matrix, b: &Matrix, c: &Matrix) {
    assert_eq!(
        tolerance::check_product(a, b, c).expect("shapes"),
        None,
        "product differs from the reference"
    );
}

#[test]
fn gemm_job_is_correct_a_faulty_worker_is_quarantined_and_bad_input_refused() -> Result<()> {
    let c = compute_mesh(3, &[2])?;
    let tmp = tempfile::tempdir()?;
    let faulty_id = support::node_id(&c[2])?;
    let a = Matrix::random(300, 200, 1)?;
    let b = Matrix::random(200, 170, 2)?;
    put_matrix(&c[0], tmp.path(), "m/a", &a)?;
    put_matrix(&c[0], tmp.path(), "m/b", &b)?;

    let id = submit(&c[0], "m/a", "m/b", "m/c", 64)?;
    let rec = wait_job(&c[0], &id)?;
    assert_product(&a, &b, &result(&c[1], &id, tmp.path())?);
    assert!(
        rec["rejected"].as_u64().unwrap_or(0) >= 2,
        "the faulty worker was never caught: {rec:#}"
    );
    assert_eq!(rec["workers"][&faulty_id]["quarantined"], true, "{rec:#}");
    assert_eq!(rec["workers"][&faulty_id]["verified"], 0, "{rec:#}");
    // The flag spreads to every node.
    for n in c.nodes() {
        wait_until(
            Duration::from_secs(30),
            "quarantine flag replicated",
            || {
                Ok(kv_scan(n, "compute_quarantine")?
                    .iter()
                    .any(|e| e["key"] == faulty_id.as_str()))
            },
        )?;
    }
    // A second job never schedules on the quarantined worker.
    let id2 = submit(&c[1], "m/a", "m/b", "m/c2", 100)?;
    let rec2 = wait_job(&c[1], &id2)?;
    assert!(rec2["workers"].get(&faulty_id).is_none(), "{rec2:#}");
    assert_eq!(rec2["rejected"], 0);
    assert_product(&a, &b, &result(&c[1], &id2, tmp.path())?);

    // Bad input: a clear error at submission, nothing crashes.
    put_bytes(&c[0], tmp.path(), "m/junk", b"this is not a matrix")?;
    let mut huge = matrix_file::encode(&Matrix::zeros(1, 1)?);
    huge[8..12].copy_from_slice(&(1u32 << 20).to_le_bytes());
    huge[12..16].copy_from_slice(&(1u32 << 20).to_le_bytes());
    put_bytes(&c[0], tmp.path(), "m/huge", &huge)?;
    for (x, y, want) in [
        ("m/a", "m/a", "cannot multiply 300x200 by 300x200"),
        ("m/nope", "m/b", "does not exist"),
        ("m/junk", "m/b", "not a matrix file"),
        ("m/huge", "m/b", "too large"),
    ] {
        let r = c[0].cli_timeout(&["job", "submit", x, y, "m/bad"], Duration::from_secs(60))?;
        assert!(!r.success(), "{x}·{y} was accepted: {r}");
        assert!(r.stderr.contains(want), "{x}·{y}: expected {want:?} in {r}");
    }
    for n in c.nodes() {
        assert!(status(n)?.is_some(), "{} compute service died", n.name());
    }
    Ok(())
}

#[test]
fn killing_a_worker_mid_job_still_completes() -> Result<()> {
    let c = compute_mesh(3, &[])?;
    let tmp = tempfile::tempdir()?;
    let victim = support::node_id(&c[2])?;
    let a = Matrix::random(512, 384, 3)?;
    let b = Matrix::random(384, 512, 4)?;
    put_matrix(&c[0], tmp.path(), "k/a", &a)?;
    put_matrix(&c[0], tmp.path(), "k/b", &b)?;
    let id = submit(&c[0], "k/a", "k/b", "k/c", 16)?;
    // Kill the victim once it has verified a tile (it is certainly in the job then).
    let before = wait_for(
        Duration::from_secs(120),
        "the victim computed a tile",
        || {
            let r = c[0].cli_ok(&["job", "status", &id])?;
            let v: Value = serde_json::from_str(&r.stdout)?;
            let busy = v["workers"][&victim]["verified"].as_u64().unwrap_or(0) >= 1;
            Ok((busy || v["state"] != "running").then_some(v))
        },
    )?;
    c[2].kill()?;
    if before["state"] != "running" {
        bail!("the job finished before the kill; make it longer: {before:#}");
    }
    let rec = wait_job(&c[0], &id)?;
    assert!(
        rec["failed_calls"].as_u64().unwrap_or(0) >= 1,
        "no call to the dead worker failed: {rec:#}"
    );
    assert_product(&a, &b, &result(&c[0], &id, tmp.path())?);
    eprintln!("job record after the kill: {}", rec["workers"]);
    Ok(())
}
