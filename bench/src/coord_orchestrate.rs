//! `hyphae-bench coordinator`: our coordinator (3 princes) beside Debian's etcd 3.4 (3 members)
//! in the same three network namespaces, one after the other, measured by the same client:
//! failover after kill -9 of the leader, single-client write latency, and write throughput at
//! 64 concurrent clients.

use crate::host::sh;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use hyphae_harness::Cluster;
use serde_json::{json, Value};

use crate::coord_etcd::EtcdCluster;
use crate::coord_hyphae::HyphaeMesh;
use crate::coord_measure::{failover, throughput, wait_healthy, write_latency};
use crate::coord_system::KvSystem;
use crate::stats::Latency;

/// Options of `hyphae-bench coordinator`.
#[derive(Debug, clap::Args)]
pub struct CoordArgs {
    /// The hyphae binary; default: next to this one.
    #[arg(long)]
    hyphae: Option<PathBuf>,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/coordinator.json")]
    out: PathBuf,
    /// Sequential writes for the latency figures.
    #[arg(long, default_value_t = 2000)]
    writes: usize,
    /// Concurrent clients for the throughput figure.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of the throughput run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Leader kills per system.
    #[arg(long, default_value_t = 10)]
    failovers: usize,
    /// Measure only our coordinator (no etcd; no ratios), e.g. while tuning.
    #[arg(long)]
    hyphae_only: bool,
}

/// A 64-byte value, as a small configuration entry would be.
const VALUE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

async fn measure<S: KvSystem>(sys: &mut S, args: &CoordArgs) -> Result<Value> {
    let healthy = Duration::from_secs(120);
    let leader = wait_healthy(sys, healthy).await?;
    let latency = Latency::of(&mut write_latency(sys, leader, args.writes, VALUE).await?);
    println!(
        "{}: write p50 {:.0} us, p99 {:.0} us",
        sys.name(),
        latency.p50_us,
        latency.p99_us
    );
    let tput = throughput(
        sys,
        leader,
        args.clients,
        Duration::from_secs(args.seconds),
        VALUE,
    )
    .await?;
    println!(
        "{}: {} clients, {:.0} writes/s",
        sys.name(),
        tput.clients,
        tput.writes_per_s
    );
    let mut failovers = Vec::new();
    for round in 0..args.failovers {
        let leader = wait_healthy(sys, healthy).await?;
        let took = failover(sys, leader, VALUE).await?;
        println!(
            "{}: failover {round}: {:.0} ms",
            sys.name(),
            took.as_secs_f64() * 1e3
        );
        failovers.push(took);
    }
    wait_healthy(sys, healthy).await?;
    let ms: Vec<f64> = failovers.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let fo = Latency::of(&mut failovers);
    Ok(json!({
        "write_latency": latency,
        "throughput": tput,
        "failover_ms": ms,
        "failover": { "p50_ms": fo.p50_us / 1e3, "p95_ms": fo.p95_us / 1e3, "max_ms": fo.max_us / 1e3 },
    }))
}

/// The whole benchmark.
pub fn run(args: CoordArgs) -> Result<()> {
    let hyphae = crate::host::hyphae_binary(args.hyphae.as_deref())?;
    let cluster = Cluster::builder()
        .nodes(3)
        .binary(&hyphae)
        .name("bench-coord")
        .build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (etcd, ours) = runtime.block_on(async {
        let etcd = if args.hyphae_only {
            Value::Null
        } else {
            let mut etcd = EtcdCluster::start(&cluster)?;
            measure(&mut etcd, &args).await?
        };
        let mut mesh = HyphaeMesh::form(cluster)?;
        let ours = measure(&mut mesh, &args).await?;
        anyhow::Ok((etcd, ours))
    })?;
    let f = |v: &Value, path: &[&str]| {
        path.iter()
            .fold(v, |v, k| &v[*k])
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    let p99_ratio = f(&ours, &["write_latency", "p99_us"]) / f(&etcd, &["write_latency", "p99_us"]);
    let tput_ratio =
        f(&ours, &["throughput", "writes_per_s"]) / f(&etcd, &["throughput", "writes_per_s"]);
    let fo_ratio = f(&ours, &["failover", "p95_ms"]) / f(&etcd, &["failover", "p95_ms"]);
    let result = json!({
        "hyphae": ours,
        "etcd": etcd,
        "ratios": {
            "write_p99_hyphae_over_etcd": p99_ratio,
            "throughput_hyphae_over_etcd": tput_ratio,
            "failover_p95_hyphae_over_etcd": fo_ratio,
        },
        "goals": {
            "failover_p95_at_most_400ms": f(&ours, &["failover", "p95_ms"]) <= 400.0,
            "write_p99_at_most_0_7x_etcd": p99_ratio <= 0.7,
            "throughput_at_least_2x_etcd": tput_ratio >= 2.0,
        },
        "setup": {
            "members": 3,
            "network": "one network namespace per member, veth pairs on a Linux bridge (no shaping)",
            "client": "the bench process in the host namespace; hyper HTTP/1.1 keep-alive; ours through the leader's coordinator.sock (PUT /kv), etcd through the leader's client URL (POST /v3/kv/put, JSON gateway)",
            "durability": "both fsync their log before acknowledging (etcd's WAL; our RocksDB log with sync writes)",
            "etcd": sh("etcd", &["--version"]).lines().next().unwrap_or_default(),
            "value_bytes": VALUE.len(),
            "writes": args.writes, "clients": args.clients, "seconds": args.seconds, "failovers": args.failovers,
            "kernel": sh("uname", &["-r"]), "cpus": sh("nproc", &[]),
            "load_before": sh("cat", &["/proc/loadavg"]),
            "date": sh("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        },
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    println!(
        "coordinator: failover p95 {:.0} ms vs etcd {:.0} ms; write p50/p99 {:.2}/{:.2} ms vs etcd {:.2}/{:.2} ms ({:.2}x); {} clients {:.0} vs {:.0} writes/s ({:.2}x)",
        f(&ours, &["failover", "p95_ms"]),
        f(&etcd, &["failover", "p95_ms"]),
        f(&ours, &["write_latency", "p50_us"]) / 1e3,
        f(&ours, &["write_latency", "p99_us"]) / 1e3,
        f(&etcd, &["write_latency", "p50_us"]) / 1e3,
        f(&etcd, &["write_latency", "p99_us"]) / 1e3,
        p99_ratio,
        args.clients,
        f(&ours, &["throughput", "writes_per_s"]),
        f(&etcd, &["throughput", "writes_per_s"]),
        tput_ratio
    );
    println!("wrote {}", args.out.display());
    Ok(())
}
