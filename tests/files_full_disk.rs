//! The mesh store with one node's disk full: puts that can go elsewhere do, puts that cannot
//! fail with `insufficient_storage` (507) and leave nothing visible, the full node's store stays
//! consistent, and once space is freed the full layout is accepted again.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyphae_harness::{uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::{data, form_mesh_with};

const STORAGE: &str = "[storage]\nchunk_size = 65536\n";
/// The full node's store: a small tmpfs (the store keeps a 64 MiB minimum reserve, RocksDB
/// preallocates its log).
const TMPFS_MIB: u64 = 256;

/// A tmpfs mounted over a node's shard store, unmounted (lazily) when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, mib: u64) -> Result<SmallDisk> {
        std::fs::create_dir_all(dir)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()?;
        if !out.status.success() {
            bail!("mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(SmallDisk {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn put(n: &Node, local: &Path, path: &str, k: u32, m: u32) -> Result<hyphae_harness::CmdOutput> {
    n.cli_timeout(
        &[
            "put",
            local.to_str().unwrap_or(""),
            path,
            "--k",
            &k.to_string(),
            "--m",
            &m.to_string(),
        ],
        Duration::from_secs(120),
    )
}

fn listed(n: &Node, prefix: &str) -> Result<usize> {
    let out = n.cli_ok(&["ls", prefix, "--json"])?;
    let v: Value = serde_json::from_str(&out.stdout)?;
    v["files"].as_array().map(Vec::len).context("ls --json")
}

fn store_check(n: &Node) -> Result<Value> {
    let sock = n.state_dir().join("run/chunkstore.sock");
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", "--max-time", "60", "--unix-socket"])
        .arg(&sock)
        .arg("http://x/check")
        .output()?;
    serde_json::from_slice(&out.stdout).context("check answer")
}

/// `free_bytes` node `who` published, as node 0 reads it.
fn published_free(c: &Cluster, who: usize) -> Result<Option<u64>> {
    let id = support::node_id(&c[who])?;
    let sock = c[0].state_dir().join("run/coordinator.sock");
    let r = uds_get(&sock, &format!("/kv/storage_nodes/{id}"))?;
    if r.status != 200 {
        return Ok(None);
    }
    let v = r.json()?;
    let record: Value = match v["value"].as_str() {
        Some(s) => serde_json::from_str(s)?,
        None => return Ok(None),
    };
    Ok(record["free_bytes"].as_u64())
}

#[test]
fn a_full_node_gets_no_shards_and_a_layout_that_needs_it_fails_cleanly() -> Result<()> {
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    let store_dir = c[2].state_dir().join("chunkstore/shards");
    let _disk = SmallDisk::mount(&store_dir, TMPFS_MIB)?;
    form_mesh_with(&c, 2, STORAGE)?;
    for n in c.nodes() {
        wait_for(Duration::from_secs(60), "chunkstore ready", || {
            let r = uds_get(n.state_dir().join("run/chunkstore.sock"), "/status");
            Ok(r.ok().filter(|r| r.status == 200).map(|_| ()))
        })?;
    }
    let free_before = wait_for(Duration::from_secs(60), "n2 published", || {
        published_free(&c, 2)
    })?;
    eprintln!("n2 published {free_before} free bytes before the filler");
    let tmp = tempfile::tempdir()?;

    // Fill n2's disk past its reserve (what another program writing there would do).
    let filler = store_dir.join("filler");
    let avail = nix::sys::statvfs::statvfs(&store_dir)?;
    let free = avail.blocks_available() * avail.fragment_size();
    std::fs::write(&filler, vec![7u8; free.saturating_sub(4 << 20) as usize])?;

    // 1+1 fits on the two others: every put succeeds (shards n2 refuses go elsewhere) and
    // reads back.
    let mut files = Vec::new();
    for i in 0..6u64 {
        let bytes = data(300_000, 100 + i);
        let local = tmp.path().join(format!("in-{i}"));
        std::fs::write(&local, &bytes)?;
        let path = format!("full/one-{i}");
        let out = put(&c[0], &local, &path, 1, 1)?;
        assert!(out.success(), "{out}");
        files.push((path, bytes));
    }
    for (path, bytes) in &files {
        let dest = tmp.path().join("got");
        c[1].cli_ok(&["get", path, dest.to_str().unwrap_or("")])?;
        assert!(std::fs::read(&dest)? == *bytes, "{path}");
    }

    // 2+1 needs n2: refused with insufficient_storage, nothing listed.
    wait_until(
        Duration::from_secs(60),
        "n2 publishes that it is full",
        || Ok(published_free(&c, 2)? == Some(0)),
    )?;
    let local = tmp.path().join("wide");
    std::fs::write(&local, data(300_000, 7))?;
    let out = put(&c[0], &local, "full/wide", 2, 1)?;
    assert!(
        !out.success() && out.stderr.contains("insufficient_storage"),
        "{out}"
    );
    assert_eq!(listed(&c[0], "full/wide")?, 0);
    assert_eq!(listed(&c[0], "full/")?, files.len());

    // The full node's store is consistent.
    let check = store_check(&c[2])?;
    assert_eq!(check["consistent"], true, "{check}");

    // Space freed: the wide layout is accepted again once n2 republishes.
    std::fs::remove_file(&filler)?;
    wait_for(
        Duration::from_secs(90),
        "a 2+1 put after freeing space",
        || {
            Ok(put(&c[0], &local, "full/wide", 2, 1)?
                .success()
                .then_some(()))
        },
    )?;
    assert_eq!(listed(&c[0], "full/")?, files.len() + 1);
    Ok(())
}
