//! `hyphae-bench memrep`: the memory replicator on the project's test guest (a real QEMU, KVM
//! when usable, TCG otherwise): checkpoint pause p50/p99 (anchor: COLO 24 ms mean / 78 ms p99
//! under load; Remus 25 ms epochs), replication lag (checkpoint to applied-on-the-replica;
//! goal ≤ 2 × the interval), and failover time from "primary declared dead" to "guest running"
//! on the replica (anchor: HydraVM 1.6 s restore; goal ≤ 1 s), and the slowdown of a CPU-bound
//! guest under checkpoints (`memrep_slowdown`). The replica is a real replica
//! store fed through the epoch assembler, on the same machine (no network in the lag).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hyphae_memrep::accel;
use hyphae_memrep::checkpoint::Primary;
use hyphae_memrep::epoch::assembler::Assembler;
use hyphae_memrep::qemu::{InstancePaths, Launch, QemuProcess, VmSpec};
use hyphae_memrep::replica_store::ReplicaStore;
use hyphae_memrep::restore;
use serde_json::json;

use crate::stats::Latency;

/// Options of `hyphae-bench memrep`.
#[derive(Debug, clap::Args)]
pub struct MemrepArgs {
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256)]
    mem_mib: u64,
    /// Epochs to measure.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Epoch interval in ms.
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
    /// Pages the guest rewrites per iteration (its dirtying rate).
    #[arg(long, default_value_t = 32)]
    wave_pages: u64,
    /// Failovers to measure.
    #[arg(long, default_value_t = 5)]
    failovers: usize,
    /// Length of each window of the guest-slowdown measurement (free, replicated, free), in
    /// seconds; 0 skips it.
    #[arg(long, default_value_t = 10)]
    slowdown_secs: u64,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/memrep.json")]
    out: PathBuf,
}

fn guest() -> Result<(PathBuf, PathBuf)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/memrep/guest/build.sh");
    let out = std::process::Command::new(&script).output()?;
    if !out.status.success() {
        bail!("guest build: {}", String::from_utf8_lossy(&out.stderr));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    Ok((dir.join("vmlinuz"), dir.join("initrd.cpio")))
}

/// Runs the benchmark.
pub fn run(args: MemrepArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(measure(args))
}

