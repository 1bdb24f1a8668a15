//! The local shard store against fio, on the same filesystem in the same run.
//!
//! Two workloads, each run by fio (io_uring engine, buffered like the store) and then by the
//! store: sequential 1 MiB writes each made durable by fdatasync before the next (fio
//! `--fdatasync=1`, queue depth 1; the store: one awaited `put` after another), and 64 KiB
//! random reads of a 1 GiB set with 16 in flight, page cache dropped first (the store reads
//! and verifies whole records: 64 KiB + a 96-byte header, plus the BLAKE3 check). The store
//! also runs with 16 puts in flight (group commit) and with its pread fallback, for context.
//! Every run rotates the order of the variants; the median of the runs is reported.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use hyphae_chunkstore::local::{Backend, ShardId, ShardStore, StoreOptions};
use rand::{Rng, RngCore, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

/// Options of `hyphae-bench store`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Scratch directory on the filesystem to measure (emptied first, removed after).
    #[arg(long)]
    dir: PathBuf,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/store.json")]
    out: PathBuf,
    /// MiB written by the sequential-write workload.
    #[arg(long, default_value_t = 512)]
    write_mib: u64,
    /// MiB of the data set the random reads pick from.
    #[arg(long, default_value_t = 1024)]
    read_set_mib: u64,
    /// Random reads per run.
    #[arg(long, default_value_t = 8192)]
    reads: u64,
    /// Reads (and concurrent puts) in flight.
    #[arg(long, default_value_t = 16)]
    iodepth: usize,
    /// Runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// One measurement.
#[derive(Debug, Clone, Copy, Serialize)]
struct Rate {
    mib_s: f64,
    iops: f64,
}

fn median(mut rates: Vec<Rate>) -> Rate {
    rates.sort_by(|a, b| a.mib_s.total_cmp(&b.mib_s));
    rates[rates.len() / 2]
}

fn drop_caches() -> bool {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", b"3\n").is_ok()
}

fn fio(args: &[String]) -> Result<Value> {
    let out = Command::new("fio")
        .args(args)
        .arg("--output-format=json")
        .output()
        .context("running fio (scripts/bench.sh installs it)")?;
    if !out.status.success() {
        bail!("fio failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // fio may print notes before the JSON.
    let start = text
        .find('{')
        .ok_or_else(|| anyhow!("fio printed no JSON"))?;
    Ok(serde_json::from_str(&text[start..])?)
}

fn fio_rate(v: &Value, dir: &str) -> Result<Rate> {
    let j = &v["jobs"][0][dir];
    let bw = j["bw_bytes"]
        .as_f64()
        .ok_or_else(|| anyhow!("no bw_bytes in fio output"))?;
    let iops = j["iops"].as_f64().ok_or_else(|| anyhow!("no iops"))?;
    Ok(Rate {
        mib_s: bw / (1 << 20) as f64,
        iops,
    })
}

fn fio_seq_write(dir: &Path, mib: u64) -> Result<Rate> {
    let d = dir.join("fio-write");
    std::fs::create_dir_all(&d)?;
    let v = fio(&[
        "--name=seqwrite".into(),
        format!("--directory={}", d.display()),
        "--rw=write".into(),
        "--bs=1M".into(),
        format!("--size={mib}M"),
        "--ioengine=io_uring".into(),
        "--iodepth=1".into(),
        "--fdatasync=1".into(),
    ])?;
    std::fs::remove_dir_all(&d)?;
    fio_rate(&v, "write")
}

fn fio_rand_read(dir: &Path, set_mib: u64, reads: u64, iodepth: usize) -> Result<Rate> {
    let d = dir.join("fio-read");
    std::fs::create_dir_all(&d)?;
    let common = [
        "--name=randread".to_string(),
        format!("--directory={}", d.display()),
        format!("--size={set_mib}M"),
        "--bs=64k".into(),
        "--ioengine=io_uring".into(),
    ];
    let mut layout = common.to_vec();
    layout.push("--rw=randread".into());
    layout.push("--create_only=1".into());
    fio(&layout)?;
    drop_caches();
    let mut run = common.to_vec();
    run.extend([
        "--rw=randread".into(),
        format!("--iodepth={iodepth}"),
        format!("--io_size={}k", reads * 64),
        "--randrepeat=0".into(),
    ]);
    let v = fio(&run)?;
    std::fs::remove_dir_all(&d)?;
    fio_rate(&v, "read")
}

fn shard_id(tag: u64, n: u64) -> ShardId {
    let mut h = blake3::Hasher::new();
    h.update(&tag.to_le_bytes());
    h.update(&n.to_le_bytes());
    ShardId(*h.finalize().as_bytes())
}

fn random_bytes(len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    Bytes::from(v)
}

fn open(dir: &Path, force_pread: bool) -> Result<ShardStore> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let store = ShardStore::open(
        dir,
        StoreOptions {
            force_pread,
            ..StoreOptions::default()
        },
    )?;
    Ok(store)
}

/// `mib` puts of 1 MiB with `depth` in flight.
async fn store_write(dir: &Path, force_pread: bool, mib: u64, depth: usize) -> Result<Rate> {
    let store = open(dir, force_pread)?;
    let data = random_bytes(1 << 20);
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..depth {
        let (store, data, next) = (store.clone(), data.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= mib {
                    return Ok::<(), anyhow::Error>(());
                }
                store.put(shard_id(1, n), data.clone()).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(store);
    std::fs::remove_dir_all(dir)?;
    Ok(Rate {
        mib_s: mib as f64 / secs,
        iops: mib as f64 / secs,
    })
}

/// Random 64 KiB gets over a `set_mib` data set with `depth` in flight (cold page cache).
async fn store_rand_read(
    dir: &Path,
    force_pread: bool,
    set_mib: u64,
    reads: u64,
    depth: usize,
) -> Result<(Rate, Backend)> {
    let store = open(dir, force_pread)?;
    let backend = store.backend().backend;
    let shards = set_mib * 16;
    let data = random_bytes(64 << 10);
    // Fill (many puts in flight so that group commit makes this quick).
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (store, next) = (store.clone(), next.clone());
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= shards {
                    return Ok::<(), anyhow::Error>(());
                }
                // Distinct bytes per shard: a store that deduplicated would not be measured.
                let mut d = data.to_vec();
                d[..8].copy_from_slice(&n.to_le_bytes());
                store.put(shard_id(2, n), Bytes::from(d)).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    // Cold data, warm index (fio has no index to look up).
    drop_caches();
    for n in 0..shards {
        if !store.contains(&shard_id(2, n)) {
            bail!("shard {n} missing after the fill");
        }
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..depth {
        let store = store.clone();
        let per_task = reads / depth as u64;
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
            for _ in 0..per_task {
                let n = rng.random_range(0..shards);
                let d = store.get(&shard_id(2, n)).await?;
                if d.len() != 64 << 10 {
                    bail!("short read");
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let done = (reads / depth as u64) * depth as u64;
    drop(store);
    std::fs::remove_dir_all(dir)?;
    Ok((
        Rate {
            mib_s: done as f64 * 64.0 / 1024.0 / secs,
            iops: done as f64 / secs,
        },
        backend,
    ))
}

/// Runs the benchmark and writes the JSON result.
pub fn run(args: StoreArgs) -> Result<()> {
    if args.runs == 0 || args.iodepth == 0 {
        bail!("--runs and --iodepth must be positive");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let cold = drop_caches();
    if !cold {
        eprintln!("warning: cannot drop the page cache (not root?): reads are warm");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let sdir = args.dir.join("store");
    let mut fio_w = Vec::new();
    let mut ours_w = Vec::new();
    let mut ours_w_group = Vec::new();
    let mut ours_w_pread = Vec::new();
    let mut fio_r = Vec::new();
    let mut ours_r = Vec::new();
    let mut ours_r_pread = Vec::new();
    let mut backend = Backend::Pread;
    for run in 0..args.runs {
        // Each run rotates the order of the variants, so that none always runs right after
        // another's writes (the host's write-back of those shows up as noise).
        eprintln!(
            "run {}/{}: sequential 1 MiB writes + fdatasync",
            run + 1,
            args.runs
        );
        for k in 0..4 {
            match (k + run) % 4 {
                0 => fio_w.push(fio_seq_write(&args.dir, args.write_mib)?),
                1 => ours_w.push(rt.block_on(store_write(&sdir, false, args.write_mib, 1))?),
                2 => ours_w_pread.push(rt.block_on(store_write(&sdir, true, args.write_mib, 1))?),
                _ => ours_w_group.push(rt.block_on(store_write(
                    &sdir,
                    false,
                    args.write_mib,
                    args.iodepth,
                ))?),
            }
        }
        eprintln!("run {}/{}: random 64 KiB reads", run + 1, args.runs);
        for k in 0..3 {
            match (k + run) % 3 {
                0 => fio_r.push(fio_rand_read(
                    &args.dir,
                    args.read_set_mib,
                    args.reads,
                    args.iodepth,
                )?),
                1 => {
                    let (r, b) = rt.block_on(store_rand_read(
                        &sdir,
                        false,
                        args.read_set_mib,
                        args.reads,
                        args.iodepth,
                    ))?;
                    backend = b;
                    ours_r.push(r);
                }
                _ => {
                    let (r, _) = rt.block_on(store_rand_read(
                        &sdir,
                        true,
                        args.read_set_mib,
                        args.reads,
                        args.iodepth,
                    ))?;
                    ours_r_pread.push(r);
                }
            }
        }
    }
    let samples = json!({
        "seq_write": { "fio": fio_w, "store": ours_w, "store_pread": ours_w_pread, "store_group_commit": ours_w_group },
        "rand_read": { "fio": fio_r, "store": ours_r, "store_pread": ours_r_pread },
    });
    let (fw, ow, owg, owp) = (
        median(fio_w),
        median(ours_w),
        median(ours_w_group),
        median(ours_w_pread),
    );
    let (fr, or, orp) = (median(fio_r), median(ours_r), median(ours_r_pread));
    let result = json!({
        "bench": "store",
        "when_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
        "dir": args.dir,
        "backend": backend.as_str(),
        "cold_reads": cold,
        "runs": args.runs,
        "seq_write_1mib_fdatasync": {
            "mib": args.write_mib,
            "fio_io_uring_qd1": fw,
            "store_qd1": ow,
            "ratio": ow.mib_s / fw.mib_s,
            "store_pread_qd1": owp,
            "store_group_commit": { "in_flight": args.iodepth, "rate": owg },
        },
        "rand_read_64k": {
            "set_mib": args.read_set_mib,
            "reads": args.reads,
            "iodepth": args.iodepth,
            "fio_io_uring": fr,
            "store": or,
            "ratio": or.iops / fr.iops,
            "store_pread": orp,
        },
        "samples": samples,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)? + "\n")?;
    let _ = std::fs::remove_dir_all(&args.dir);
    println!(
        "| workload | fio (io_uring) | store ({}) | ratio | store, pread fallback |",
        backend.as_str()
    );
    println!("|---|---|---|---|---|");
    println!(
        "| seq 1 MiB writes + fdatasync, QD1 | {:.1} MiB/s ({:.0} IOPS) | {:.1} MiB/s ({:.0} IOPS) | {:.2} | {:.1} MiB/s |",
        fw.mib_s, fw.iops, ow.mib_s, ow.iops, ow.mib_s / fw.mib_s, owp.mib_s
    );
    println!(
        "| random 64 KiB reads, QD{} | {:.0} IOPS ({:.0} MiB/s) | {:.0} IOPS ({:.0} MiB/s) | {:.2} | {:.0} IOPS |",
        args.iodepth, fr.iops, fr.mib_s, or.iops, or.mib_s, or.iops / fr.iops, orp.iops
    );
    println!(
        "| store, {} puts of 1 MiB in flight (group commit) | — | {:.1} MiB/s | — | — |",
        args.iodepth, owg.mib_s
    );
    Ok(())
}
