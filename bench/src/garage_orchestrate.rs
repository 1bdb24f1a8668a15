//! `hyphae-bench garage`: the mesh store beside Garage with equal durability (one node may be
//! lost: Garage replication 2, Hyphae erasure coding 2+1) on the same three network namespaces,
//! one after the other, measured by the same client code: sequential PUT and GET MiB/s of 1 MiB
//! and 64 MiB objects. Garage through its S3 API (SigV4 presigned URLs), Hyphae through node
//! 0's chunkstore socket (the path the CLI and the gateway take).

use crate::host::sh;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use hyphae_harness::{coordinator::form_mesh, uds_get, wait_until, Cluster};
use serde_json::{json, Value};

use crate::garage_cluster::{GarageCluster, BUCKET, REGION, S3_PORT};
use crate::object_measure::{measure, wait_writable, ObjectTarget, SizeResult};

/// Options of `hyphae-bench garage`.
#[derive(Debug, clap::Args)]
pub struct GarageArgs {
    /// The hyphae binary; default: next to this one.
    #[arg(long)]
    hyphae: Option<PathBuf>,
    /// The garage binary (`scripts/garage.sh` installs it there).
    #[arg(long, default_value = "/var/cache/hyphae/garage/bin/garage")]
    garage: PathBuf,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/garage.json")]
    out: PathBuf,
    /// Objects of 1 MiB per direction.
    #[arg(long, default_value_t = 64)]
    small_objects: usize,
    /// Objects of 64 MiB per direction.
    #[arg(long, default_value_t = 4)]
    large_objects: usize,
    /// Run Garage with `metadata_fsync` and `data_fsync` on (its defaults are off).
    #[arg(long)]
    garage_fsync: bool,
}

const SMALL: usize = 1 << 20;
const LARGE: usize = 64 << 20;

async fn both_sizes(target: &ObjectTarget, args: &GarageArgs, name: &str) -> Result<Value> {
    let mut out = Vec::new();
    for (size, objects, seed) in [
        (SMALL, args.small_objects, 1_000),
        (LARGE, args.large_objects, 2_000),
    ] {
        let r: SizeResult = measure(target, "bench", size, objects, seed).await?;
        println!(
            "{name}: {} x {} KiB: PUT {:.1} MiB/s, GET {:.1} MiB/s",
            r.objects,
            r.object_bytes >> 10,
            r.put_mib_s,
            r.get_mib_s
        );
        out.push(serde_json::to_value(r)?);
    }
    Ok(Value::Array(out))
}

/// Waits until `storage_nodes` lists every node of `c` (every chunkstore is up).
fn wait_storage(c: &Cluster) -> Result<()> {
    wait_until(
        Duration::from_secs(120),
        "every storage node published",
        || {
            let sock = c[0].state_dir().join("run/coordinator.sock");
            let r = uds_get(&sock, "/kv/storage_nodes?prefix=")?;
            Ok(r.status == 200 && r.json()?["entries"].as_array().map(Vec::len) == Some(c.len()))
        },
    )
}

/// The whole benchmark.
pub fn run(args: GarageArgs) -> Result<()> {
    let hyphae = crate::host::hyphae_binary(args.hyphae.as_deref())?;
    let cluster = Cluster::builder()
        .nodes(3)
        .binary(&hyphae)
        .name("bench-garage")
        .build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (garage, garage_version, ours) = runtime.block_on(async {
        let (garage, version) = {
            let g = GarageCluster::start(&cluster, &args.garage, args.garage_fsync)?;
            let endpoint: url::Url = g.endpoint(0).parse()?;
            let target = ObjectTarget::S3 {
                addr: std::net::SocketAddr::new(cluster[0].ip().into(), S3_PORT),
                bucket: Box::new(
                    rusty_s3::Bucket::new(endpoint, rusty_s3::UrlStyle::Path, BUCKET, REGION)
                        .context("garage bucket url")?,
                ),
                credentials: rusty_s3::Credentials::new(g.key_id.clone(), g.secret.clone()),
            };
            wait_writable(&target, Duration::from_secs(120)).await?;
            (both_sizes(&target, &args, "garage").await?, g.version())
        };
        form_mesh(&cluster, cluster.len() - 1)?;
        wait_storage(&cluster)?;
        let target = ObjectTarget::Hyphae {
            socket: cluster[0].state_dir().join("run/chunkstore.sock"),
        };
        wait_writable(&target, Duration::from_secs(120)).await?;
        let ours = both_sizes(&target, &args, "hyphae").await?;
        anyhow::Ok((garage, version, ours))
    })?;
    let ratio = |i: usize, field: &str| {
        ours[i][field].as_f64().unwrap_or(f64::NAN) / garage[i][field].as_f64().unwrap_or(f64::NAN)
    };
    let ratios = json!({
        "put_1mib": ratio(0, "put_mib_s"),
        "get_1mib": ratio(0, "get_mib_s"),
        "put_64mib": ratio(1, "put_mib_s"),
        "get_64mib": ratio(1, "get_mib_s"),
    });
    let min = |a: &str, b: &str| {
        ratios[a]
            .as_f64()
            .unwrap_or(0.0)
            .min(ratios[b].as_f64().unwrap_or(0.0))
    };
    let result = json!({
        "hyphae": ours,
        "garage": garage,
        "ratios_hyphae_over_garage": ratios,
        "goals": {
            "put_at_least_1_5x_garage": min("put_1mib", "put_64mib") >= 1.5,
            "get_at_least_1_0x_garage": min("get_1mib", "get_64mib") >= 1.0,
        },
        "setup": {
            "nodes": 3,
            "network": "one network namespace per node, veth pairs on a Linux bridge (no shaping)",
            "client": "the bench process in the host namespace, one keep-alive HTTP/1.1 connection, sequential requests; Garage through node 0's S3 API (SigV4 presigned URLs, rusty-s3), Hyphae through node 0's chunkstore.sock (PUT/GET /files/...)",
            "durability": "tolerate one node loss: Garage replication_factor 2, Hyphae 2+1 (the default layout on 3 nodes)",
            "garage_fsync": args.garage_fsync,
            "hyphae_fsync": "every shard fdatasync'd before its upload is acknowledged",
            "garage": garage_version,
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
        "garage: hyphae/garage PUT 1 MiB {:.2}x, 64 MiB {:.2}x; GET 1 MiB {:.2}x, 64 MiB {:.2}x",
        ratios["put_1mib"].as_f64().unwrap_or(f64::NAN),
        ratios["put_64mib"].as_f64().unwrap_or(f64::NAN),
        ratios["get_1mib"].as_f64().unwrap_or(f64::NAN),
        ratios["get_64mib"].as_f64().unwrap_or(f64::NAN),
    );
    println!("wrote {}", args.out.display());
    Ok(())
}
