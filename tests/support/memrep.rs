//! The memory replicator's test guest and status, shared by the tests that run VMs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use hyphae_harness::{uds_get, wait_for, Cluster, Node};
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
