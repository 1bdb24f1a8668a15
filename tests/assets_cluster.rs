//! Shared assets on a 3-node mesh: `[share] dirs` scanned and published, `query-asset` by
//! name and hash names the nodes that have each file, `asset refresh` picks up additions and
//! removals, `asset fetch` brings the bytes from a peer over QUIC, verified: a file changed
//! behind the scanner's back is refused and leaves nothing behind.

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyphae_harness::{uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::{data, found_mesh_with, join_config, node_id, token, wait_directory};

fn share(dir: &Path) -> String {
    format!("[share]\ndirs = [\"{}\"]\n", dir.display())
}

fn query(n: &Node, key: &str, value: &str) -> Result<Vec<Value>> {
    let out = n.cli(&["query-asset", &format!("--{key}"), value])?;
    if !out.success() {
        bail!("query-asset: {out}");
    }
    let v: Value = serde_json::from_str(&out.stdout).context("query-asset output")?;
    Ok(v["assets"].as_array().cloned().unwrap_or_default())
}

fn nodes_of(asset: &Value) -> Vec<String> {
    asset["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[test]
fn assets_are_found_by_name_and_hash_and_fetched_verified() -> Result<()> {
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    let tmp = tempfile::tempdir()?;
    let (a, b) = (tmp.path().join("share-n1"), tmp.path().join("share-n2"));
    std::fs::create_dir_all(a.join("iso"))?;
    std::fs::create_dir_all(&b)?;
    let boot = data((2 << 20) + 3, 1);
    let readme = b"read me\n".to_vec();
    let other = data(100_000, 2);
    std::fs::write(a.join("iso/boot.img"), &boot)?;
    std::fs::write(a.join("readme.txt"), &readme)?;
    std::fs::write(b.join("copy-of-boot.img"), &boot)?;
    std::fs::write(b.join("other.bin"), &other)?;

    // n0 shares nothing; n1 and n2 share one directory each.
    found_mesh_with(&c, "")?;
    let tok = token(&c[0], 2, "1h")?;
    for (i, dir) in [(1usize, &a), (2, &b)] {
        c[i].write_config(&format!(
            "{}{}",
            join_config(Some(&tok), &[&c[0]]),
            share(dir)
        ))?;
        c[i].start()?;
    }
    for n in c.nodes() {
        n.wait_ready(c.ready_timeout())?;
    }
    wait_directory(&c[0], 3, 2, Duration::from_secs(60))?;
    let (n1, n2) = (node_id(&c[1])?, node_id(&c[2])?);

    // By hash: both holders of the same bytes, whatever their names.
    let boot_hash = hash(&boot);
    let found = wait_for(Duration::from_secs(60), "boot.img on n1 and n2", || {
        let got = query(&c[0], "hash", &boot_hash)?;
        Ok(got.first().filter(|g| nodes_of(g).len() == 2).cloned())
    })?;
    let mut want = vec![n1.clone(), n2.clone()];
    want.sort();
    assert_eq!(nodes_of(&found), want, "{found}");
    assert_eq!(found["size"], boot.len() as u64);
    // By name: the relative path or the file name.
    let by_name = query(&c[0], "name", "readme.txt")?;
    assert_eq!(by_name.len(), 1, "{by_name:?}");
    assert_eq!(by_name[0]["hash"], hash(&readme));
    assert_eq!(nodes_of(&by_name[0]), vec![n1.clone()]);
    assert_eq!(query(&c[0], "name", "iso/boot.img")?.len(), 1);
    assert!(query(&c[0], "name", "nothing-like-it")?.is_empty());
    // A malformed query is a clean 400.
    let sock = c[0].state_dir().join("run/chunkstore.sock");
    let r = uds_get(&sock, "/assets?hash=xyz")?;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = uds_get(&sock, "/assets")?;
    assert_eq!(r.status, 400, "{}", r.text());

    // Fetched on n0 (which has none) from a peer, byte for byte.
    let out = tmp.path().join("boot.fetched");
    c[0].cli_ok(&["asset", "fetch", &boot_hash, out.to_str().unwrap_or("")])?;
    assert!(std::fs::read(&out)? == boot);

    // Additions and removals show after a refresh.
    let new = data(5000, 3);
    std::fs::write(a.join("new.bin"), &new)?;
    std::fs::remove_file(a.join("readme.txt"))?;
    c[1].cli_ok(&["asset", "refresh"])?;
    let got = query(&c[0], "hash", &hash(&new))?;
    assert_eq!(got.len(), 1);
    assert_eq!(nodes_of(&got[0]), vec![n1.clone()]);
    wait_until(Duration::from_secs(30), "readme.txt withdrawn", || {
        Ok(query(&c[0], "name", "readme.txt")?.is_empty())
    })?;

    // A file changed behind the scanner's back: the fetch is refused, nothing is left.
    let other_hash = hash(&other);
    std::fs::write(b.join("other.bin"), data(100_000, 4))?;
    let bad = tmp.path().join("other.fetched");
    let out = c[0].cli(&["asset", "fetch", &other_hash, bad.to_str().unwrap_or("")])?;
    assert!(!out.success(), "{out}");
    assert!(!bad.exists());
    assert!(!tmp.path().join("other.fetched.part").exists());
    // Nobody has an unknown hash: a clean not_found.
    let out = c[0].cli(&[
        "asset",
        "fetch",
        &"0".repeat(64),
        bad.to_str().unwrap_or(""),
    ])?;
    assert!(!out.success() && out.stderr.contains("not_found"), "{out}");
    Ok(())
}
