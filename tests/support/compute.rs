//! The compute tests' mesh: `n` nodes (n0 founds, the others join with a token), each with its
//! own extra configuration, ready once every worker is advertised and every chunkstore is
//! published (inputs can go in).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyphae_compute::{matrix_file, tolerance, Matrix};
use hyphae_harness::{uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;

use super::{found_mesh_with, join_config, token, wait_directory};

/// Quick liveness and a short QUIC idle timeout, so a killed worker is noticed in seconds.
pub const FAST: &str = "[coordinator]\nheartbeat_interval = \"250ms\"\nsuspect_after = \"1s\"\n\
[transport]\nidle_timeout = \"3s\"\nkeep_alive = \"1s\"\n";

/// A mesh of `n` nodes; node `i` gets `extra(i)` appended to its configuration.
pub fn compute_mesh_with(n: usize, extra: impl Fn(usize) -> String) -> Result<Cluster> {
    let c = Cluster::builder()
        .nodes(n)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
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
    // Generous: forming the mesh took over 60 s once on a loaded machine.
    wait_directory(&c[0], n, 0, Duration::from_secs(150))?;
    for node in c.nodes() {
        wait_for(Duration::from_secs(90), "compute ready", || {
            compute_status(node)
        })?;
    }
    wait_until(Duration::from_secs(90), "every worker advertised", || {
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

/// The compute service's `/status` on `n`, or None while it does not answer.
pub fn compute_status(n: &Node) -> Result<Option<Value>> {
    match uds_get(n.state_dir().join("run/compute.sock"), "/status") {
        Ok(r) if r.status == 200 => Ok(Some(r.json()?)),
        _ => Ok(None),
    }
}

/// Every entry of a key-space table, as `n`'s coordinator has it (empty while it cannot say).
pub fn kv_scan(n: &Node, table: &str) -> Result<Vec<Value>> {
    let r = uds_get(
        n.state_dir().join("run/coordinator.sock"),
        &format!("/kv/{table}?prefix="),
    )?;
    if r.status != 200 {
        return Ok(Vec::new());
    }
    Ok(r.json()?["entries"].as_array().cloned().unwrap_or_default())
}

/// Waits (CLI `job wait`, up to 150 s) until job `id` ends; its record, or an error when it
/// did not end `done`.
pub fn wait_job(n: &Node, id: &str) -> Result<Value> {
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

/// Stores `bytes` in the mesh at `path` through `n`'s CLI (`hyphae put`), staging them in `dir`.
pub fn put_bytes(n: &Node, dir: &Path, path: &str, bytes: &[u8]) -> Result<()> {
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

/// Stores a matrix in the mesh in the job's input format.
pub fn put_matrix(n: &Node, dir: &Path, path: &str, m: &Matrix) -> Result<()> {
    put_bytes(n, dir, path, &matrix_file::encode(m))
}

/// Submits `a × b → out` on `n` with tiles of `tile` and, when given, `--mode`; the job's id.
pub fn submit(
    n: &Node,
    (a, b, out): (&str, &str, &str),
    tile: usize,
    mode: Option<&str>,
) -> Result<String> {
    let tile = tile.to_string();
    let mut args = vec!["job", "submit", a, b, out, "--tile", &tile];
    if let Some(mode) = mode {
        args.extend(["--mode", mode]);
    }
    let r = n.cli_timeout(&args, Duration::from_secs(120))?;
    if !r.success() {
        bail!("job submit: {r}");
    }
    Ok(r.stdout.trim().to_string())
}

/// The stored result of job `id`, read through `n` once `n` sees the job done (`n` may be a
/// follower that has not applied the job's last record yet).
pub fn fetch_result(n: &Node, id: &str, dir: &Path) -> Result<Matrix> {
    wait_job(n, id)?;
    let dest = dir.join(format!("result-{id}"));
    n.cli_ok(&["job", "result", id, dest.to_str().unwrap_or("")])?;
    Ok(matrix_file::decode(&std::fs::read(&dest)?)?)
}

/// Fails unless `c` is `a × b` within the documented tolerance.
pub fn assert_product(a: &Matrix, b: &Matrix, c: &Matrix) {
    assert_eq!(
        tolerance::check_product(a, b, c).expect("shapes"),
        None,
        "product differs from the reference"
    );
}
