//! The mesh store on the harness: files put and read back byte for byte on 1, 3 and 6 nodes;
//! degraded reads with two nodes dead; healing after `heal_after` restores full redundancy,
//! then two more holders die and every file still reads; clean JSON errors.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyphae_harness::{uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::{data, form_mesh_with};

/// Small chunks so that "chunk size ± 1" and "several chunks" stay cheap.
const CHUNK: usize = 64 * 1024;
const STORAGE: &str = "[storage]\nchunk_size = 65536\ngc_grace = \"1s\"\n";
const FAST_LIVENESS: &str =
    "[coordinator]\nheartbeat_interval = \"250ms\"\nsuspect_after = \"1s\"\nheal_after = \"3s\"\n";

fn sizes() -> Vec<usize> {
    vec![
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        3 * CHUNK + 17,
        (3 << 20) + 5,
    ]
}

fn write_local(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, bytes)?;
    Ok(p)
}

fn chunkstore_status(n: &Node) -> Result<Option<Value>> {
    let sock = n.state_dir().join("run/chunkstore.sock");
    match uds_get(&sock, "/status") {
        Ok(r) if r.status == 200 => Ok(Some(r.json()?)),
        _ => Ok(None),
    }
}

/// Waits until every node's chunkstore serves and `storage_nodes` lists them all.
fn wait_storage(c: &Cluster) -> Result<()> {
    for n in c.nodes() {
        wait_for(Duration::from_secs(60), "chunkstore ready", || {
            chunkstore_status(n)
        })?;
    }
    wait_until(
        Duration::from_secs(60),
        "every storage node published",
        || {
            let sock = c[0].state_dir().join("run/coordinator.sock");
            let r = uds_get(&sock, "/kv/storage_nodes?prefix=")?;
            Ok(r.status == 200 && r.json()?["entries"].as_array().map(Vec::len) == Some(c.len()))
        },
    )
}

fn put(n: &Node, local: &Path, path: &str, km: Option<(u32, u32)>) -> Result<Value> {
    let mut args = vec![
        "put".to_string(),
        local.display().to_string(),
        path.to_string(),
    ];
    if let Some((k, m)) = km {
        args.extend(["--k".into(), k.to_string(), "--m".into(), m.to_string()]);
    }
    let out = n.cli_timeout(&args, Duration::from_secs(120))?;
    if !out.success() {
        bail!("put {path} on n{}: {out}", n.index());
    }
    serde_json::from_str(out.stdout.trim()).context("put output")
}

fn get_bytes(n: &Node, path: &str, dir: &Path) -> Result<Vec<u8>> {
    let dest = dir.join(format!("got-n{}-{}", n.index(), path.replace('/', "_")));
    let out = n.cli_timeout(
        &["get", path, dest.to_str().unwrap_or("")],
        Duration::from_secs(120),
    )?;
    if !out.success() {
        bail!("get {path} on n{}: {out}", n.index());
    }
    let bytes = std::fs::read(&dest)?;
    std::fs::remove_file(&dest)?;
    Ok(bytes)
}

fn stat(n: &Node, path: &str) -> Result<Value> {
    let out = n.cli_timeout(&["stat", path, "--json"], Duration::from_secs(60))?;
    if !out.success() {
        bail!("stat {path}: {out}");
    }
    Ok(serde_json::from_str(&out.stdout)?)
}

/// Puts every size through node `writer` and reads each back through every node.
fn round_trips(
    c: &Cluster,
    writer: usize,
    km: Option<(u32, u32)>,
    tmp: &Path,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for (i, len) in sizes().into_iter().enumerate() {
        let bytes = data(len, i as u64 + 1);
        let local = write_local(tmp, &format!("in-{len}"), &bytes)?;
        let path = format!("rt/size-{len}");
        let v = put(&c[writer], &local, &path, km)?;
        assert_eq!(v["size"], len as u64, "{v}");
        files.push((path, bytes));
    }
    for n in c.nodes() {
        for (path, bytes) in &files {
            let got = get_bytes(n, path, tmp)?;
            assert!(
                got == *bytes,
                "{path} read on n{} differs ({} vs {} bytes)",
                n.index(),
                got.len(),
                bytes.len()
            );
        }
    }
    Ok(files)
}

