//! memrep on the harness: a 3-node mesh, a VM (the project's test guest) on n0 replicating to
//! n1 and n2 over QUIC; kill -9 of n0's node process (memrep and, with it, QEMU); n1 resumes
//! the guest from its replica, replicating to n2 under a new generation, and the guest's
//! counter continues from at least what n1 had committed.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyphae_harness::{uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::form_mesh_with;

fn guest() -> Result<(PathBuf, PathBuf)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("services/memrep/guest/build.sh");
    let out = std::process::Command::new(&script).output()?;
    if !out.status.success() {
        bail!("guest build: {}", String::from_utf8_lossy(&out.stderr));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    Ok((dir.join("vmlinuz"), dir.join("initrd.cpio")))
}

fn memrep_status(n: &Node) -> Result<Option<Value>> {
    let sock = n.state_dir().join("run/memrep.sock");
    match uds_get(&sock, "/status") {
        Ok(r) if r.status == 200 => Ok(Some(r.json()?)),
        _ => Ok(None),
    }
}

fn vm_stats(n: &Node, vm: &str) -> Result<Option<Value>> {
    let out = n.cli(&["vm", "status", vm])?;
    if !out.success() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(out.stdout_trimmed())?;
    Ok(Some(v["stats"].clone()))
}

fn serial_counter(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("wave counter="))
        .filter_map(|n| n.trim().parse().ok())
        .max()
}

#[test]
fn a_vm_survives_the_death_of_its_node() -> Result<()> {
    let (kernel, initrd) = guest()?;
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    form_mesh_with(&c, 2, "")?;
    let mut shm = Vec::new();
    for n in c.nodes() {
        let s = wait_for(Duration::from_secs(60), "memrep ready", || memrep_status(n))?;
        shm.push(PathBuf::from(s["shm_dir"].as_str().unwrap_or_default()));
    }
    let vm = "wave";
    let k = kernel.to_str().context("kernel path")?;
    let i = initrd.to_str().context("initrd path")?;
    let append = "console=ttyS0 nokaslr mitigations=off panic=-1 quiet wave_region=2048 wave_pages=32 wave_sleep_us=2000";
    let b1 = c[1].addr(7444).to_string();
    let b2 = c[2].addr(7444).to_string();
    let common = |backups: &[&str]| {
        let mut a: Vec<String> = vec![
            "--kernel".into(),
            k.into(),
            "--initrd".into(),
            i.into(),
            "--append".into(),
            append.into(),
            "--mem".into(),
            "256M".into(),
            "--interval-ms".into(),
            "200".into(),
        ];
        for b in backups {
            a.push("--backup".into());
            a.push((*b).into());
        }
        a
    };
    let mut create = vec!["vm".to_string(), "create".into(), vm.into()];
    create.extend(common(&[&b1, &b2]));
    c[0].cli_ok(&create)?;

    // The guest boots (TCG: up to a few minutes on a loaded machine) and counts; then a few
    // more epochs are acknowledged, so the replicas hold the running guest program.
    let acked_then = wait_for(Duration::from_secs(300), "guest counting past 200", || {
        let Some(s) = vm_stats(&c[0], vm)? else {
            return Ok(None);
        };
        if s["state"] == "failed" {
            bail!("VM failed on n0: {s}");
        }
        let console = c[0].cli(&["vm", "console", vm])?.stdout;
        let counting = serial_counter(&console).is_some_and(|n| n >= 200);
        Ok(counting.then(|| s["acknowledged"].as_u64().unwrap_or(0)))
    })?;
    wait_until(
        Duration::from_secs(120),
        "5 more epochs acknowledged",
        || {
            let s = vm_stats(&c[0], vm)?.context("stats")?;
            Ok(s["acknowledged"].as_u64().unwrap_or(0) >= acked_then + 5)
        },
    )?;
    let stats = vm_stats(&c[0], vm)?.context("stats")?;
    eprintln!("n0 primary: {stats}");
    let console = c[0].cli(&["vm", "console", vm])?.stdout;
    eprintln!(
        "n0 console tail: {}",
        &console[console.len().saturating_sub(300)..]
    );
    assert_eq!(
        stats["backups"].as_array().map(Vec::len),
        Some(2),
        "{stats}"
    );

    // kill -9 of n0's node: memrep dies, QEMU with it (parent-death signal).
    c[0].kill()?;
    // Let an apply that was under way when n0 died finish: wait until n1's committed epoch
    // stops moving.
    let mut last = String::new();
    wait_until(Duration::from_secs(30), "n1's replica settled", || {
        let now = c[1].cli_ok(&["vm", "replicas"])?.stdout;
        let settled = now == last;
        last = now;
        std::thread::sleep(Duration::from_millis(300));
        Ok(settled)
    })?;
    let replica_ram = shm[1].join(format!("hyphae-memrep-{vm}-replica.ram"));
    let image = std::fs::read(&replica_ram).context("n1's replica RAM")?;
    let state = hyphae_memrep::guest_check::check(&image)
        .map_err(|e| anyhow::anyhow!("n1's replica is inconsistent: {e}"))?;
    eprintln!("n1 replica: guest counter {}", state.counter);

    let mut resume = vec!["vm".to_string(), "resume".into(), vm.into()];
    resume.extend(common(&[&b2]));
    let t0 = std::time::Instant::now();
    c[1].cli_ok(&resume)?;
    eprintln!("resume answered after {:?}", t0.elapsed());
    let seen = wait_for(
        Duration::from_secs(120),
        "the resumed guest counting on",
        || {
            let console = c[1].cli(&["vm", "console", vm])?.stdout;
            Ok(serial_counter(&console).filter(|&n| n > state.counter))
        },
    )?;
    eprintln!("n1 console: counter {seen} > {}", state.counter);
    // n1 now replicates generation 2 to n2.
    let s = wait_for(
        Duration::from_secs(120),
        "generation 2 epochs acknowledged by n2",
        || {
            let s = vm_stats(&c[1], vm)?;
            Ok(s.filter(|s| s["generation"] == 2 && s["acknowledged"].as_u64().unwrap_or(0) >= 5))
        },
    )?;
    eprintln!("n1 primary: {s}");
    c[1].cli_ok(&["vm", "delete", vm])?;
    drop(c);
    // n0 was killed with its RAM file in place; replicas stay until deleted: clean up.
    for dir in shm {
        // n0's VM cgroup (empty since QEMU died) stays too; the node tag ends the shm name.
        if let Some(tag) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("hyphae-memrep-"))
        {
            hyphae_memrep::cgroup_throttle::remove_node_leftovers(tag);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
