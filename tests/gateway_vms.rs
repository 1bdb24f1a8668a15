//! The gateway's VM routes over HTTPS on a harness node: a VM (the project's test guest) is
//! created through `POST /api/v1/vms`, listed, its console read until the guest counts,
//! stopped, and deleted; without a login the routes refuse, a bad name is refused by the
//! gateway before it reaches memrep, and a disk image missing from the mesh store is refused
//! by memrep with nothing left in /dev/shm.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use support::memrep::guest;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use hyphae_harness::{wait_until, Cluster};
use support::https::{Answer, Client, Proto};

#[test]
fn a_vm_is_created_listed_read_stopped_and_deleted_over_https() -> Result<()> {
    let (kernel, initrd) = guest()?;
    let c = Cluster::builder()
        .nodes(1)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    support::found_mesh(&c)?;
    let n = &c[0];
    for (sock, what) in [("gateway.sock", "gateway"), ("memrep.sock", "memrep")] {
        let sock = n.state_dir().join("run").join(sock);
        wait_until(Duration::from_secs(60), what, || {
            Ok(hyphae_harness::uds_get(&sock, "/status")
                .ok()
                .and_then(|r| r.json().ok())
                .is_some_and(|v: serde_json::Value| {
                    v["ready"] == true && (what != "gateway" || v["serving"] == true)
                }))
        })?;
    }
    let ca = n.cli_ok(&["ca", "export"])?.stdout_trimmed().to_string();
    let client = Client::new(&ca)?;
    let token = n
        .cli_ok(&["api-token", "create", "--name", "vms"])?
        .stdout_trimmed()
        .to_string();
    let auth = format!("Bearer {token}");
    let addr = SocketAddr::new(n.ip().into(), 8443);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let call = |proto: Proto, method: &'static str, path: String, body: Option<String>| {
        let client = client.clone();
        let auth = auth.clone();
        async move {
            let mut h = vec![("authorization", auth.as_str())];
            if body.is_some() {
                h.push(("content-type", "application/json"));
            }
            client
                .request(
                    proto,
                    addr,
                    method,
                    &path,
                    &h,
                    Bytes::from(body.unwrap_or_default()),
                )
                .await
        }
    };
    let text = |a: &Answer| String::from_utf8_lossy(&a.body).into_owned();
    rt.block_on(async {
        // No login: refused.
        let a = client
            .request(Proto::H2, addr, "GET", "/api/v1/vms", &[], Bytes::new())
            .await?;
        ensure!(a.status == 401, "unauthenticated list: {}", a.status);
        // A bad name never reaches memrep.
        let a = call(Proto::H2, "GET", "/api/v1/vms/a%20b".into(), None).await?;
        ensure!(a.status == 400, "bad name: {} {}", a.status, text(&a));

        let spec = serde_json::json!({
            "name": "api1",
            "kernel": kernel,
            "initrd": initrd,
            "append": "console=ttyS0 nokaslr mitigations=off panic=-1 quiet wave_region=64 wave_pages=8 wave_sleep_us=5000",
            "mem_mib": 128,
            "vcpus": 1,
            "mode": "consistent",
            // One node: no backup to choose (the default asks for two).
            "replicas": 0,
        });
        let a = call(Proto::H2, "POST", "/api/v1/vms".into(), Some(spec.to_string())).await?;
        ensure!(a.status == 201, "create: {} {}", a.status, text(&a));
        let a = call(Proto::H2, "POST", "/api/v1/vms".into(), Some(spec.to_string())).await?;
        ensure!(a.status == 409, "second create: {} {}", a.status, text(&a));
        let mut bad = spec.clone();
        bad["name"] = "api2".into();
        bad["kernel"] = "/no/such/kernel".into();
        let a = call(Proto::H2, "POST", "/api/v1/vms".into(), Some(bad.to_string())).await?;
        ensure!(
            a.status == 400 && text(&a).contains("no/such/kernel"),
            "missing kernel: {} {}",
            a.status,
            text(&a)
        );
        // Neither a kernel nor a disk: nothing to boot.
        let mut bad = spec.clone();
        bad["name"] = "api4".into();
        if let Some(o) = bad.as_object_mut() {
            for k in ["kernel", "initrd", "append"] {
                o.remove(k);
            }
        }
        let a = call(Proto::H2, "POST", "/api/v1/vms".into(), Some(bad.to_string())).await?;
        ensure!(
            a.status == 400 && text(&a).contains("nothing to boot"),
            "no kernel, no disk: {} {}",
            a.status,
            text(&a)
        );
        // A disk and no kernel is a disk boot: accepted as far as the disk, which is missing.
        bad["disk"] = "mesh:/no/such/boot.raw".into();
        let a = call(Proto::H2, "POST", "/api/v1/vms".into(), Some(bad.to_string())).await?;
        ensure!(
            a.status == 400 && text(&a).contains("mesh:/no/such/boot.raw: not found"),
            "disk boot with a missing image: {} {}",
            a.status,
            text(&a)
        );
        // A disk image the mesh store does not have: refused, nothing left in /dev/shm.
        let mut bad = spec.clone();
        bad["name"] = "api3".into();
        bad["disk"] = "mesh:/no/such/image.raw".into();
        let a = call(Proto::H2, "POST", "/api/v1/vms".into(), Some(bad.to_string())).await?;
        ensure!(
            a.status == 400 && text(&a).contains("mesh:/no/such/image.raw: not found"),
            "missing disk image: {} {}",
            a.status,
            text(&a)
        );
        let shm = support::memrep::memrep_status(n)?.context("memrep status")?["shm_dir"]
            .as_str()
            .map(PathBuf::from)
            .context("shm_dir")?;
        let leaked: Vec<_> = std::fs::read_dir(&shm)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        ensure!(
            !leaked
                .iter()
                .any(|f| f.to_string_lossy().starts_with("hyphae-memrep-api3")),
            "a refused disk left files in {}: {leaked:?}",
            shm.display()
        );

        for proto in [Proto::H1, Proto::H3] {
            let a = call(proto, "GET", "/api/v1/vms".into(), None).await?;
            ensure!(a.status == 200, "{proto:?} list: {}", a.status);
            let names: Vec<String> = a.json()["vms"]
                .as_array()
                .context("vms")?
                .iter()
                .filter_map(|v| v["name"].as_str().map(str::to_string))
                .collect();
            ensure!(names == ["api1"], "{proto:?} list: {names:?}");
        }
        // The console shows the guest counting (TCG boot: generous).
        let deadline = std::time::Instant::now() + Duration::from_secs(240);
        loop {
            let a = call(Proto::H2, "GET", "/api/v1/vms/api1/console".into(), None).await?;
            ensure!(a.status == 200, "console: {}", a.status);
            if text(&a).contains("wave counter=") {
                break;
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "the guest did not count; console: {}",
                text(&a)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let a = call(Proto::H3, "GET", "/api/v1/vms/api1".into(), None).await?;
        let stats = a.json()["stats"].clone();
        ensure!(a.status == 200 && stats["state"] == "running", "status: {stats}");
        ensure!(stats["epoch"].as_u64().unwrap_or(0) >= 1, "no epoch: {stats}");
        ensure!(stats["throttle_cgroup"].is_string(), "{stats}");

        let a = call(Proto::H2, "POST", "/api/v1/vms/api1/stop".into(), None).await?;
        ensure!(a.status == 200, "stop: {} {}", a.status, text(&a));
        let a = call(Proto::H2, "GET", "/api/v1/vms/api1".into(), None).await?;
        ensure!(a.json()["stats"]["state"] == "stopped", "after stop: {}", text(&a));
        let a = call(Proto::H2, "DELETE", "/api/v1/vms/api1".into(), None).await?;
        ensure!(a.status == 200, "delete: {} {}", a.status, text(&a));
        let a = call(Proto::H2, "GET", "/api/v1/vms/api1".into(), None).await?;
        ensure!(a.status == 404, "after delete: {}", a.status);
        let a = call(Proto::H2, "GET", "/api/v1/vms".into(), None).await?;
        ensure!(
            a.json()["vms"].as_array().is_some_and(Vec::is_empty),
            "list after delete: {}",
            text(&a)
        );
        Ok(())
    })?;
    let status = hyphae_harness::uds_get(n.state_dir().join("run/memrep.sock"), "/status")?;
    let shm = PathBuf::from(status.json()?["shm_dir"].as_str().unwrap_or_default());
    drop(c);
    let _ = std::fs::remove_dir_all(shm);
    Ok(())
}
