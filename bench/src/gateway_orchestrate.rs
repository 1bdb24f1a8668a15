//! `hyphae-bench gateway`: our gateway (a 1-node mesh, `hyphae node` in a network namespace)
//! beside Caddy 2.6 (Debian's package, HTTP/3 on) in the same namespace, same certificate, same
//! client: requests/s and p99 of a small GET with N concurrent clients and MiB/s of a 64 MiB
//! download, over HTTP/2 and HTTP/3.
//!
//! Ours: `GET /api/v1/status` with an API token (authenticated: token check, then the node's
//! coordinator over its socket) and, as a second figure, the public `GET /healthz`; the 64 MiB
//! file is stored in the mesh (`PUT /api/v1/files/...`) and read back through the chunkstore
//! (decrypt + erasure decode). Caddy: a static copy of the same status JSON and the same 64 MiB
//! file from disk.

use crate::host::sh;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use hyphae_harness::coordinator::found_mesh;
use hyphae_harness::{uds_get, wait_until, Cluster, Node};
use rand::RngCore;
use serde_json::{json, Value};

use crate::gateway_caddy::Caddy;
use crate::gateway_client::{Conn, Proto, Tls};
use crate::gateway_measure::{download, rate, Target};

/// Options of `hyphae-bench gateway`.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// The hyphae binary; default: next to this one.
    #[arg(long)]
    hyphae: Option<PathBuf>,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/gateway.json")]
    out: PathBuf,
    /// Concurrent clients (one connection each) for the small-request figures.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds of each small-request run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Size of the large file, MiB.
    #[arg(long, default_value_t = 64)]
    file_mib: usize,
    /// Downloads of the large file per server and protocol (the median is reported).
    #[arg(long, default_value_t = 3)]
    downloads: usize,
}

const GATEWAY_PORT: u16 = 8443;
const CADDY_PORT: u16 = 9443;
const FILE: &str = "bench/blob.bin";

/// Waits until the node's gateway serves and its chunkstore has published itself.
fn wait_serving(n: &Node) -> Result<()> {
    let run = n.state_dir().join("run");
    wait_until(Duration::from_secs(120), "gateway serving", || {
        Ok(uds_get(run.join("gateway.sock"), "/status")
            .ok()
            .and_then(|r| r.json().ok())
            .is_some_and(|v| v["serving"] == true))
    })?;
    wait_until(Duration::from_secs(120), "storage node published", || {
        let r = uds_get(run.join("coordinator.sock"), "/kv/storage_nodes?prefix=")?;
        Ok(r.status == 200
            && r.json()?["entries"]
                .as_array()
                .is_some_and(|e| !e.is_empty()))
    })
}

