//! The guest-slowdown part of `hyphae-bench memrep`: a CPU-bound guest (the test guest's wave
//! program with no sleep between iterations) counts iterations, and its rate while memrep
//! checkpoints it every interval is set against its rate with no checkpoints, measured before
//! and after (goal: ≤ 20% slower at 5 epochs/s; anchor: Remus ≈ 50% at 20/s). Only the
//! primary's side runs here (stop, dirty pages staged, device state, cont, epoch encoded): a
//! backup applies epochs on another machine, so its work is not the guest's.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hyphae_memrep::accel::Accel;
use hyphae_memrep::checkpoint::Primary;
use hyphae_memrep::qemu::{InstancePaths, Launch, QemuProcess, VmSpec};
use serde_json::{json, Value};

/// The highest `wave counter=N` on the guest's serial log (printed every 100 iterations).
fn last_counter(serial: &Path) -> u64 {
    std::fs::read_to_string(serial)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("wave counter="))
        .filter_map(|n| n.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

/// Iterations per second over `window` with no checkpoints.
async fn free_rate(serial: &Path, window: Duration) -> f64 {
    let (c0, t0) = (last_counter(serial), Instant::now());
    tokio::time::sleep(window).await;
    (last_counter(serial).saturating_sub(c0)) as f64 / t0.elapsed().as_secs_f64()
}

/// Measures the slowdown; `spec` is the guest to run (its `append` is replaced).
pub async fn measure(
    mut spec: VmSpec,
    accel: Accel,
    (dir, shm): (&Path, &Path),
    interval: Duration,
    window: Duration,
) -> Result<Value> {
    let name = "slowdown";
    spec.name = name.into();
    spec.append = "console=ttyS0 nokaslr mitigations=off panic=-1 quiet wave_region=4096 \
                   wave_pages=4 wave_sleep_us=0"
        .into();
    let q = QemuProcess::start(Launch {
        spec,
        accel,
        paths: InstancePaths::new(shm, dir, name, "s1"),
        incoming: false,
        owns_ram: true,
    })
    .await?;
    let serial = q.launch.paths.serial.clone();
    let t0 = Instant::now();
    while last_counter(&serial) < 1000 {
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("CPU-bound guest did not start counting in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut primary = Primary::new(q, 1, dir.join("s1.device")).await?;
    let before = free_rate(&serial, window).await;
    let (c0, start) = (last_counter(&serial), Instant::now());
    let mut epochs = 0u64;
    let mut pauses = Vec::new();
    while start.elapsed() < window {
        let t = Instant::now();
        epochs += 1;
        let cp = primary
            .checkpoint(name, epochs)
            .await
            .context("checkpoint")?;
        pauses.push(cp.pause.as_secs_f64() * 1e3);
        if let Some(rest) = interval.checked_sub(t.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let replicated = (last_counter(&serial).saturating_sub(c0)) as f64 / elapsed;
    let after = free_rate(&serial, window).await;
    primary.shutdown().await;
    let free = (before + after) / 2.0;
    let slowdown = if free > 0.0 {
        1.0 - replicated / free
    } else {
        f64::NAN
    };
    pauses.sort_by(f64::total_cmp);
    println!(
        "memrep slowdown: {:.0} it/s free (before {before:.0}, after {after:.0}), {replicated:.0} it/s with {:.1} epochs/s: {:.1}% slower (goal ≤ 20%)",
        free,
        epochs as f64 / elapsed,
        slowdown * 100.0
    );
    Ok(json!({
        "free_iterations_per_s_before": before,
        "free_iterations_per_s_after": after,
        "replicated_iterations_per_s": replicated,
        "epochs_per_s": epochs as f64 / elapsed,
        "pause_p50_ms": pauses.get(pauses.len() / 2).copied().unwrap_or(0.0),
        "slowdown": slowdown,
        "window_s": window.as_secs_f64(),
        "goal": "<= 0.20 at 5 epochs/s",
    }))
}
