//! `hyphae-bench heal`: time to restore full redundancy after a node death, per GiB lost.
//! Four nodes (namespaces), files put at 2+1 so every chunk has a spare node to heal onto, one
//! holder killed with kill -9; measured from the moment the coordinator marks it down (after
//! `heal_after`, short here) until no survivor reports an under-replicated chunk. Healing is
//! throttled by `[storage] heal_bytes_per_sec`; the bench sets it (default: the product's
//! 64 MiB/s) and reports both.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hyper::Method;
use hyphae_harness::{coordinator::form_mesh_with, uds_get, wait_until, Cluster, Node};
use serde_json::{json, Value};

use crate::http_conn::HttpConn;
use crate::object_measure::object_bytes;

/// Options of `hyphae-bench heal`.
#[derive(Debug, clap::Args)]
pub struct HealArgs {
    /// The hyphae binary; default: next to this one.
    #[arg(long)]
    hyphae: Option<PathBuf>,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/heal.json")]
    out: PathBuf,
    /// MiB of files put before the node dies.
    #[arg(long, default_value_t = 512)]
    mib: usize,
    /// `[storage] heal_bytes_per_sec` of every node, in MiB/s.
    #[arg(long, default_value_t = 64)]
    heal_mib_s: u64,
}

fn storage(n: &Node) -> Option<Value> {
    let r = uds_get(n.state_dir().join("run/chunkstore.sock"), "/status").ok()?;
    (r.status == 200)
        .then(|| r.json().ok())?
        .map(|v| v["storage"].clone())
}

fn status_of(n: &Node, id: &str) -> Option<String> {
    let r = uds_get(n.state_dir().join("run/coordinator.sock"), "/nodes").ok()?;
    let v = r.json().ok()?;
    v["nodes"]
        .as_array()?
        .iter()
        .find(|x| x["id"] == id)
        .and_then(|x| x["status"].as_str().map(str::to_string))
}

/// The whole benchmark.
pub fn run(args: HealArgs) -> Result<()> {
    let hyphae = crate::host::hyphae_binary(args.hyphae.as_deref())?;
    let cluster = Cluster::builder()
        .nodes(4)
        .binary(&hyphae)
        .name("bench-heal")
        .build()?;
    let config = format!(
        "[coordinator]\nheartbeat_interval = \"250ms\"\nsuspect_after = \"1s\"\nheal_after = \"3s\"\n\
         [storage]\nheal_bytes_per_sec = {}\n",
        args.heal_mib_s << 20
    );
    form_mesh_with(&cluster, 2, &config)?;
    wait_until(
        Duration::from_secs(120),
        "every storage node published",
        || {
            let r = uds_get(
                cluster[0].state_dir().join("run/coordinator.sock"),
                "/kv/storage_nodes?prefix=",
            )?;
            Ok(r.status == 200 && r.json()?["entries"].as_array().map(Vec::len) == Some(4))
        },
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // 16 MiB files at 2+1 through node 0.
    runtime.block_on(async {
        let mut conn = HttpConn::unix(&cluster[0].state_dir().join("run/chunkstore.sock")).await?;
        for i in 0..args.mib.div_ceil(16) {
            let body = object_bytes(16 << 20, 9_000 + i as u64);
            let (status, resp) = conn
                .send_bytes(
                    Method::PUT,
                    &format!("/files/heal/f{i}?k=2&m=1"),
                    "bench",
                    body,
                )
                .await?;
            if !status.is_success() {
                bail!("put: {status} {}", String::from_utf8_lossy(&resp));
            }
        }
        anyhow::Ok(())
    })?;
    // The victim: node 3 (not a voter; its death does not involve an election).
    let victim = 3;
    let victim_id = cluster[victim].status_json()?["node_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let lost_bytes = storage(&cluster[victim])
        .and_then(|s| s["used_bytes"].as_u64())
        .unwrap_or(0);
    let killed = Instant::now();
    cluster[victim].kill()?;
    wait_until(Duration::from_secs(60), "victim marked down", || {
        Ok(status_of(&cluster[0], &victim_id).as_deref() == Some("down"))
    })?;
    let down = Instant::now();
    wait_until(Duration::from_secs(1800), "full redundancy back", || {
        Ok((0..3).all(|i| storage(&cluster[i]).is_some_and(|s| s["under_replicated_chunks"] == 0)))
    })?;
    let healed = Instant::now();
    let heal_s = (healed - down).as_secs_f64();
    let lost_gib = lost_bytes as f64 / (1u64 << 30) as f64;
    let result = json!({
        "bench": "heal",
        "nodes": 4,
        "layout": "2+1",
        "data_mib": args.mib,
        "lost_bytes": lost_bytes,
        "heal_bytes_per_sec": args.heal_mib_s << 20,
        "detect_s": (down - killed).as_secs_f64(),
        "heal_s": heal_s,
        "heal_s_per_gib_lost": heal_s / lost_gib,
        "heal_mib_s": lost_bytes as f64 / (1u64 << 20) as f64 / heal_s,
        "date": crate::host::utc_now(),
        "load_before": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    println!(
        "heal: {:.1} MiB lost on the dead node; marked down after {:.1} s; redundancy restored {:.1} s later: {:.1} s per GiB lost ({:.1} MiB/s, throttle {} MiB/s)",
        lost_bytes as f64 / (1u64 << 20) as f64,
        (down - killed).as_secs_f64(),
        heal_s,
        heal_s / lost_gib,
        lost_bytes as f64 / (1u64 << 20) as f64 / heal_s,
        args.heal_mib_s
    );
    println!("wrote {}", args.out.display());
    Ok(())
}
