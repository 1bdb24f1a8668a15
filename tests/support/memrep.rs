//! The memory replicator's test guest and status, shared by the tests that run VMs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyphae_harness::{uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;

/// The project's test guest (kernel, initramfs: `services/memrep/guest/build.sh`), built once
/// and cached under /var/cache/hyphae.
pub fn guest() -> Result<(PathBuf, PathBuf)> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/services/memrep/guest/build.sh"
    );
    let out = std::process::Command::new(script).output()?;
    if !out.status.success() {
        bail!("guest build: {}", String::from_utf8_lossy(&out.stderr));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    Ok((dir.join("vmlinuz"), dir.join("initrd.cpio")))
}

/// memrep's `/status` on `n`, or None while it does not answer.
pub fn memrep_status(n: &Node) -> Result<Option<Value>> {
    let sock = n.state_dir().join("run/memrep.sock");
    match uds_get(&sock, "/status") {
        Ok(r) if r.status == 200 => Ok(Some(r.json()?)),
        _ => Ok(None),
    }
}

/// Each node's memrep once it answers, by node index: its directory in /dev/shm (to check
/// nothing is left there) and its node id (to find a VM's host among the nodes).
pub fn memrep_nodes(c: &Cluster) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let mut shm = Vec::new();
    let mut ids = Vec::new();
    for n in c.nodes() {
        let s = wait_for(Duration::from_secs(60), "memrep ready", || memrep_status(n))?;
        shm.push(PathBuf::from(s["shm_dir"].as_str().unwrap_or_default()));
        ids.push(s["node_id"].as_str().unwrap_or_default().to_string());
    }
    Ok((shm, ids))
}

/// Quick liveness for the failover tests: suspect after 1 s, the failure signal memrep's
/// failover actor acts on.
pub const FAST_LIVENESS: &str =
    "[coordinator]\nheartbeat_interval = \"250ms\"\nsuspect_after = \"1s\"\n";

/// `hyphae vm status` on `n`: record, replicas, and stats when `n` runs the VM.
pub fn vm_status(n: &Node, vm: &str) -> Result<Option<Value>> {
    let out = n.cli(&["vm", "status", vm])?;
    if !out.success() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(out.stdout_trimmed())?))
}

/// The live figures of a VM running on `n` (None: `n` does not run it).
pub fn vm_stats(n: &Node, vm: &str) -> Result<Option<Value>> {
    Ok(vm_status(n, vm)?
        .map(|v| v["stats"].clone())
        .filter(|s| !s.is_null()))
}

/// Waits until `reader`'s view of the VM's record names a primary other than `old_primary`,
/// running, under a generation above `above` (failover done, without any `vm resume`); the
/// record.
pub fn wait_new_primary(
    reader: &Node,
    vm: &str,
    old_primary: &str,
    above: u64,
    limit: Duration,
) -> Result<Value> {
    wait_for(
        limit,
        "the record naming a new primary, running, under a higher generation",
        || {
            let Some(s) = vm_status(reader, vm)? else {
                return Ok(None);
            };
            let r = &s["record"];
            let moved = r["primary"] != old_primary
                && r["state"] == "running"
                && r["generation"].as_u64().unwrap_or(0) > above;
            Ok(moved.then(|| r.clone()))
        },
    )
}

/// Now, in Unix milliseconds (the VM record's failover timings are in these).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Every `wave counter=N` the test guest printed on a console, in order.
pub fn serial_counters(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("wave counter="))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// The highest counter on a console.
pub fn serial_counter(text: &str) -> Option<u64> {
    serial_counters(text).into_iter().max()
}

/// Waits until the guest on `n` has printed a counter of at least `at_least` and every
/// backup has acknowledged an epoch taken after that counter was read; returns the counter
/// (every backup's replica holds at least it). With `backups`, also waits until the primary
/// replicates to that many backups (so "every backup" means them all).
pub fn acked_counter(n: &Node, vm: &str, at_least: u64, backups: Option<usize>) -> Result<u64> {
    let counter = wait_for(Duration::from_secs(300), "guest counting", || {
        if let Some(s) = vm_stats(n, vm)? {
            if s["state"] == "failed" {
                bail!("VM failed: {s}");
            }
        }
        let console = n.cli(&["vm", "console", vm])?.stdout;
        Ok(serial_counter(&console).filter(|&c| c >= at_least))
    })?;
    // Checkpoints numbered above the one taken last before this read began after the
    // counter was printed.
    let taken = vm_stats(n, vm)?.context("stats")?["epoch"]
        .as_u64()
        .unwrap_or(0);
    wait_until(
        Duration::from_secs(180),
        "an epoch taken after the counter acknowledged by every backup",
        || {
            let s = vm_stats(n, vm)?.context("stats")?;
            let enough = backups.is_none_or(|b| s["backups"].as_array().map(Vec::len) == Some(b));
            Ok(enough && s["acknowledged"].as_u64().unwrap_or(0) > taken)
        },
    )?;
    Ok(counter)
}

/// Pids of QEMU processes whose command line names `shm_dir` (a node's memrep directory in
/// /dev/shm: every RAM file of that node's VMs lies there).
pub fn qemu_pids_in(shm_dir: &Path) -> Vec<u32> {
    let needle = shm_dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("qemu-system") && cmdline.contains(&format!("{needle}/")) {
            pids.push(pid);
        }
    }
    pids
}

/// Files in a node's /dev/shm directory that are not replicas (a primary's RAM or disk):
/// what a primary killed with its node leaves until that node's memrep starts again.
pub fn primary_files_in(shm_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(shm_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("-replica.ram") && !n.ends_with("-replica.disk"))
        .collect()
}

/// Removes what memrep leaves on the host after a test whose nodes were killed: each node's
/// /dev/shm directory (replicas stay until deleted; a killed primary's RAM file until its
/// memrep starts again) and its VM cgroups.
pub fn remove_memrep_leftovers(shm: &[PathBuf]) {
    for dir in shm {
        // The node tag ends the shm directory's name.
        if let Some(tag) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("hyphae-memrep-"))
        {
            hyphae_memrep::cgroup_throttle::remove_node_leftovers(tag);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
