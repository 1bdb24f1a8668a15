//! `discovery`: how fast N beacons on one bridge hear each other, and what a beacon costs.
//!
//! N nodes of one mesh (enrolled offline) each run only `hyphae beacon` (the UDP beacon; mDNS
//! off, so that the figures are the beacon's own) in its own network namespace on one bridge.
//! All N start at once; each node's log says when it heard its k-th member, so a node has
//! converged at the first line with `members = N-1`. Reported: per-node convergence after the
//! last start (p50, p99, max), then, over a steady window, CPU time per node (from
//! `/proc/<pid>/stat`) and bytes sent and received per node (from the beacon's `/status`).
//!
//! The anchor, Serf's model (1.6 s at 50 nodes), is a published figure: there is no Serf
//! binary on the build machine to run beside it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use hyphae_harness::{enrol_offline, init_mesh, uds_get, Cluster};
use serde_json::{json, Value};

use crate::stats::percentile;

/// Options of `hyphae-bench discovery`.
#[derive(Debug, clap::Args)]
pub struct DiscoveryArgs {
    /// The `hyphae` binary (default: next to this one).
    #[arg(long)]
    pub hyphae: Option<PathBuf>,
    /// Node counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "8,16,32")]
    pub nodes: Vec<usize>,
    /// Steady-state window for the CPU and bandwidth figures.
    #[arg(long, default_value_t = 10)]
    pub window_s: u64,
    /// Where the JSON result goes.
    #[arg(long, default_value = "bench/results/discovery.json")]
    pub out: PathBuf,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The time a JSON log line was written (Unix seconds).
fn line_time(v: &Value) -> Option<f64> {
    let ts = v["timestamp"].as_str()?;
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

/// When the node's log first says it hears `want` members.
fn converged_at(log: &str, want: u64) -> Option<f64> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["fields"]["message"] == "heard a new member"
                && v["fields"]["members"].as_u64() >= Some(want)
        })
        .and_then(|v| line_time(&v))
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

struct Beacons(Vec<Child>);

impl Drop for Beacons {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn one_run(hyphae: &PathBuf, n: usize, window: Duration) -> Result<Value> {
    let c = Cluster::builder()
        .nodes(n)
        .binary(hyphae)
        .name(format!("bench-discovery-{n}"))
        .build()?;
    init_mesh(&c[0])?;
    for i in 1..n {
        enrol_offline(&c[0], &c[i])?;
    }
    for node in c.nodes() {
        node.write_config(&format!(
            "[node]\nname = \"b{}\"\n[discovery]\nmdns = false\n[log]\nformat = \"json\"\n",
            node.index()
        ))?;
    }
    let mut children = Beacons(Vec::new());
    for node in c.nodes() {
        let log = std::fs::File::create(node.state_dir().join("beacon.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", node.netns()])
            .arg(hyphae)
            .arg("--state-dir")
            .arg(node.state_dir())
            .arg("beacon")
            .env("RUST_LOG", "info,hyphae_beacon=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a beacon")?;
        children.0.push(child);
    }
    let last_start = unix_now();
    let started = Instant::now();
    let want = (n - 1) as u64;
    let mut times: Vec<Option<f64>> = vec![None; n];
    while times.iter().any(Option::is_none) {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{n} beacons did not converge within 120 s: {times:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
        for (i, node) in c.nodes().iter().enumerate() {
            if times[i].is_none() {
                let log = std::fs::read_to_string(node.state_dir().join("beacon.log"))?;
                times[i] = converged_at(&log, want);
            }
        }
    }
    let mut after: Vec<f64> = times
        .iter()
        .flatten()
        .map(|t| ((t - last_start) * 1000.0).max(0.0))
        .collect();
    after.sort_by(f64::total_cmp);

    // Steady state: CPU per process and bytes per node over the window.
    let sample = |i: usize| -> Result<(f64, u64, u64)> {
        // `ip netns exec` execs the binary, so the child's pid is the beacon's.
        let pid = children.0[i].id();
        let cpu = cpu_seconds(pid).ok_or_else(|| anyhow!("no /proc/{pid}/stat"))?;
        let r = uds_get(c[i].state_dir().join("run/beacon.sock"), "/status")?;
        let s: Value = serde_json::from_slice(&r.body)?;
        let p = &s["packets"];
        Ok((
            cpu,
            p["sent_bytes"].as_u64().unwrap_or(0),
            p["received_bytes"].as_u64().unwrap_or(0),
        ))
    };
    let before: Vec<(f64, u64, u64)> = (0..n).map(sample).collect::<Result<_>>()?;
    std::thread::sleep(window);
    let later: Vec<(f64, u64, u64)> = (0..n).map(sample).collect::<Result<_>>()?;
    let secs = window.as_secs_f64();
    let per_node = |f: &dyn Fn(usize) -> f64| -> f64 { (0..n).map(f).sum::<f64>() / n as f64 };
    let cpu_pct = per_node(&|i| (later[i].0 - before[i].0) / secs * 100.0);
    let sent_bps = per_node(&|i| (later[i].1 - before[i].1) as f64 / secs);
    let recv_bps = per_node(&|i| (later[i].2 - before[i].2) as f64 / secs);
    let result = json!({
        "nodes": n,
        "converged_ms_after_last_start": {
            "p50": percentile(&after, 50.0),
            "p99": percentile(&after, 99.0),
            "max": after.last().copied().unwrap_or(0.0),
        },
        "per_node": {
            "cpu_percent_of_one_core": cpu_pct,
            "sent_bytes_per_s": sent_bps,
            "received_bytes_per_s": recv_bps,
        },
        "window_s": secs,
    });
    println!(
        "discovery n={n}: converged p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms after the last start; \
         per node {cpu_pct:.2}% of a core, {sent_bps:.0} B/s sent, {recv_bps:.0} B/s received",
        percentile(&after, 50.0),
        percentile(&after, 99.0),
        after.last().copied().unwrap_or(0.0),
    );
    Ok(result)
}

/// The whole benchmark.
pub fn run(args: DiscoveryArgs) -> Result<()> {
    let hyphae = crate::host::hyphae_binary(args.hyphae.as_deref())?;
    let mut runs = Vec::new();
    for n in &args.nodes {
        if *n < 2 {
            bail!("discovery needs at least 2 nodes");
        }
        runs.push(one_run(&hyphae, *n, Duration::from_secs(args.window_s))?);
    }
    let result = json!({
        "benchmark": "discovery",
        "anchor": {"serf_model_ms_at_50_nodes": 1600, "goal_p99_ms_at_32_nodes": 1000},
        "interval": "1s (default [discovery] interval)",
        "runs": runs,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)? + "\n")?;
    Ok(())
}
