//! memrep with a disk on the harness: a 3-node mesh; a raw disk image is stored in the mesh
//! (`hyphae put`), then `hyphae vm create --disk mesh:/...` on n1 fetches it through n1's
//! chunkstore into the VM's disk file; memrep chooses the two backups. The test guest keeps a
//! counter ring on its disk and reads it back against its RAM every iteration. kill -9 of n1's
//! node; without any `vm resume` a backup resumes the guest on its replica's RAM and disk: the
//! guest's disk counter continues from at least the acknowledged one and the guest never finds
//! its disk out of step with its RAM.

mod support;

use std::time::Duration;
use support::memrep::{
    guest, memrep_nodes, remove_memrep_leftovers, vm_stats, vm_status, wait_new_primary,
};

use anyhow::{bail, Context, Result};
use hyphae_harness::{wait_for, wait_until, Cluster};
use serde_json::Value;
use support::form_mesh_with;

/// Quick liveness (suspect after 1 s: the failure signal failover acts on).
const FAST: &str = "[coordinator]\nheartbeat_interval = \"250ms\"\nsuspect_after = \"1s\"\n";

/// The counters of `wave disk counter=N mismatches=M` lines, failing on any mismatch the
/// guest reported.
fn disk_counters(console: &str) -> Result<Vec<u64>> {
    if console.contains("wave disk MISMATCH") {
        bail!("the guest found its disk out of step with its RAM:\n{console}");
    }
    let mut out = Vec::new();
    for rest in console
        .lines()
        .filter_map(|l| l.trim().strip_prefix("wave disk counter="))
    {
        let (c, m) = rest.split_once(" mismatches=").context("disk line")?;
        if m.trim() != "0" {
            bail!("the guest counted disk mismatches: {rest}");
        }
        out.push(c.parse()?);
    }
    Ok(out)
}

#[test]
fn a_vm_with_a_disk_from_the_mesh_fails_over_with_ram_and_disk_in_step() -> Result<()> {
    let (kernel, initrd) = guest()?;
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    form_mesh_with(&c, 2, FAST)?;
    let (shm, ids) = memrep_nodes(&c)?;

    // The image, stored in the mesh from n0: 1 MiB, the counter ring empty, a seed in block 16.
    let seed = format!("mesh-seed-{}", std::process::id());
    let mut image = vec![0u8; 1 << 20];
    image[16 * 4096..16 * 4096 + seed.len()].copy_from_slice(seed.as_bytes());
    let dir = tempfile::tempdir()?;
    let local = dir.path().join("wave-disk.raw");
    std::fs::write(&local, &image)?;
    let put = c[0].cli_timeout(
        &["put", local.to_str().context("path")?, "/vm/wave-disk.raw"],
        Duration::from_secs(120),
    )?;
    if !put.success() {
        bail!("put: {put}");
    }

    let vm = "wavedisk";
    let append = "console=ttyS0 nokaslr mitigations=off panic=-1 quiet wave_region=512 wave_pages=16 wave_sleep_us=2000 wave_disk=1";
    let created = c[1].cli_timeout(
        &[
            "vm",
            "create",
            vm,
            "--kernel",
            kernel.to_str().context("kernel")?,
            "--initrd",
            initrd.to_str().context("initrd")?,
            "--append",
            append,
            "--mem",
            "128M",
            "--disk",
            "mesh:/vm/wave-disk.raw",
            "--interval-ms",
            "200",
        ],
        Duration::from_secs(120),
    )?;
    if !created.success() {
        bail!("vm create: {created}");
    }
    let status = vm_status(&c[0], vm)?.context("the VM record, read on n0")?;
    assert_eq!(status["record"]["spec"]["disk"], "mesh:/vm/wave-disk.raw");
    let backups: Vec<String> = status["record"]["backups"]
        .as_array()
        .context("backups")?
        .iter()
        .filter_map(|b| b.as_str().map(str::to_string))
        .collect();
    assert_eq!(backups.len(), 2, "{status}");

    // The guest boots with the image from the mesh and counts on its disk; epochs taken after
    // a disk counter was read are acknowledged, so the replicas hold at least that counter.
    let before = wait_for(
        Duration::from_secs(300),
        "the guest counting on its disk",
        || {
            if let Some(s) = vm_stats(&c[1], vm)? {
                if s["state"] == "failed" {
                    bail!("VM failed: {s}");
                }
            }
            let console = c[1].cli(&["vm", "console", vm])?.stdout;
            let counters = disk_counters(&console)?;
            if !counters.is_empty() && !console.contains(&format!("wave disk seed={seed}")) {
                bail!("the guest did not boot with the mesh image:\n{console}");
            }
            Ok(counters.into_iter().max().filter(|&n| n >= 200))
        },
    )?;
    let base = vm_stats(&c[1], vm)?.context("stats")?["acknowledged"]
        .as_u64()
        .unwrap_or(0);
    let stats = wait_for(Duration::from_secs(120), "more epochs acknowledged", || {
        let s = vm_stats(&c[1], vm)?.context("stats")?;
        Ok((s["acknowledged"].as_u64().unwrap_or(0) >= base + 3).then_some(s))
    })?;
    eprintln!("n1 primary: {stats}");
    assert_eq!(stats["disk_bytes"], 1 << 20, "{stats}");
    assert!(
        stats["disk_pages_total"].as_u64().unwrap_or(0) > 0,
        "no disk pages replicated: {stats}"
    );

    // kill -9 of n1's node: memrep dies, QEMU with it. No resume call.
    c[1].kill()?;
    let record = wait_new_primary(&c[0], vm, &ids[1], 0, Duration::from_secs(120))?;
    eprintln!("record after failover: {record}");
    let new = ids
        .iter()
        .position(|i| record["primary"] == i.as_str())
        .context("new primary")?;
    assert!(backups.contains(&ids[new]), "the new primary was a backup");
    // The resumed guest's disk counter continues from at least the acknowledged one, in step
    // with its RAM (the guest checks every iteration and reports any mismatch).
    let counters = wait_for(
        Duration::from_secs(120),
        "the resumed guest counting on its disk",
        || {
            let console = c[new].cli(&["vm", "console", vm])?.stdout;
            let all = disk_counters(&console)?;
            Ok((all.len() >= 2).then_some(all))
        },
    )?;
    eprintln!("n{new} disk counters after failover: {counters:?}, acknowledged before: {before}");
    assert!(
        counters.iter().all(|&n| n >= before),
        "the disk went back before the acknowledged counter {before}: {counters:?}"
    );
    let mut last = Value::Null;
    let replicating = wait_until(
        Duration::from_secs(120),
        "the new primary replicating RAM and disk",
        || {
            last = vm_stats(&c[new], vm)?.context("stats")?;
            Ok(last["disk_bytes"] == 1 << 20 && last["acknowledged"].as_u64().unwrap_or(0) >= 3)
        },
    );
    eprintln!("n{new} primary: {last}");
    replicating?;

    c[new].cli_ok(&["vm", "delete", vm])?;
    drop(c);
    remove_memrep_leftovers(&shm);
    Ok(())
}