/// A mesh of `nodes` nodes (`princes` of them voters) with small chunks, its chunkstores up.
fn storage_mesh(nodes: usize, princes: usize) -> Result<Cluster> {
    let c = Cluster::builder()
        .nodes(nodes)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    form_mesh_with(&c, princes, STORAGE)?;
    wait_storage(&c)?;
    Ok(c)
}

#[test]
fn round_trips_on_one_node_and_clean_errors() -> Result<()> {
    let c = storage_mesh(1, 0)?;
    let tmp = tempfile::tempdir()?;
    round_trips(&c, 0, None, tmp.path())?;
    let n = &c[0];

    // A range inside the third chunk, and one across a chunk boundary.
    let bytes = data(3 * CHUNK + 17, 6);
    let dest = tmp.path().join("range");
    let out = n.cli_ok(&[
        "get",
        "rt/size-196625",
        dest.to_str().unwrap_or(""),
        "--range",
        "65530-65545",
    ])?;
    assert!(out.success());
    assert_eq!(std::fs::read(&dest)?, bytes[65530..=65545].to_vec());

    // Errors: JSON with a stable code, and no file left behind.
    let sock = n.state_dir().join("run/chunkstore.sock");
    let r = uds_get(&sock, "/files/no/such/file")?;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()?["error"]["code"], "not_found");
    let r = uds_get(&sock, "/stat/a/../b")?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()?["error"]["code"], "invalid_path");
    let miss = tmp.path().join("missing");
    let out = n.cli(&[
        "get",
        "rt/size-1",
        miss.to_str().unwrap_or(""),
        "--range",
        "5-",
    ])?;
    assert!(!out.success());
    assert!(out.stderr.contains("range_not_satisfiable"), "{out}");
    let out = n.cli(&[
        "get",
        "rt/size-65536",
        miss.to_str().unwrap_or(""),
        "--range",
        "x-y",
    ])?;
    assert!(out.stderr.contains("range_not_satisfiable"), "{out}");
    assert!(!miss.exists() && !tmp.path().join("missing.part").exists());
    // More shards than nodes: refused, nothing listed.
    let local = write_local(tmp.path(), "small", b"abc")?;
    let out = n.cli(&[
        "put",
        local.to_str().unwrap_or(""),
        "toowide",
        "--k",
        "2",
        "--m",
        "1",
    ])?;
    assert!(
        !out.success() && out.stderr.contains("insufficient_storage"),
        "{out}"
    );
    let ls = n.cli_ok(&["ls", "toowide", "--json"])?;
    let v: Value = serde_json::from_str(&ls.stdout)?;
    assert_eq!(v["files"].as_array().map(Vec::len), Some(0), "{v}");

    // Delete: gone from the listing, 404 afterwards, and once the grace period is over its
    // one shard is reclaimed (the chunk is not shared with any other file).
    let shards = |n: &Node| -> Result<u64> {
        Ok(
            chunkstore_status(n)?.context("status")?["storage"]["shards"]
                .as_u64()
                .unwrap_or(0),
        )
    };
    let before = shards(n)?;
    n.cli_ok(&["rm", "rt/size-1"])?;
    wait_until(
        Duration::from_secs(30),
        "the deleted file's shard reclaimed",
        || Ok(shards(n)? == before - 1),
    )?;
    // Its content can be stored again afterwards (the tombstone is replaced).
    let again = write_local(tmp.path(), "again", &data(1, 2))?;
    put(n, &again, "rt/again", None)?;
    assert_eq!(get_bytes(n, "rt/again", tmp.path())?, data(1, 2));
    assert!(!n
        .cli(&["get", "rt/size-1", miss.to_str().unwrap_or("")])?
        .success());
    let out = n.cli(&["rm", "rt/size-1"])?;
    assert!(out.stderr.contains("not_found"), "{out}");
    Ok(())
}

