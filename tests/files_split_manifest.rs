//! Files whose manifest does not fit one coordinator value (≈ 6 GiB at 4+2 with 4 MiB chunks)
//! get a split manifest: a root in `files` and segments in `file_segments`. Here the value
//! limit is lowered (`[storage] manifest_value_bytes`) and the chunks are small so that a
//! 4 MiB file has a manifest of many segments, and every operation is checked on it: round
//! trip, range reads across segment boundaries, stat, ls, heal after a node death, overwrite,
//! rm and garbage collection.

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyphae_harness::{uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::{data, form_mesh_with};

const CHUNK: usize = 64 * 1024;
/// 65 chunks at 2+1: about 50 KiB of chunk entries, cut into 4 KiB segments (~20). Few chunks,
/// so that the put's coordinator writes stay few on a loaded machine.
const FILE_LEN: usize = 64 * CHUNK + 1234;
const CONFIG: &str =
    "[storage]\nchunk_size = 65536\nmanifest_value_bytes = 4096\ngc_grace = \"1s\"\n\
     [coordinator]\nheartbeat_interval = \"250ms\"\nsuspect_after = \"2s\"\nheal_after = \"4s\"\n";

fn kv(n: &Node, uri: &str) -> Result<Value> {
    let r = uds_get(n.state_dir().join("run/coordinator.sock"), uri)?;
    if r.status != 200 {
        bail!("{uri}: {} {}", r.status, r.text());
    }
    r.json()
}

/// Number of `file_segments` entries.
fn segments(n: &Node) -> Result<usize> {
    Ok(kv(n, "/kv/file_segments?prefix=")?["entries"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0))
}

fn get(n: &Node, path: &str, dest: &Path, range: Option<&str>) -> Result<Vec<u8>> {
    let mut args = vec!["get", path, dest.to_str().unwrap_or("")];
    if let Some(r) = range {
        args.extend(["--range", r]);
    }
    let out = n.cli_timeout(&args, Duration::from_secs(120))?;
    if !out.success() {
        bail!("get {path} {range:?} on n{}: {out}", n.index());
    }
    let bytes = std::fs::read(dest)?;
    std::fs::remove_file(dest)?;
    Ok(bytes)
}

fn stat(n: &Node, path: &str) -> Result<Value> {
    let out = n.cli_timeout(&["stat", path, "--json"], Duration::from_secs(120))?;
    if !out.success() {
        bail!("stat {path}: {out}");
    }
    Ok(serde_json::from_str(&out.stdout)?)
}

fn shard_nodes(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["chunks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["shards"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["node"].as_str().map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn a_file_with_a_split_manifest_reads_heals_and_deletes() -> Result<()> {
    let c = Cluster::builder()
        .nodes(4)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    form_mesh_with(&c, 2, CONFIG)?;
    for n in c.nodes() {
        wait_for(Duration::from_secs(60), "chunkstore ready", || {
            let r = uds_get(n.state_dir().join("run/chunkstore.sock"), "/status");
            Ok(r.ok().filter(|r| r.status == 200).map(|_| ()))
        })?;
    }
    wait_until(
        Duration::from_secs(60),
        "every storage node published",
        || {
            Ok(kv(&c[0], "/kv/storage_nodes?prefix=")?["entries"]
                .as_array()
                .map(Vec::len)
                == Some(c.len()))
        },
    )?;
    let tmp = tempfile::tempdir()?;
    let bytes = data(FILE_LEN, 42);
    let local = tmp.path().join("big");
    std::fs::write(&local, &bytes)?;

    // The put commits a split manifest.
    let out = c[0].cli_timeout(
        &[
            "put",
            local.to_str().unwrap_or(""),
            "big/file.bin",
            "--k",
            "2",
            "--m",
            "1",
        ],
        Duration::from_secs(180),
    )?;
    assert!(out.success(), "{out}");
    let root: Value = serde_json::from_str(
        kv(&c[0], "/kv/files/big%2Ffile.bin")?["value"]
            .as_str()
            .context("root value")?,
    )?;
    assert_eq!(root["version"], 3, "not split: {root}");
    let n_segments = root["segments"].as_array().map(Vec::len).unwrap_or(0);
    assert!(n_segments >= 8, "{n_segments} segments");
    assert_eq!(segments(&c[0])?, n_segments);

    // Round trip from every node; range reads inside one segment and across segments.
    for n in c.nodes() {
        let got = get(n, "big/file.bin", &tmp.path().join("got"), None)?;
        assert!(got == bytes, "read on n{} differs", n.index());
    }
    let boundary = root["segments"][1]["offset"].as_u64().context("offset")? as usize;
    for (a, b) in [
        (5, 70_000),
        (boundary - 3, boundary + 2),
        (boundary - 100_000, boundary + 300_000),
        (FILE_LEN - 10, FILE_LEN - 1),
    ] {
        let got = get(
            &c[1],
            "big/file.bin",
            &tmp.path().join("range"),
            Some(&format!("{a}-{b}")),
        )?;
        assert!(got == bytes[a..=b], "range {a}-{b}");
    }

    // stat and ls see the whole chunk list.
    let chunks = FILE_LEN.div_ceil(CHUNK);
    let v = stat(&c[2], "big/file.bin")?;
    assert_eq!(v["size"], FILE_LEN as u64, "{v}");
    assert_eq!(
        v["chunks"].as_array().map(Vec::len),
        Some(chunks),
        "stat chunks"
    );
    assert_eq!(v["health"], "healthy");
    let ls: Value = serde_json::from_str(&c[3].cli_ok(&["ls", "big/", "--json"])?.stdout)?;
    assert_eq!(ls["files"][0]["chunks"], chunks as u64, "{ls}");
    assert_eq!(ls["files"][0]["size"], FILE_LEN as u64, "{ls}");

    // A bee dies: after heal_after its shards are rebuilt on the others, found through the
    // `chunks` table, which a split manifest does not change.
    let ids: Vec<String> = c
        .nodes()
        .iter()
        .map(support::node_id)
        .collect::<Result<_>>()?;
    let list = support::nodes(&c[0])?.unwrap_or_default();
    let bee = (0..c.len())
        .find(|&i| {
            list.iter()
                .any(|n| n["id"] == ids[i].as_str() && n["role"] == "bee")
        })
        .context("a bee")?;
    assert!(shard_nodes(&v).contains(&ids[bee]), "the bee holds shards");
    c[bee].kill()?;
    let reader = (0..c.len()).find(|&i| i != bee).context("a survivor")?;
    wait_until(
        Duration::from_secs(120),
        "full redundancy without the dead bee",
        || {
            let v = stat(&c[reader], "big/file.bin")?;
            Ok(v["health"] == "healthy" && !shard_nodes(&v).contains(&ids[bee]))
        },
    )?;
    let got = get(&c[reader], "big/file.bin", &tmp.path().join("healed"), None)?;
    assert!(got == bytes, "read after the heal differs");

    // Overwritten by a small file: the old segments go, the new manifest is whole.
    let small = data(3 * CHUNK, 7);
    let local_small = tmp.path().join("small");
    std::fs::write(&local_small, &small)?;
    let out = c[reader].cli_timeout(
        &["put", local_small.to_str().unwrap_or(""), "big/file.bin"],
        Duration::from_secs(120),
    )?;
    assert!(out.success(), "{out}");
    assert_eq!(
        segments(&c[reader])?,
        0,
        "the replaced version's segments remain"
    );
    assert_eq!(
        get(
            &c[reader],
            "big/file.bin",
            &tmp.path().join("small-got"),
            None
        )?,
        small
    );

    // Split again, then removed: no segment, no listing, and every chunk reclaimed.
    let out = c[reader].cli_timeout(
        &[
            "put",
            local.to_str().unwrap_or(""),
            "big/again.bin",
            "--k",
            "2",
            "--m",
            "1",
        ],
        Duration::from_secs(180),
    )?;
    assert!(out.success(), "{out}");
    assert!(segments(&c[reader])? >= 8);
    c[reader].cli_ok(&["rm", "big/again.bin"])?;
    c[reader].cli_ok(&["rm", "big/file.bin"])?;
    assert_eq!(segments(&c[reader])?, 0);
    let ls: Value = serde_json::from_str(&c[reader].cli_ok(&["ls", "big/", "--json"])?.stdout)?;
    assert_eq!(ls["files"].as_array().map(Vec::len), Some(0), "{ls}");
    wait_until(Duration::from_secs(120), "every chunk reclaimed", || {
        let entries = kv(&c[reader], "/kv/chunks?prefix=")?;
        Ok(entries["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                e["value"]
                    .as_str()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .is_some_and(|r| r["state"] == "reclaimed")
            }))
    })?;
    Ok(())
}
