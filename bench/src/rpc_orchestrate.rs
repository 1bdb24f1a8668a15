//! Runs the RPC benchmark: two nodes of one mesh in two network namespaces on a bridge, a
//! server in one (QUIC and TLS/TCP), a client in the other, both transports measured in turn.

use crate::host::sh;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use hyphae_core::identity::NodeKey;
use hyphae_core::pki::Membership;
use hyphae_harness::{enrol_offline, init_mesh, Cluster};
use serde_json::{json, Value};

use crate::stats::{median, Latency};
use crate::{rpc_quic, rpc_tcp};

/// Options of `hyphae-bench rpc`.
#[derive(Debug, clap::Args)]
pub struct RpcArgs {
    /// The hyphae binary (for `init` and enrolment); default: next to this one.
    #[arg(long)]
    hyphae: Option<PathBuf>,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/rpc.json")]
    out: PathBuf,
    /// Round trips measured per transport.
    #[arg(long, default_value_t = 5000)]
    pings: usize,
    /// MiB per bulk run.
    #[arg(long, default_value_t = 1024)]
    bulk_mib: u64,
    /// Bulk runs per transport (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// Options of the internal client.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    #[arg(long)]
    state_dir: PathBuf,
    #[arg(long)]
    server: IpAddr,
    #[arg(long, default_value_t = 7460)]
    quic_port: u16,
    #[arg(long, default_value_t = 7461)]
    tcp_port: u16,
    #[arg(long)]
    pings: usize,
    #[arg(long)]
    bulk_mib: u64,
    #[arg(long)]
    runs: usize,
}

fn membership(state_dir: &std::path::Path) -> Result<Membership> {
    let dir = state_dir.join("identity");
    let key = Arc::new(NodeKey::load_or_create(&dir)?);
    Membership::load(&dir, key)?.ok_or_else(|| anyhow!("{} is not a mesh member", dir.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The server process: both transports, until killed.
pub fn serve(state_dir: PathBuf, quic_port: u16, tcp_port: u16) -> Result<()> {
    let m = membership(&state_dir)?;
    runtime()?.block_on(async move {
        let quic = rpc_quic::serve(&m, quic_port);
        let tcp = rpc_tcp::serve(&m, tcp_port);
        tokio::try_join!(quic, tcp)?;
        Ok(())
    })
}

/// The client process: measures both transports, prints one JSON object.
pub fn client(args: ClientArgs) -> Result<()> {
    let m = membership(&args.state_dir)?;
    let quic_addr = SocketAddr::new(args.server, args.quic_port);
    let tcp_addr = SocketAddr::new(args.server, args.tcp_port);
    let result = runtime()?.block_on(async move {
        let (_endpoint, conn) = rpc_quic::connect(&m, quic_addr).await?;
        let quic_rtt = Latency::of(&mut rpc_quic::ping_latencies(&conn, args.pings).await?);
        let tcp_rtt = Latency::of(&mut rpc_tcp::ping_latencies(&m, tcp_addr, args.pings).await?);
        let mut quic_bulk = Vec::new();
        let mut tcp_bulk = Vec::new();
        for _ in 0..args.runs {
            quic_bulk.push(rpc_quic::bulk(&conn, args.bulk_mib).await?);
            tcp_bulk.push(rpc_tcp::bulk(&m, tcp_addr, args.bulk_mib).await?);
        }
        anyhow::Ok(json!({
            "quic": { "rtt": quic_rtt, "bulk_mib_s": median(&mut quic_bulk.clone()), "bulk_runs_mib_s": quic_bulk },
            "tcp_tls": { "rtt": tcp_rtt, "bulk_mib_s": median(&mut tcp_bulk.clone()), "bulk_runs_mib_s": tcp_bulk },
        }))
    })?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// The whole benchmark.
pub fn run(args: RpcArgs) -> Result<()> {
    let me = std::env::current_exe()?;
    let hyphae = crate::host::hyphae_binary(args.hyphae.as_deref())?;
    let c = Cluster::builder()
        .nodes(2)
        .binary(&hyphae)
        .name("bench-rpc")
        .build()?;
    init_mesh(&c[0])?;
    enrol_offline(&c[0], &c[1])?;
    let mut server = Command::new("ip")
        .args(["netns", "exec", c[0].netns()])
        .arg(&me)
        .arg("rpc-server")
        .arg("--state-dir")
        .arg(c[0].state_dir())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the bench server")?;
    let me_s = me.to_string_lossy().into_owned();
    let state = c[1].state_dir().to_string_lossy().into_owned();
    let server_ip = c[0].ip().to_string();
    let (pings, mib, runs) = (
        args.pings.to_string(),
        args.bulk_mib.to_string(),
        args.runs.to_string(),
    );
    let out = c[1].exec(
        &me_s,
        &[
            "rpc-client",
            "--state-dir",
            &state,
            "--server",
            &server_ip,
            "--pings",
            &pings,
            "--bulk-mib",
            &mib,
            "--runs",
            &runs,
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    let out = out?;
    if !out.success() {
        return Err(anyhow!("bench client failed: {out}"));
    }
    let mut result: Value = serde_json::from_str(out.stdout_trimmed())?;
    let q = result["quic"].clone();
    let t = result["tcp_tls"].clone();
    let ratio = |a: &Value, b: &Value| a.as_f64().unwrap_or(0.0) / b.as_f64().unwrap_or(f64::NAN);
    let bulk_ratio = ratio(&q["bulk_mib_s"], &t["bulk_mib_s"]);
    let p99_ratio = ratio(&q["rtt"]["p99_us"], &t["rtt"]["p99_us"]);
    result["ratios"] = json!({
        "bulk_quic_over_tcp_tls": bulk_ratio,
        "rtt_p99_quic_over_tcp_tls": p99_ratio,
    });
    result["goals"] = json!({
        "bulk_at_least_0_8x_tcp_tls": bulk_ratio >= 0.8,
        "quic_p99_under_1ms": q["rtt"]["p99_us"].as_f64().unwrap_or(f64::MAX) < 1000.0,
    });
    result["setup"] = json!({
        "link": "veth pairs on a Linux bridge between two network namespaces (no shaping)",
        "pings": args.pings, "bulk_mib": args.bulk_mib, "runs": args.runs,
        "kernel": sh("uname", &["-r"]), "cpus": sh("nproc", &[]),
        "date": sh("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "quic": "quinn 0.11 + rustls 0.23 (ring), TLS 1.3, mutual certificates; one stream per RPC",
        "tcp_tls": "tokio-rustls 0.26 (ring), TLS 1.3, same certificates; one connection, TCP_NODELAY",
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    println!(
        "rpc: QUIC p50/p99 {:.0}/{:.0} us, TLS/TCP p50/p99 {:.0}/{:.0} us; bulk QUIC {:.0} MiB/s vs TLS/TCP {:.0} MiB/s = {:.2}x (goal >= 0.8x)",
        q["rtt"]["p50_us"].as_f64().unwrap_or(0.0),
        q["rtt"]["p99_us"].as_f64().unwrap_or(0.0),
        t["rtt"]["p50_us"].as_f64().unwrap_or(0.0),
        t["rtt"]["p99_us"].as_f64().unwrap_or(0.0),
        q["bulk_mib_s"].as_f64().unwrap_or(0.0),
        t["bulk_mib_s"].as_f64().unwrap_or(0.0),
        bulk_ratio
    );
    println!("wrote {}", args.out.display());
    Ok(())
}
