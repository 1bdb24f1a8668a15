//! memrep on the harness: a 4-node mesh, a VM (the project's test guest) on n1 whose two
//! backups memrep chooses itself; kill -9 of n1's node process (memrep and, with it, QEMU);
//! without any `vm resume`, the failover actor (the queen's memrep) has the most up-to-date
//! backup resume the guest under a new generation, the counter continues from at least what
//! was acknowledged before the kill, the VM record names the new primary and the replica
//! count is back to 2. Then a planned migration moves the VM to another node with one pause.

mod support;

use std::time::{Duration, Instant};
use support::memrep::{
    acked_counter, guest, memrep_nodes, memrep_status, remove_memrep_leftovers, serial_counters,
    unix_ms, vm_stats, vm_status, wait_new_primary, FAST_LIVENESS,
};

use anyhow::{bail, Context, Result};
use hyphae_harness::{wait_for, wait_until, Cluster};
use serde_json::Value;
use support::form_mesh_with;

#[test]
fn a_vm_fails_over_by_itself_and_migrates() -> Result<()> {
    let (kernel, initrd) = guest()?;
    let c = Cluster::builder()
        .nodes(4)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    form_mesh_with(&c, 2, FAST_LIVENESS)?;
    let (shm, ids) = memrep_nodes(&c)?;
    let index_of = |id: &str| ids.iter().position(|i| i == id);
    let vm = "wave";
    let k = kernel.to_str().context("kernel path")?;
    let i = initrd.to_str().context("initrd path")?;
    let append = "console=ttyS0 nokaslr mitigations=off panic=-1 quiet wave_region=2048 wave_pages=32 wave_sleep_us=2000";
    // No --backup: memrep chooses two live nodes.
    c[1].cli_ok(&[
        "vm",
        "create",
        vm,
        "--kernel",
        k,
        "--initrd",
        i,
        "--append",
        append,
        "--mem",
        "256M",
        "--interval-ms",
        "200",
    ])?;
    let status = vm_status(&c[0], vm)?.context("the VM record, read on n0")?;
    eprintln!("record on n0: {}", status["record"]);
    assert_eq!(status["record"]["primary"], ids[1].as_str());
    let backups: Vec<String> = status["record"]["backups"]
        .as_array()
        .context("backups")?
        .iter()
        .filter_map(|b| b.as_str().map(str::to_string))
        .collect();
    assert_eq!(backups.len(), 2, "{status}");
    assert!(!backups.contains(&ids[1]));

    // The guest boots (TCG: minutes on a loaded machine) and counts; epochs taken after the
    // counter was read are acknowledged, so the replicas hold at least that counter.
    let before = acked_counter(&c[1], vm, 200, Some(2))?;
    let stats = vm_stats(&c[1], vm)?.context("stats")?;
    eprintln!("n1 primary: {stats}");
    assert_eq!(stats["backups"].as_array().map(Vec::len), Some(2));
    // The replica table shows both backups' committed epochs.
    wait_until(Duration::from_secs(30), "replica rows", || {
        let s = vm_status(&c[2], vm)?.context("status on n2")?;
        Ok(s["replicas"].as_array().map(Vec::len) == Some(2))
    })?;

    // kill -9 of n1's node: memrep dies, QEMU with it (parent-death signal). No resume call.
    let killed_ms = unix_ms();
    let t0 = Instant::now();
    c[1].kill()?;
    let record = wait_new_primary(&c[0], vm, &ids[1], 0, Duration::from_secs(120))?;
    let seen_after = t0.elapsed();
    eprintln!("record after failover: {record}");
    assert_eq!(record["generation"], 2, "{record}");
    let new = index_of(record["primary"].as_str().unwrap_or_default()).context("new primary")?;
    assert!(backups.contains(&ids[new]), "the new primary was a backup");
    let new_backups: Vec<&str> = record["backups"]
        .as_array()
        .context("backups")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(new_backups.len(), 2, "replica count restored: {record}");
    assert!(!new_backups.contains(&ids[1].as_str()) && !new_backups.contains(&ids[new].as_str()));
    let f = &record["failover"];
    let detect_to_running = f["detection_to_running_ms"].as_u64().context("timing")?;
    let kill_to_running = f["running_unix_ms"]
        .as_u64()
        .context("timing")?
        .saturating_sub(killed_ms);
    eprintln!(
        "FAILOVER: detection -> guest running {detect_to_running} ms; kill -9 -> guest running \
         {kill_to_running} ms (suspect_after 1 s); record seen by the test after {seen_after:?}"
    );
    // The guest continues from at least the acknowledged counter.
    let counters = wait_for(
        Duration::from_secs(120),
        "the resumed guest counting",
        || {
            let console = c[new].cli(&["vm", "console", vm])?.stdout;
            let all = serial_counters(&console);
            Ok((all.len() >= 2).then_some(all))
        },
    )?;
    eprintln!("n{new} console after failover: {counters:?}, acknowledged before: {before}");
    assert!(
        counters.iter().all(|&n| n >= before),
        "the guest went back before the acknowledged counter {before}: {counters:?}"
    );
    // The new primary replicates generation 2 to its two backups.
    let s = wait_for(
        Duration::from_secs(120),
        "generation 2 epochs acknowledged by both backups",
        || {
            let s = vm_stats(&c[new], vm)?;
            Ok(s.filter(|s| {
                s["generation"] == 2
                    && s["acknowledged"].as_u64().unwrap_or(0) >= 5
                    && s["backups"].as_array().map(Vec::len) == Some(2)
            }))
        },
    )?;
    eprintln!("n{new} primary: {s}");

    // Planned migration back to n1, restarted: not a backup, so phase 1 makes it one (a new
    // generation whose first epoch is a base), phase 2 switches with one pause.
    c[1].start()?;
    c[1].wait_ready(c.ready_timeout())?;
    wait_for(Duration::from_secs(60), "n1's memrep ready", || {
        memrep_status(&c[1])
    })?;
    let before = acked_counter(&c[new], vm, 200, Some(2))?;
    let moved: Value = wait_for(Duration::from_secs(400), "the migration", || {
        let out = c[new].cli(&["vm", "migrate", vm, "--to", &ids[1]])?;
        if out.success() {
            return Ok(Some(serde_json::from_str(out.stdout_trimmed())?));
        }
        // n1 may not be listed as up yet.
        if out.stderr.contains("is not up") {
            std::thread::sleep(Duration::from_millis(500));
            return Ok(None);
        }
        bail!("migrate failed: {}", out.stderr)
    })?;
    eprintln!("MIGRATION: {moved} (pause_ms: guest paused on n{new} until running on n1)");
    assert_eq!(moved["to"], ids[1].as_str());
    assert_eq!(moved["target_added_as_backup"], true);
    assert_eq!(moved["generation"], 4, "2, +1 adding n1, +1 the switch");
    let record = vm_status(&c[0], vm)?.context("record")?["record"].clone();
    assert_eq!(record["primary"], ids[1].as_str(), "{record}");
    let backups = record["backups"].as_array().context("backups")?;
    assert_eq!(backups.len(), 2, "replica count kept: {record}");
    assert!(!backups.iter().any(|x| x == ids[1].as_str()), "{record}");
    assert!(
        vm_stats(&c[new], vm)?.is_none(),
        "the old primary stopped its QEMU"
    );
    let counters = wait_for(
        Duration::from_secs(120),
        "the migrated guest counting",
        || {
            let console = c[1].cli(&["vm", "console", vm])?.stdout;
            let all = serial_counters(&console);
            Ok((all.len() >= 2).then_some(all))
        },
    )?;
    eprintln!("n1 console after migration: {counters:?}, acknowledged before: {before}");
    assert!(
        counters.iter().all(|&n| n >= before),
        "{counters:?} < {before}"
    );
    let mut last = Value::Null;
    let replicating = wait_until(
        Duration::from_secs(120),
        "n1 replicating generation 4",
        || {
            last = vm_stats(&c[1], vm)?.context("stats on n1")?;
            Ok(last["generation"] == 4 && last["acknowledged"].as_u64().unwrap_or(0) >= 3)
        },
    );
    eprintln!("n1 primary: {last}");
    replicating?;

    c[1].cli_ok(&["vm", "delete", vm])?;
    assert!(vm_status(&c[0], vm)?.is_none(), "the record is gone");
    drop(c);
    // n1 was killed with its RAM file in place, n0's VM cgroup (empty since QEMU died) stays
    // too, and replicas stay until deleted: clean up.
    remove_memrep_leftovers(&shm);
    Ok(())
}
