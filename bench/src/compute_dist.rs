//! `hyphae-bench compute-dist`: distributed efficiency of a 4-worker GEMM over links limited to
//! 1 Gbit/s (`tc tbf` on every node's veth, both directions), independent tiles vs Cannon's
//! systolic mode, side by side with the single-node GEMM in the same run.
//!
//! Efficiency = `T1 / (p · Tp)`: `T1` the CPU GEMM of the whole product on this machine (all
//! its cores, the `gemm`-crate backend the workers use), `Tp` a job's time on `p` workers
//! (the job record's `elapsed_secs`: from the inputs loaded to the result stored). When the
//! `p` workers are namespaces of one machine they share its cores, so the ideal is `Tp = T1`,
//! and the figure against the cores actually available is `T1 / Tp` (also reported).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hyphae_compute::cpu::CpuBackend;
use hyphae_compute::{matrix_file, Matrix};
use hyphae_harness::{coordinator::form_mesh_with, uds_get, wait_until, Cluster, Node, Tbf};
use serde_json::{json, Value};

/// Options of `hyphae-bench compute-dist`.
#[derive(Debug, clap::Args)]
pub struct ComputeDistArgs {
    /// The hyphae binary; default: next to this one.
    #[arg(long)]
    hyphae: Option<PathBuf>,
    /// Matrix sizes (n × n by n × n).
    #[arg(long, default_values_t = vec![4096usize, 8192])]
    n: Vec<usize>,
    /// Link limit of every node (tc units).
    #[arg(long, default_value = "1gbit")]
    rate: String,
    /// tbf bucket (tc units): at least rate / HZ, or the link never reaches its rate.
    #[arg(long, default_value = "8mbit")]
    burst: String,
    /// tbf queue bound (tc units): how long a packet may wait before tbf drops it. A switch
    /// port buffers a few milliseconds at 1 Gbit/s; tbf's 400 ms default is a 50 MB queue.
    #[arg(long, default_value = "400ms")]
    latency: String,
    /// Workers.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Tile edge of the tile mode; default n / 4 per size (16 tiles, four per worker: each
    /// tile carries its rows of `A` and columns of `B` out of the job's node, so smaller tiles
    /// multiply what crosses its link).
    #[arg(long)]
    tile: Option<usize>,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/compute_dist.json")]
    out: PathBuf,
}

fn kv_len(n: &Node, table: &str) -> Result<usize> {
    let r = uds_get(
        n.state_dir().join("run/coordinator.sock"),
        &format!("/kv/{table}?prefix="),
    )?;
    Ok(if r.status == 200 {
        r.json()?["entries"].as_array().map_or(0, Vec::len)
    } else {
        0
    })
}

fn put(n: &Node, dir: &Path, path: &str, m: &Matrix) -> Result<()> {
    let local = dir.join(path.replace('/', "_"));
    std::fs::write(&local, matrix_file::encode(m))?;
    let out = n.cli_timeout(
        &["put", local.to_str().unwrap_or(""), path],
        Duration::from_secs(1800),
    )?;
    std::fs::remove_file(&local)?;
    if !out.success() {
        bail!("put {path}: {out}");
    }
    Ok(())
}

fn job(n: &Node, a: &str, b: &str, out: &str, mode: &str, tile: usize) -> Result<Value> {
    let r = n.cli_timeout(
        &[
            "job",
            "submit",
            a,
            b,
            out,
            "--tile",
            &tile.to_string(),
            "--mode",
            mode,
            "--link-mbps",
            "1000",
        ],
        Duration::from_secs(600),
    )?;
    if !r.success() {
        bail!("job submit: {r}");
    }
    let id = r.stdout.trim().to_string();
    let r = n.cli_timeout(
        &["job", "wait", &id, "--timeout", "3600s"],
        Duration::from_secs(3700),
    )?;
    let v: Value = serde_json::from_str(&r.stdout).with_context(|| format!("job wait: {r}"))?;
    if v["state"] != "done" {
        bail!("job {id} ({mode}) did not finish: {v:#}");
    }
    Ok(v)
}

/// The whole benchmark.
pub fn run(args: ComputeDistArgs) -> Result<()> {
    let hyphae = match &args.hyphae {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("hyphae"))
            .ok_or_else(|| anyhow!("cannot locate the hyphae binary; pass --hyphae"))?,
    };
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let p = args.workers;
    let cluster = Cluster::builder()
        .nodes(p)
        .binary(&hyphae)
        .name("bench-cdist")
        .build()?;
    form_mesh_with(&cluster, 2, "[compute]\nvulkan = false\n")?;
    wait_until(
        Duration::from_secs(180),
        "workers and stores published",
        || {
            Ok(kv_len(&cluster[0], "compute_workers")? == p
                && kv_len(&cluster[0], "storage_nodes")? == p)
        },
    )?;
    for node in cluster.nodes() {
        node.limit_bandwidth(
            Tbf::rate(args.rate.as_str())
                .burst(args.burst.as_str())
                .latency(args.latency.as_str()),
        )?;
    }
    let tmp = tempfile::tempdir()?;
    let cpu = CpuBackend::new(0);
    let mut rows = Vec::new();
    for &n in &args.n {
        let a = Matrix::random(n, n, 1)?;
        let b = Matrix::random(n, n, 2)?;
        cpu.sgemm(&a, &b)?; // warm-up
        let t = Instant::now();
        cpu.sgemm(&a, &b)?;
        let t1 = t.elapsed().as_secs_f64();
        put(&cluster[0], tmp.path(), &format!("cd/a{n}"), &a)?;
        put(&cluster[0], tmp.path(), &format!("cd/b{n}"), &b)?;
        drop((a, b));
        let mut row = json!({"n": n, "single_node_secs": t1,
            "single_node_gflops": 2.0 * (n as f64).powi(3) / t1 / 1e9});
        let tile = args.tile.unwrap_or((n / 4).max(16));
        row["tile"] = json!(tile);
        for mode in ["tiles", "cannon"] {
            let rec = job(
                &cluster[0],
                &format!("cd/a{n}"),
                &format!("cd/b{n}"),
                &format!("cd/c{n}-{mode}"),
                mode,
                tile,
            )?;
            let tp = rec["elapsed_secs"].as_f64().unwrap_or(f64::NAN);
            let eff = t1 / (p as f64 * tp);
            // The p workers share this machine's cores: the ideal is Tp = T1.
            let eff_cores = t1 / tp;
            println!(
                "compute-dist n={n} {mode}: {tp:.2} s on {p} workers (ran as {}), single node {t1:.2} s: efficiency {:.1}% (p = {p}), {:.1}% against the {cores} cores shared",
                rec["mode"], eff * 100.0, eff_cores * 100.0
            );
            row[mode] = json!({
                "secs": tp,
                "ran_as": rec["mode"],
                "efficiency": eff,
                "efficiency_vs_cores": eff_cores,
                "model": rec["model"],
                "cannon": rec["cannon"],
                "failed_calls": rec["failed_calls"],
            });
        }
        rows.push(row);
    }
    let result = json!({
        "bench": "compute-dist",
        "workers": p,
        "link": args.rate,
        "tbf_burst": args.burst,
        "tbf_latency": args.latency,
        "cores": cores,
        "rows": rows,
        "definition": "efficiency = T1 / (p * Tp); efficiency_vs_cores = T1 / Tp (the p workers share this machine's cores)",
        "date": crate::host::utc_now(),
        "load_before": load_before.trim(),
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
