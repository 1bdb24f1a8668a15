//! A mesh made before the web CA existed (its founder's `web-ca.*` removed after `hyphae init`)
//! gets one from its queen: created, published, handed to both princes, exported the same on
//! every node, and every gateway's certificate verifies against it (curl with `--cacert`).

mod support;

use std::time::Duration;

use anyhow::{ensure, Result};
use hyphae_harness::{wait_until, Cluster, Node};
use support::{join_config, token, wait_directory};

fn https_ok(from: &Node, ca_file: &str, to: &Node) -> Result<bool> {
    let url = format!("https://{}:8443/healthz", to.ip());
    let out = from.exec(
        "curl",
        &[
            "-s",
            "--cacert",
            ca_file,
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ],
    )?;
    Ok(out.stdout.trim() == "200")
}

#[test]
fn an_old_mesh_gets_a_web_ca_from_its_queen() -> Result<()> {
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    hyphae_harness::init_mesh(&c[0])?;
    let identity = c[0].state_dir().join("identity");
    for f in ["web-ca.crt", "web-ca.key"] {
        std::fs::remove_file(identity.join(f))?;
    }
    c[0].start()?;
    c[0].wait_ready(c.ready_timeout())?;
    wait_directory(&c[0], 1, 0, Duration::from_secs(30))?;
    let t = token(&c[0], 2, "1h")?;
    for n in &c.nodes()[1..] {
        n.write_config(&join_config(Some(&t), &[&c[0]]))?;
        n.start()?;
    }
    for n in &c.nodes()[1..] {
        n.wait_ready(c.ready_timeout())?;
    }
    wait_directory(&c[0], 3, 2, Duration::from_secs(60))?;

    // The queen (n0, the founder) made one; both princes were handed its key.
    wait_until(Duration::from_secs(60), "web CA on every voter", || {
        Ok(c.nodes()
            .iter()
            .all(|n| n.state_dir().join("identity/web-ca.key").exists()))
    })?;
    let held = std::fs::read_to_string(identity.join("web-ca.crt"))?;
    for n in c.nodes() {
        let exported = n.cli_ok(&["ca", "export"])?.stdout_trimmed().to_string();
        ensure!(
            exported == held.trim(),
            "n{} exports another web CA",
            n.index()
        );
        let prince_copy = std::fs::read_to_string(n.state_dir().join("identity/web-ca.crt"))?;
        ensure!(prince_copy == held, "n{} holds another web CA", n.index());
    }
    let ca_file = c[0].state_dir().join("web-ca.pem");
    std::fs::write(&ca_file, &held)?;
    let ca_arg = ca_file.to_string_lossy().into_owned();
    for n in c.nodes() {
        wait_until(
            Duration::from_secs(90),
            "gateway verified by the web CA",
            || https_ok(&c[1], &ca_arg, n),
        )?;
    }
    Ok(())
}