async fn measure(args: MemrepArgs) -> Result<()> {
    let (acc, why) = accel::probe();
    let (kernel, initrd) = guest()?;
    let dir = tempfile::tempdir()?;
    let shm = tempfile::tempdir_in("/dev/shm")?;
    let name = "bench";
    let spec = VmSpec {
        name: name.into(),
        kernel: Some(kernel),
        initrd: Some(initrd),
        append: format!(
            "console=ttyS0 nokaslr mitigations=off panic=-1 quiet wave_region=4096 wave_pages={} wave_sleep_us=1000",
            args.wave_pages
        ),
        mem_mib: args.mem_mib,
        vcpus: 1,
        disk: None,
    };
    let slowdown = if args.slowdown_secs > 0 {
        crate::memrep_slowdown::measure(
            spec.clone(),
            acc,
            (dir.path(), shm.path()),
            Duration::from_millis(args.interval_ms),
            Duration::from_secs(args.slowdown_secs),
        )
        .await?
    } else {
        serde_json::Value::Null
    };
    let q = QemuProcess::start(Launch {
        spec: spec.clone(),
        accel: acc,
        paths: InstancePaths::new(shm.path(), dir.path(), name, "g1"),
        incoming: false,
        owns_ram: true,
    })
    .await?;
    let serial = q.launch.paths.serial.clone();
    let t0 = Instant::now();
    while !std::fs::read_to_string(&serial)
        .unwrap_or_default()
        .contains("wave counter=")
    {
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("guest did not start in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let boot = t0.elapsed();
    let mut primary = Primary::new(q, 1, dir.path().join("g1.device")).await?;
    let mut replica =
        ReplicaStore::open(name, &dir.path().join("replica"), &shm.path().join("r.ram"))?;
    let mut pauses = Vec::new();
    let mut lags = Vec::new();
    let mut bytes = Vec::new();
    let interval = Duration::from_millis(args.interval_ms);
    let mut failover_times = Vec::new();
    let mut generation = 1;
    let mut epoch = 0u64;
    for round in 0..=args.failovers {
        let epochs = if round == 0 { args.epochs } else { 3 };
        for _ in 0..epochs {
            let start = Instant::now();
            epoch += 1;
            let cp = primary.checkpoint(name, epoch).await?;
            let mut asm = Assembler::new(name, replica.committed());
            let mut complete = None;
            for p in &cp.parts {
                complete = asm.push(p)?;
            }
            replica.commit(complete.context("epoch incomplete")?)?;
            if round == 0 {
                pauses.push(cp.pause);
                lags.push(start.elapsed());
                bytes.push(cp.bytes as f64);
            }
            let spent = start.elapsed();
            if spent < interval {
                tokio::time::sleep(interval - spent).await;
            }
        }
        if round == args.failovers {
            break;
        }
        // Failover: the primary dies; time from "declared dead" to "guest running".
        let pid = primary.qemu.pid().context("pid")?;
        // SAFETY: killing the QEMU this benchmark started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        drop(primary);
        let ram = replica.ram_path().to_path_buf();
        let device = replica.device_path();
        drop(replica);
        generation += 1;
        let tag = format!("g{generation}");
        let mut paths = InstancePaths::new(shm.path(), dir.path(), name, &tag);
        paths.ram = ram;
        let started = Instant::now();
        let q = restore::resume(
            Launch {
                spec: spec.clone(),
                accel: acc,
                paths,
                incoming: true,
                owns_ram: true,
            },
            &device,
        )
        .await?;
        failover_times.push(started.elapsed());
        primary = Primary::new(q, generation, dir.path().join(format!("{tag}.device"))).await?;
        replica = ReplicaStore::open(
            name,
            &dir.path().join(format!("replica-{tag}")),
            &shm.path().join(format!("r-{tag}.ram")),
        )?;
        epoch = 0;
    }
    let tracker = format!("{:?}", primary.tracker());
    primary.shutdown().await;
    let _ = replica.destroy();

    let pause = Latency::of(&mut pauses);
    let lag = Latency::of(&mut lags);
    let failover = Latency::of(&mut failover_times);
    bytes.sort_by(f64::total_cmp);
    let median_bytes = bytes.get(bytes.len() / 2).copied().unwrap_or(0.0);
    let result = json!({
        "accelerator": acc,
        "accelerator_reason": why,
        "tracker": tracker,
        "mem_mib": args.mem_mib,
        "interval_ms": args.interval_ms,
        "wave_pages": args.wave_pages,
        "boot_s": boot.as_secs_f64(),
        "pause": pause,
        "lag": lag,
        "failover_to_running": failover,
        "median_epoch_bytes": median_bytes,
        "guest_slowdown": slowdown,
        "anchors": {"colo_pause_mean_ms": 24, "colo_pause_p99_ms": 78, "hydravm_restore_s": 1.6},
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    println!(
        "memrep ({:?}, {} MiB, {} ms epochs): pause p50 {:.1} ms p99 {:.1} ms; lag p50 {:.1} ms p99 {:.1} ms; failover to running p50 {:.0} ms max {:.0} ms ({} runs); median epoch {:.0} KiB",
        acc,
        args.mem_mib,
        args.interval_ms,
        pause.p50_us / 1e3,
        pause.p99_us / 1e3,
        lag.p50_us / 1e3,
        lag.p99_us / 1e3,
        failover.p50_us / 1e3,
        failover.max_us / 1e3,
        failover.samples,
        median_bytes / 1024.0
    );
    Ok(())
}
