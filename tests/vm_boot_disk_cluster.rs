//! A VM booted from its disk alone, on the harness: a 3-node mesh; `hyphae vm create --disk
//! IMAGE` on n1 with no `--kernel` (the image from `services/memrep/guest/build-boot-disk.sh`:
//! FAT + syslinux with the test guest inside), one replica. The firmware boots the disk
//! (`SYSLINUX` on the console) and the guest counts. Then a planned migration of this VM with a
//! disk to n2 (`hyphae vm migrate`: RAM, disk and devices in a base epoch if n2 is not a
//! backup yet, one pause), and kill -9 of n2's node: without any `vm resume` the VM's backup
//! resumes it, and the counter continues from at least the acknowledged one each time.

mod support;

use std::time::Duration;
use support::memrep::{
    acked_counter, memrep_nodes, remove_memrep_leftovers, serial_counters, vm_stats, vm_status,
    wait_new_primary,
};

use anyhow::{bail, Context, Result};
use hyphae_harness::{wait_for, Cluster, Node};
use serde_json::Value;
use support::form_mesh_with;

/// Quick liveness (suspect after 1 s: the failure signal failover acts on).
const FAST: &str = "[coordinator]\nheartbeat_interval = \"250ms\"\nsuspect_after = \"1s\"\n";

/// The bootable image (built once and cached under /var/cache/hyphae).
fn boot_disk() -> Result<String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/services/memrep/guest/build-boot-disk.sh"
    );
    let out = std::process::Command::new(script).output()?;
    if !out.status.success() {
        bail!("boot disk build: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The counters the guest printed on `n` once it prints at least two.
fn counting_on(n: &Node, vm: &str, what: &str) -> Result<Vec<u64>> {
    wait_for(Duration::from_secs(120), what, || {
        let console = n.cli(&["vm", "console", vm])?.stdout;
        let all = serial_counters(&console);
        Ok((all.len() >= 2).then_some(all))
    })
}

#[test]
fn a_vm_booted_from_its_disk_migrates_and_fails_over() -> Result<()> {
    let image = boot_disk()?;
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    form_mesh_with(&c, 2, FAST)?;
    let (shm, ids) = memrep_nodes(&c)?;

    let vm = "bootdisk";
    let created = c[1].cli_timeout(
        &[
            "vm",
            "create",
            vm,
            "--disk",
            &image,
            "--mem",
            "128M",
            "--replicas",
            "1",
            "--interval-ms",
            "200",
        ],
        Duration::from_secs(120),
    )?;
    if !created.success() {
        bail!("vm create: {created}");
    }
    let status = vm_status(&c[0], vm)?.context("the VM record, read on n0")?;
    let spec = &status["record"]["spec"];
    assert_eq!(spec["kernel"], Value::Null, "{spec}");
    assert_eq!(spec["disk"], image.as_str());

    let before = acked_counter(&c[1], vm, 200, Some(1))?;
    let console = c[1].cli(&["vm", "console", vm])?.stdout;
    assert!(
        console.contains("SYSLINUX"),
        "the guest did not come up through the disk's boot loader:\n{console}"
    );

    // Planned migration to n2 with the disk.
    let moved: Value = wait_for(Duration::from_secs(300), "the migration", || {
        let out = c[1].cli_timeout(
            &["vm", "migrate", vm, "--to", &ids[2]],
            Duration::from_secs(240),
        )?;
        if out.success() {
            return Ok(Some(serde_json::from_str(out.stdout_trimmed())?));
        }
        if out.stderr.contains("is not up") {
            std::thread::sleep(Duration::from_millis(500));
            return Ok(None);
        }
        bail!("migrate failed: {}", out.stderr)
    })?;
    eprintln!("MIGRATION with a disk: {moved}");
    assert_eq!(moved["to"], ids[2].as_str());
    let record = vm_status(&c[0], vm)?.context("record")?["record"].clone();
    assert_eq!(record["primary"], ids[2].as_str(), "{record}");
    let counters = counting_on(&c[2], vm, "the migrated guest counting")?;
    eprintln!("n2 console after migration: {counters:?}, acknowledged before: {before}");
    assert!(
        counters.iter().all(|&n| n >= before),
        "{counters:?} < {before}"
    );
    let console = c[2].cli(&["vm", "console", vm])?.stdout;
    assert!(!console.contains("SYSLINUX"), "booted again:\n{console}");
    let stats = vm_stats(&c[2], vm)?.context("stats on n2")?;
    assert!(stats["disk_bytes"].as_u64().unwrap_or(0) > 0, "{stats}");

    // kill -9 of n2's node, once its backup holds epochs taken after a counter reading.
    let before = acked_counter(&c[2], vm, before + 100, Some(1))?;
    c[2].kill()?;
    let record = wait_new_primary(&c[0], vm, &ids[2], 0, Duration::from_secs(120))?;
    eprintln!("record after failover: {record}");
    let new = ids
        .iter()
        .position(|i| record["primary"] == i.as_str())
        .context("new primary")?;
    let counters = counting_on(&c[new], vm, "the resumed guest counting")?;
    eprintln!("n{new} console after failover: {counters:?}, acknowledged before: {before}");
    assert!(
        counters.iter().all(|&n| n >= before),
        "the guest went back before the acknowledged counter {before}: {counters:?}"
    );
    let console = c[new].cli(&["vm", "console", vm])?.stdout;
    assert!(
        !console.contains("SYSLINUX"),
        "the guest booted again instead of resuming:\n{console}"
    );

    c[new].cli_ok(&["vm", "delete", vm])?;
    drop(c);
    remove_memrep_leftovers(&shm);
    Ok(())
}