#[test]
fn round_trips_on_three_nodes() -> Result<()> {
    let c = storage_mesh(3, 2)?;
    let tmp = tempfile::tempdir()?;
    round_trips(&c, 1, None, tmp.path())?;
    let v = stat(&c[2], "rt/size-65537")?;
    assert_eq!(
        (v["k"].as_u64(), v["m"].as_u64()),
        (Some(2), Some(1)),
        "default layout for 3 nodes: {v}"
    );
    assert_eq!(v["health"], "healthy", "{v}");
    // Shards of a chunk live on three distinct nodes.
    for chunk in v["chunks"].as_array().into_iter().flatten() {
        let mut nodes: Vec<&str> = chunk["shards"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["node"].as_str())
            .collect();
        nodes.sort();
        nodes.dedup();
        assert_eq!(nodes.len(), 3, "{chunk}");
    }
    Ok(())
}

fn holders(v: &Value) -> Vec<String> {
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
fn six_nodes_four_plus_two_survive_two_deaths_and_heal() -> Result<()> {
    let c = Cluster::builder()
        .nodes(6)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    form_mesh_with(&c, 2, &format!("{STORAGE}{FAST_LIVENESS}"))?;
    wait_storage(&c)?;
    let tmp = tempfile::tempdir()?;
    let files = round_trips(&c, 0, Some((4, 2)), tmp.path())?;
    let v = stat(&c[0], "rt/size-3145733")?;
    assert_eq!(
        (v["k"].as_u64(), v["m"].as_u64()),
        (Some(4), Some(2)),
        "{v}"
    );

    // Kill two bees (not voters: the coordinator keeps its quorum).
    let ids: Vec<String> = c
        .nodes()
        .iter()
        .map(support::node_id)
        .collect::<Result<_>>()?;
    let list = support::nodes(&c[0])?.unwrap_or_default();
    let role = |id: &str| {
        list.iter()
            .find(|n| n["id"] == id)
            .and_then(|n| n["role"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let bees: Vec<usize> = (0..6).filter(|&i| role(&ids[i]) == "bee").collect();
    assert!(bees.len() >= 2, "{list:#?}");
    let dead = [bees[0], bees[1]];
    for &d in &dead {
        c[d].kill()?;
    }
    let alive: Vec<usize> = (0..6).filter(|i| !dead.contains(i)).collect();
    // Every file still reads, byte for byte, from every survivor (degraded reads).
    for &i in &alive {
        for (path, bytes) in &files {
            assert!(
                get_bytes(&c[i], path, tmp.path())? == *bytes,
                "{path} on n{i} after two deaths"
            );
        }
    }

    // After heal_after the survivors rebuild what was lost, without being asked.
    let reader = alive[0];
    let dead_ids: Vec<&str> = dead.iter().map(|&d| ids[d].as_str()).collect();
    wait_until(
        Duration::from_secs(90),
        "full redundancy on the survivors",
        || {
            for (path, _) in &files {
                if path.ends_with("size-0") {
                    continue;
                }
                let v = stat(&c[reader], path)?;
                if v["health"] != "healthy"
                    || holders(&v).iter().any(|h| dead_ids.contains(&h.as_str()))
                {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    let status = chunkstore_status(&c[reader])?.context("status")?;
    assert_eq!(status["storage"]["under_replicated_chunks"], 0, "{status}");

    // Two more of the original holders die: the two survivors that hold the fewest shards
    // (one of each chunk: healing put the rebuilt ones on the other two). One at a time, so
    // the coordinator can replace a dead voter and keep its quorum.
    let mut count: Vec<(usize, usize)> = Vec::new();
    let stats: Vec<Value> = files
        .iter()
        .filter(|(p, _)| !p.ends_with("size-0"))
        .map(|(p, _)| stat(&c[reader], p))
        .collect::<Result<_>>()?;
    for &i in &alive {
        let n = stats
            .iter()
            .flat_map(|v| v["chunks"].as_array().cloned().unwrap_or_default())
            .flat_map(|ch| ch["shards"].as_array().cloned().unwrap_or_default())
            .filter(|sh| sh["node"] == ids[i].as_str())
            .count();
        count.push((n, i));
    }
    count.sort();
    let second = [count[0].1, count[1].1];
    for &d in &second {
        let watcher = *alive
            .iter()
            .find(|i| !second.contains(i))
            .context("a survivor")?;
        c[d].kill()?;
        let id = ids[d].clone();
        wait_until(
            Duration::from_secs(60),
            "the killed node marked down, quorum kept",
            || {
                let Some(list) = support::nodes(&c[watcher])? else {
                    return Ok(false);
                };
                let down = list
                    .iter()
                    .any(|n| n["id"] == id.as_str() && n["status"] == "down");
                let voters_up = list
                    .iter()
                    .filter(|n| {
                        (n["role"] == "queen" || n["role"] == "prince") && n["status"] == "up"
                    })
                    .count();
                Ok(down && voters_up >= 2)
            },
        )?;
    }
    let last = *alive
        .iter()
        .find(|i| !second.contains(i))
        .context("a survivor")?;
    for (path, bytes) in &files {
        let got = wait_for(Duration::from_secs(60), "a read after four deaths", || {
            Ok(get_bytes(&c[last], path, tmp.path()).ok())
        })?;
        assert!(got == *bytes, "{path} after four deaths");
    }
    Ok(())
}

/// Flips bytes of `n`'s segment files in place (the node keeps running).
fn flip_bytes(n: &Node, flips: usize, seed: u64) -> Result<usize> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let dir = n.state_dir().join("chunkstore/shards/segments");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let mut x = seed | 1;
    let mut done = 0;
    for seg in &segs {
        let len = std::fs::metadata(seg)?.len();
        if len < 8192 {
            continue;
        }
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(seg)?;
        for _ in 0..flips {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Past the first 4 KiB (segment header), inside the written data.
            let at = 4096 + x % (len - 4096);
            let mut b = [0u8; 1];
            f.seek(SeekFrom::Start(at))?;
            f.read_exact(&mut b)?;
            b[0] ^= 0x5a;
            f.seek(SeekFrom::Start(at))?;
            f.write_all(&b)?;
            done += 1;
        }
        f.sync_all()?;
    }
    Ok(done)
}

#[test]
fn flipped_bytes_never_reach_readers_and_scrub_repairs_them() -> Result<()> {
    let c = storage_mesh(3, 2)?;
    let tmp = tempfile::tempdir()?;
    let mut files = Vec::new();
    for i in 0..3u64 {
        let bytes = data(5 * CHUNK + 123, 100 + i);
        let local = write_local(tmp.path(), &format!("f{i}"), &bytes)?;
        put(&c[0], &local, &format!("rot/f{i}"), Some((2, 1)))?;
        files.push((format!("rot/f{i}"), bytes));
    }
    let victim = &c[1];
    let flipped = flip_bytes(victim, 6, 0xdead_beef)?;
    assert!(flipped > 0);
    // Reads through the victim (local shards first) still return the right bytes.
    for (path, bytes) in &files {
        assert!(
            get_bytes(victim, path, tmp.path())? == *bytes,
            "{path} after bit rot"
        );
    }
    // A scrub finds the damage and rebuilds every corrupt shard from the peers.
    victim.cli_ok(&["scrub", "--now"])?;
    let s = wait_for(Duration::from_secs(60), "the scrub to finish", || {
        let s = chunkstore_status(victim)?.context("status")?["storage"]["scrub"].clone();
        Ok((s["runs"].as_u64() >= Some(1) && s["running"] == false).then_some(s))
    })?;
    let found = s["corrupt_found"].as_u64().unwrap_or(0);
    assert!(
        found >= 1,
        "the flips hit shard data, the scrub must see it: {s}"
    );
    assert_eq!(s["repaired"].as_u64(), Some(found), "{s}");
    // A second scrub finds nothing new: everything was repaired.
    victim.cli_ok(&["scrub", "--now"])?;
    let s2 = wait_for(Duration::from_secs(60), "the second scrub", || {
        let s = chunkstore_status(victim)?.context("status")?["storage"]["scrub"].clone();
        Ok((s["runs"].as_u64() >= Some(2) && s["running"] == false).then_some(s))
    })?;
    assert_eq!(s2["corrupt_found"].as_u64(), Some(found), "{s2}");
    for (path, bytes) in &files {
        assert!(
            get_bytes(victim, path, tmp.path())? == *bytes,
            "{path} after the scrub"
        );
        assert_eq!(stat(&c[0], path)?["health"], "healthy");
    }
    Ok(())
}

/// The local store's consistency check on `n` (`POST /check` on chunkstore.sock).
fn store_check(n: &Node) -> Result<Value> {
    let sock = n.state_dir().join("run/chunkstore.sock");
    let out = std::process::Command::new("curl")
        .args(["-s", "-X", "POST", "--max-time", "60", "--unix-socket"])
        .arg(&sock)
        .arg("http://x/check")
        .output()?;
    serde_json::from_slice(&out.stdout).context("check answer")
}

#[test]
fn kill_dash_nine_during_puts_loses_no_acknowledged_file() -> Result<()> {
    let c = storage_mesh(3, 2)?;
    let tmp = tempfile::tempdir()?;
    let mut acked = Vec::new();
    let mut failed = 0;
    for round in 0..4usize {
        let bytes = data((2 << 20) + round, 500 + round as u64);
        let local = write_local(tmp.path(), &format!("k{round}"), &bytes)?;
        let path = format!("crash/k{round}");
        let victim = 1 + round % 2;
        let outcome = std::thread::scope(|s| -> Result<Result<Value>> {
            let writer = s.spawn(|| put(&c[0], &local, &path, Some((2, 1))));
            // Fault injection at a varying point of the upload (timing, not synchronisation).
            std::thread::sleep(Duration::from_millis(100 + 120 * round as u64));
            c[victim].kill()?;
            writer
                .join()
                .map_err(|_| anyhow::anyhow!("writer thread panicked"))
        })?;
        c[victim].start()?;
        c[victim].wait_ready(c.ready_timeout())?;
        wait_for(Duration::from_secs(60), "chunkstore back", || {
            chunkstore_status(&c[victim])
        })?;
        // The directory sees it up again (placement uses only nodes that are up).
        support::wait_directory(&c[0], 3, 2, Duration::from_secs(60))?;
        match outcome {
            Ok(v) => {
                assert_eq!(v["size"], bytes.len() as u64, "{v}");
                acked.push((path, bytes));
            }
            Err(_) => failed += 1,
        }
    }
    // One more put with nobody dying, so at least one acknowledged file is always checked.
    let bytes = data(300_000, 999);
    let local = write_local(tmp.path(), "calm", &bytes)?;
    // (A client retries: the first put after a restart can still meet a stale connection.)
    wait_for(
        Duration::from_secs(60),
        "a put with every node back",
        || Ok(put(&c[0], &local, "crash/calm", Some((2, 1))).ok()),
    )?;
    acked.push(("crash/calm".to_string(), bytes));
    eprintln!(
        "{} puts acknowledged, {failed} failed while a node was killed",
        acked.len()
    );
    // No acknowledged file is lost or damaged, read through every node.
    for n in c.nodes() {
        for (path, bytes) in &acked {
            let got = wait_for(Duration::from_secs(60), "an acknowledged file", || {
                Ok(get_bytes(n, path, tmp.path()).ok())
            })?;
            assert!(got == *bytes, "{path} on n{}", n.index());
        }
        // Every store's own consistency check passes after the crashes.
        let check = store_check(n)?;
        assert_eq!(check["consistent"], true, "n{}: {check}", n.index());
    }
    // Failed puts left no manifest behind.
    let ls = c[0].cli_ok(&["ls", "crash/", "--json"])?;
    let v: Value = serde_json::from_str(&ls.stdout)?;
    assert_eq!(
        v["files"].as_array().map(Vec::len),
        Some(acked.len()),
        "{v}"
    );
    Ok(())
}
