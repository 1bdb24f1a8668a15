//! Rebalancing on join: files on 3 nodes, a 4th joins → some shards move to it on their own,
//! no chunk is ever under-replicated while they do, and afterwards every file reads back
//! byte for byte through every node with every shard present where `stat` says.

mod support;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyphae_harness::{uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::{data, found_mesh_with, join_config, node_id, token, wait_directory};

const STORAGE: &str = "[storage]\nchunk_size = 65536\n";

fn storage_status(n: &Node) -> Result<Option<Value>> {
    let sock = n.state_dir().join("run/chunkstore.sock");
    match uds_get(&sock, "/status") {
        Ok(r) if r.status == 200 => Ok(Some(r.json()?["storage"].clone())),
        _ => Ok(None),
    }
}

fn stat(n: &Node, path: &str) -> Result<Value> {
    let out = n.cli_timeout(&["stat", path, "--json"], Duration::from_secs(60))?;
    if !out.success() {
        bail!("stat {path}: {out}");
    }
    Ok(serde_json::from_str(&out.stdout)?)
}

fn start_joiner(c: &Cluster, i: usize, tok: &str) -> Result<()> {
    c[i].write_config(&format!("{}{STORAGE}", join_config(Some(tok), &[&c[0]])))?;
    c[i].start()
}

#[test]
fn a_joining_node_takes_shards_without_any_chunk_losing_redundancy() -> Result<()> {
    let c = Cluster::builder()
        .nodes(4)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    found_mesh_with(&c, STORAGE)?;
    let tok = token(&c[0], 3, "1h")?;
    for i in 1..3 {
        start_joiner(&c, i, &tok)?;
    }
    for i in 1..3 {
        c[i].wait_ready(c.ready_timeout())?;
    }
    wait_directory(&c[0], 3, 2, Duration::from_secs(60))?;
    wait_until(Duration::from_secs(60), "three storage nodes", || {
        let r = uds_get(
            c[0].state_dir().join("run/coordinator.sock"),
            "/kv/storage_nodes?prefix=",
        )?;
        Ok(r.status == 200 && r.json()?["entries"].as_array().map(Vec::len) == Some(3))
    })?;

    // Ten files of five chunks each, 2+1 (the default on three nodes).
    let tmp = tempfile::tempdir()?;
    let mut files = Vec::new();
    for i in 0..10u64 {
        let bytes = data(5 * 65536 - 7, 40 + i);
        let local = tmp.path().join(format!("in-{i}"));
        std::fs::write(&local, &bytes)?;
        let path = format!("rebal/f{i}");
        let out = c[0].cli_timeout(
            &["put", local.to_str().unwrap_or(""), &path],
            Duration::from_secs(120),
        )?;
        if !out.success() {
            bail!("put {path}: {out}");
        }
        files.push((path, bytes));
    }

    // The 4th node joins.
    start_joiner(&c, 3, &tok)?;
    c[3].wait_ready(c.ready_timeout())?;
    let newcomer = node_id(&c[3])?;
    // Shards move to it; at every look, no chunk is under-replicated anywhere.
    wait_until(Duration::from_secs(120), "shards moved and settled", || {
        let mut moved = 0;
        let mut pending = 0;
        for n in c.nodes() {
            let Some(s) = storage_status(n)? else {
                return Ok(false);
            };
            assert_eq!(
                s["under_replicated_chunks"],
                0,
                "n{} reports under-replication during rebalancing: {s}",
                n.index()
            );
            moved += s["rebalance"]["moved"].as_u64().context("moved")?;
            pending += s["rebalance"]["pending"].as_u64().context("pending")?;
        }
        let on_new = storage_status(&c[3])?
            .and_then(|s| s["shards"].as_u64())
            .unwrap_or(0);
        Ok(moved > 0 && pending == 0 && on_new > 0)
    })?;

    // Every file reads through every node, and stat finds every shard where it says.
    let mut on_newcomer = 0;
    for (path, bytes) in &files {
        for n in c.nodes() {
            let dest = tmp.path().join("got");
            let got = wait_for(Duration::from_secs(60), "a file read", || {
                let out = n.cli(&["get", path, dest.to_str().unwrap_or("")])?;
                Ok(out.success().then(|| std::fs::read(&dest)).transpose()?)
            })?;
            assert!(got == *bytes, "{path} through n{}", n.index());
        }
        let s = stat(&c[0], path)?;
        assert_eq!(s["health"], "healthy", "{s}");
        for chunk in s["chunks"].as_array().context("chunks")? {
            let shards = chunk["shards"].as_array().context("shards")?;
            assert_eq!(shards.len(), 3, "{chunk}");
            let mut nodes: Vec<&str> = shards.iter().filter_map(|x| x["node"].as_str()).collect();
            assert!(
                shards.iter().all(|x| x["present"] == true),
                "{path}: {chunk}"
            );
            on_newcomer += nodes.iter().filter(|n| **n == newcomer).count();
            nodes.sort();
            nodes.dedup();
            assert_eq!(
                nodes.len(),
                3,
                "shards of a chunk on distinct nodes: {chunk}"
            );
        }
    }
    assert!(on_newcomer > 0, "no shard lives on the new node");
    Ok(())
}
