//! Discovery on the harness: nodes that know only a join token (no addresses) find their mesh
//! through the beacon (or mDNS, or pinned candidates) and join it.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyphae_harness::{init_mesh, uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::{nodes, token};

/// The beacon's `/status` on `node`.
fn beacon_status(node: &Node) -> Result<Value> {
    let r = uds_get(node.state_dir().join("run/beacon.sock"), "/status")?;
    serde_json::from_slice(&r.body).context("beacon /status")
}

/// Whether `node` lists exactly `total` nodes, all up.
fn sees_all_up(node: &Node, total: usize) -> Result<bool> {
    let Some(list) = nodes(node)? else {
        return Ok(false);
    };
    Ok(list.len() == total && list.iter().all(|n| n["status"] == "up"))
}

/// Starts n0 as the founder with `extra` config and returns a token for the others.
fn found_mesh(c: &Cluster, extra: &str, uses: u32) -> Result<String> {
    init_mesh(&c[0])?;
    c[0].write_config(extra)?;
    c[0].start()?;
    c[0].wait_ready(c.ready_timeout())?;
    wait_until(Duration::from_secs(60), "n0 sees itself up", || {
        sees_all_up(&c[0], 1)
    })?;
    token(&c[0], uses, "1h")
}

/// Starts every node but n0 with only `[mesh] join_token` (plus `extra`), and waits until
/// every node lists all of them up; returns the time from the last start to that moment.
fn join_all_without_addresses(c: &Cluster, token: &str, extra: &str) -> Result<Duration> {
    for n in c.nodes().iter().skip(1) {
        n.write_config(&format!("[mesh]\njoin_token = \"{token}\"\n{extra}"))?;
    }
    for n in c.nodes().iter().skip(1) {
        n.start()?;
    }
    let last_start = Instant::now();
    let total = c.len();
    wait_until(Duration::from_secs(240), "every node sees every node up", || {
        for n in c.nodes() {
            if !sees_all_up(n, total)? {
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    Ok(last_start.elapsed())
}

#[test]
fn eight_nodes_join_with_one_token_and_no_addresses() -> Result<()> {
    let c = Cluster::builder()
        .nodes(8)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .ready_timeout(Duration::from_secs(120))
        .build()?;
    let t = found_mesh(&c, "", 7)?;
    let took = join_all_without_addresses(&c, &t, "")?;
    println!(
        "discovery: 8 nodes converged {} ms after the last start (every directory lists 8 up)",
        took.as_millis()
    );
    for n in c.nodes().iter().skip(1) {
        let s = beacon_status(n)?;
        assert_eq!(s["found_by"], "beacon", "n{}: {s}", n.index());
        assert_eq!(s["standing"], "member", "n{}: {s}", n.index());
    }
    // `hyphae status` tells which step found the mesh.
    let out = c[3].cli_ok(&["status"])?;
    assert!(out.stdout.contains("found by beacon"), "{out}");
    let s = beacon_status(&c[0])?;
    assert!(s["members"].as_array().map(Vec::len) >= Some(7), "{s}");
    Ok(())
}

#[test]
fn tmp_two() -> Result<()> {
    let c = Cluster::builder()
        .nodes(2)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .env("RUST_LOG", "info,hyphae_beacon=debug,hyphae_coordinator::join=debug")
        .build()?;
    let t = found_mesh(&c, "", 1)?;
    c[1].write_config(&format!("[mesh]\njoin_token = \"{t}\"\n"))?;
    c[1].start()?;
    let t0 = Instant::now();
    wait_until(Duration::from_secs(60), "2 up", || Ok(sees_all_up(&c[0], 2)? && sees_all_up(&c[1], 2)?))?;
    println!("took {:?}", t0.elapsed());
    Ok(())
}
