//! The memory replicator's test guest and status, shared by the tests that run VMs.

use std::path::PathBuf;

use anyhow::{bail, Result};
use hyphae_harness::{uds_get, Node};
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