async fn one(
    tls: &Tls,
    proto: Proto,
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<(u16, Vec<u8>)> {
    let mut conn = Conn::open(tls, proto, addr).await?;
    let uri = format!("https://{addr}{path}");
    let r = conn.request(method, &uri, headers, body, true).await?;
    Ok((r.status, r.body.unwrap_or_default()))
}

fn ratio(ours: f64, theirs: f64) -> f64 {
    ours / theirs
}

/// The whole benchmark.
pub fn run(args: GatewayArgs) -> Result<()> {
    let hyphae = crate::host::hyphae_binary(args.hyphae.as_deref())?;
    let load_before = sh("cat", &["/proc/loadavg"]);
    let uptime_before = sh("uptime", &[]);
    let cluster = Cluster::builder()
        .nodes(1)
        .binary(&hyphae)
        .name("bench-gw")
        .build()?;
    found_mesh(&cluster)?;
    let node = &cluster[0];
    wait_serving(node)?;
    let token = node
        .cli_ok(&["api-token", "create", "--name", "bench"])?
        .stdout_trimmed()
        .to_string();
    let ca = node.cli_ok(&["ca", "export"])?.stdout_trimmed().to_string();
    let tls = Tls::trusting(&ca)?;
    let ours = SocketAddr::new(node.ip().into(), GATEWAY_PORT);
    let theirs = SocketAddr::new(node.ip().into(), CADDY_PORT);
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];

    let root = cluster.state_root().join("caddy-root");
    std::fs::create_dir_all(root.join("bench"))?;
    let mut blob = vec![0u8; args.file_mib * 1024 * 1024];
    rand::rng().fill_bytes(&mut blob);
    std::fs::write(root.join(FILE), &blob)?;
    let size = blob.len() as u64;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        // The same bytes into the mesh, and the status document Caddy will serve as a file.
        let (status, body) = one(
            &tls,
            Proto::H2,
            "PUT",
            ours,
            &format!("/api/v1/files/{FILE}"),
            &auth,
            Bytes::from(blob),
        )
        .await?;
        ensure!(status == 201, "upload: {status} {}", String::from_utf8_lossy(&body));
        let (status, doc) = one(&tls, Proto::H2, "GET", ours, "/api/v1/status", &auth, Bytes::new()).await?;
        ensure!(status == 200, "status: {status}");
        std::fs::write(root.join("status.json"), &doc)?;

        let cert_dir = node.state_dir().join("gateway");
        let caddy = Caddy::start(
            node.netns(),
            theirs,
            &cert_dir.join("tls.crt"),
            &cert_dir.join("tls.key"),
            &root,
            &cluster.state_root().join("caddy"),
        )?;
        let mut last = String::new();
        let mut up = false;
        for _ in 0..120 {
            let h3 = one(&tls, Proto::H3, "GET", theirs, "/status.json", &[], Bytes::new()).await;
            let h2 = one(&tls, Proto::H2, "GET", theirs, "/status.json", &[], Bytes::new()).await;
            match (h2, h3) {
                (Ok((200, _)), Ok((200, _))) => {
                    up = true;
                    break;
                }
                (h2, h3) => {
                    last = format!(
                        "h2: {:?}; h3: {:?}",
                        h2.map(|r| r.0),
                        h3.map(|r| r.0)
                    )
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        ensure!(
            up,
            "caddy does not serve over h2 and h3 ({last}):\n{}",
            caddy.log_tail()
        );

        let target = |addr, path: &str, headers: &[(&str, &str)]| Target {
            addr,
            path: path.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let api = target(ours, "/api/v1/status", &auth);
        let health = target(ours, "/healthz", &[]);
        let small = target(theirs, "/status.json", &auth);
        let big_ours = target(ours, &format!("/api/v1/files/{FILE}"), &auth);
        let big_theirs = target(theirs, &format!("/{FILE}"), &auth);

        let mut per_proto = serde_json::Map::new();
        for proto in [Proto::H2, Proto::H3] {
            let name = format!("{proto:?}").to_lowercase();
            let mut rates = Vec::new();
            for (who, t) in [("hyphae_api_status", &api), ("caddy_static_json", &small), ("hyphae_healthz", &health)] {
                let r = rate(&tls, proto, t, args.clients, args.seconds)
                    .await
                    .with_context(|| format!("{name} {who}"))?;
                println!(
                    "{name} {who}: {} clients, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} B bodies)",
                    r.clients,
                    r.requests_per_s,
                    r.latency.p50_us / 1e3,
                    r.latency.p99_us / 1e3,
                    r.body_bytes
                );
                rates.push((who, r));
            }
            let d_ours = download(&tls, proto, &big_ours, size, args.downloads)
                .await
                .with_context(|| format!("{name} hyphae download"))?;
            println!("{name} hyphae download: {:.0} MiB/s {:?}", d_ours.mib_per_s, d_ours.runs_mib_per_s);
            let d_caddy = download(&tls, proto, &big_theirs, size, args.downloads)
                .await
                .with_context(|| format!("{name} caddy download"))?;
            println!("{name} caddy download: {:.0} MiB/s {:?}", d_caddy.mib_per_s, d_caddy.runs_mib_per_s);
            let r = |who: &str| rates.iter().find(|(w, _)| *w == who).map(|(_, r)| r.clone());
            let (a, c, h) = (
                r("hyphae_api_status").context("missing")?,
                r("caddy_static_json").context("missing")?,
                r("hyphae_healthz").context("missing")?,
            );
            let ratios = json!({
                "api_status_rps_hyphae_over_caddy": ratio(a.requests_per_s, c.requests_per_s),
                "api_status_p99_caddy_over_hyphae": ratio(c.latency.p99_us, a.latency.p99_us),
                "healthz_rps_hyphae_over_caddy": ratio(h.requests_per_s, c.requests_per_s),
                "healthz_p99_caddy_over_hyphae": ratio(c.latency.p99_us, h.latency.p99_us),
                "download_mib_s_hyphae_over_caddy": ratio(d_ours.mib_per_s, d_caddy.mib_per_s),
            });
            println!("{name} ratios (ours/Caddy, >= 1.0 is the goal): {ratios}");
            per_proto.insert(
                name,
                json!({
                    "hyphae_api_status": a,
                    "hyphae_healthz": h,
                    "caddy_static_json": c,
                    "hyphae_download": d_ours,
                    "caddy_download": d_caddy,
                    "ratios": ratios,
                }),
            );
        }
        drop(caddy);
        anyhow::Ok(Value::Object(per_proto))
    })?;
    let goals: Value = result
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(p, v)| {
                    let ok = v["ratios"]
                        .as_object()
                        .map(|r| r.values().all(|x| x.as_f64().is_some_and(|x| x >= 1.0)))
                        .unwrap_or(false);
                    (format!("{p}_every_ratio_at_least_1"), Value::Bool(ok))
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .unwrap_or_default();
    let out = json!({
        "results": result,
        "goals": goals,
        "setup": {
            "servers": "our gateway (hyphae node, 1-node mesh) on :8443 and Caddy on :9443, both in the node's network namespace, both with the gateway's ECDSA P-256 certificate (signed by the mesh's web CA)",
            "client": "the bench process in the host namespace over the harness bridge; hyper HTTP/2 over tokio-rustls, h3 + h3-quinn over quinn 0.11 (ring); one keep-alive connection per concurrent client; 20 unmeasured requests per connection first",
            "small": "ours: GET /api/v1/status with Authorization: Bearer <API token> (and GET /healthz, public); Caddy: GET /status.json, a static copy of that status document",
            "large": format!("{} MiB of random bytes: ours stored in the mesh and read through GET /api/v1/files/{FILE} (chunkstore: decrypt + erasure decode), Caddy from disk (file_server); one connection, median of {} downloads", args.file_mib, args.downloads),
            "ratios": "rps and MiB/s: ours/Caddy; p99: Caddy/ours (so >= 1.0 means ours is at least as good on every figure)",
            "caddy": Caddy::version(),
            "clients": args.clients, "seconds": args.seconds,
            "kernel": sh("uname", &["-r"]), "cpus": sh("nproc", &[]),
            "load_before": load_before,
            "uptime_before": uptime_before,
            "load_after": sh("cat", &["/proc/loadavg"]),
            "date": sh("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            "note": "the machine was shared with other builds and tests while this ran (see load)",
        },
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    println!(
        "load before: {}; after: {}",
        out["setup"]["load_before"], out["setup"]["load_after"]
    );
    println!("wrote {}", args.out.display());
    Ok(())
}
