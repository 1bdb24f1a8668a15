//! Mesh names on a node itself, as the image sets them up: the node's resolver asks the local
//! gateway on 127.0.0.1:53 with the search domain `hyphae.internal`
//! (image/files/etc/systemd/resolved.conf.d/hyphae.conf), so `getent hosts hypermesh` and
//! `https://hypermesh:PORT/` work with the standard resolver (glibc) and the web CA; the
//! built-in names answer only healthy gateways. Also: the image's config files parse and
//! carry the standard ports.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use hyphae_harness::{wait_until, Cluster, Node};

/// The gateway's DNS on the standard port, as in the image (a test namespace may bind it).
const EXTRA: &str = "[gateway]\ndns_port = 53\n";

/// `/etc/netns/<ns>/resolv.conf`, which `ip netns exec` bind-mounts over `/etc/resolv.conf`;
/// removed again on drop.
struct NetnsResolvConf(PathBuf);

impl NetnsResolvConf {
    fn install(ns: &str) -> Result<NetnsResolvConf> {
        let dir = Path::new("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir)?;
        // What systemd-resolved writes to /run/systemd/resolve/resolv.conf with the image's
        // resolved.conf.d/hyphae.conf (no upstream servers in a test namespace).
        std::fs::write(
            dir.join("resolv.conf"),
            "nameserver 127.0.0.1\nsearch hyphae.internal\n",
        )?;
        Ok(NetnsResolvConf(dir))
    }
}

impl Drop for NetnsResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The IPv4 addresses `getent hosts NAME` gives in `n`'s namespace (glibc's resolver).
fn getent(n: &Node, name: &str) -> Result<BTreeSet<String>> {
    let out = n.exec("getent", &["ahostsv4", name])?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

#[test]
fn image_config_files_use_the_standard_ports() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "image/files/etc/hyphae/hyphae.toml",
        "image/hyphae.toml.example",
    ] {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)?;
        let config = hyphae_core::config::Config::parse(&text, &path)
            .with_context(|| format!("{file} does not parse"))?;
        ensure!(config.gateway.port == 443, "{file}: gateway.port");
        ensure!(config.gateway.dns_port == 53, "{file}: gateway.dns_port");
    }
    let resolved =
        std::fs::read_to_string(root.join("image/files/etc/systemd/resolved.conf.d/hyphae.conf"))?;
    for line in ["DNS=127.0.0.1", "Domains=~hyphae.internal hyphae.internal"] {
        ensure!(
            resolved.lines().any(|l| l == line),
            "resolved.conf.d lacks {line}"
        );
    }
    Ok(())
}

#[test]
fn a_node_resolves_hypermesh_through_its_gateway_and_trusts_it() -> Result<()> {
    let c = Cluster::builder()
        .nodes(2)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    support::form_mesh_with(&c, 0, EXTRA)?;
    let _conf = NetnsResolvConf::install(c[0].netns())?;
    let both: BTreeSet<String> = c.nodes().iter().map(|n| n.ip().to_string()).collect();
    // Every built-in name answers both healthy gateways (once both registered their services).
    for name in ["hypermesh", "assets", "trust"] {
        wait_until(
            Duration::from_secs(90),
            "built-in name on both gateways",
            || Ok(getent(&c[0], name)? == both),
        )
        .with_context(|| format!("getent hosts {name}"))?;
    }
    // An HTTPS request by name, verified with the web CA as exported.
    let ca = support::export_web_ca(&c[0])?;
    let ca_file = c[0].state_dir().join("web-ca.pem");
    std::fs::write(&ca_file, format!("{ca}\n"))?;
    let ca_arg = ca_file.to_str().context("path")?.to_string();
    let url = "https://hypermesh:8443/healthz";
    let out = curl_status(&c[0], &ca_arg, url)?;
    ensure!(out.stdout.trim() == "200", "curl {url}: {out:?}");
    // A stopped node's gateway is no longer answered for.
    c[1].kill()?;
    let only_n0: BTreeSet<String> = [c[0].ip().to_string()].into();
    wait_until(Duration::from_secs(60), "hypermesh only on n0", || {
        Ok(getent(&c[0], "hypermesh")? == only_n0)
    })?;
    let out = curl_status(&c[0], &ca_arg, url)?;
    ensure!(
        out.stdout.trim() == "200",
        "curl {url} after n1 stopped: {out:?}"
    );
    // An unknown single-label name does not resolve.
    ensure!(getent(&c[0], "no-such-name")?.is_empty());
    Ok(())
}

/// `curl` on `node` (its namespace, its resolver): the HTTP status of `url`, trusting only `ca`.
fn curl_status(
    node: &hyphae_harness::Node,
    ca: &str,
    url: &str,
) -> Result<hyphae_harness::CmdOutput> {
    node.exec(
        "curl",
        &[
            "-sS",
            "--cacert",
            ca,
            "-m",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
    )
}
