//! The web dashboard in a real browser against a real mesh: a 3-node harness cluster with
//! gateways plus a 4th node waiting for admission; `tests/browser/dashboard.cjs` drives Debian's
//! headless Chromium through playwright-core (installed by the dashboard's build) to log in,
//! see every node on the topology, use the file browser, admit the pending node, find a
//! replicated VM on the VMs page, see a compute job's tiles on the jobs page, and take
//! screenshots of every page at desktop and phone sizes.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::memrep::guest;

use anyhow::{bail, Context, Result};
use hyphae_harness::{wait_for, wait_until, Cluster, Node};
use support::{join_config, node_id, nodes, token, wait_directory};

/// Whether the file routes (`/api/v1/files...`, the chunkstore behind the gateway) exist in
/// this build; the browser test exercises the file browser only then.
const FILES_READY: bool = true;

/// The gateway's HTTPS port in development and tests.
const GATEWAY_PORT: u16 = 8443;

/// Where screenshots go: `$HYPHAE_ARTIFACTS`, else `target/tmp/browser-artifacts`.
fn artifacts_dir() -> PathBuf {
    std::env::var_os("HYPHAE_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts"))
}

/// The admin password the first gateway generated and printed once in its node's log.
fn admin_password(c: &Cluster) -> Result<String> {
    const MARK: &str = "admin password (shown once): ";
    wait_for(
        Duration::from_secs(60),
        "the generated admin password in a node log",
        || {
            for n in c.nodes() {
                let log = std::fs::read_to_string(n.log_path()).unwrap_or_default();
                if let Some(line) = log.lines().find(|l| l.contains(MARK)) {
                    let pw = line.split(MARK).nth(1).unwrap_or("").trim();
                    let pw = pw.split_whitespace().next().unwrap_or("");
                    if !pw.is_empty() {
                        return Ok(Some(pw.to_string()));
                    }
                }
            }
            Ok(None)
        },
    )
}

/// The HTTP status `curl` gets for `url`, trusting only the web CA in `ca_file`.
fn http_status(url: &str, ca_file: &std::path::Path) -> Result<u16> {
    let out = Command::new("curl")
        .arg("--cacert")
        .arg(ca_file)
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "5",
            "-w",
            "%{http_code}",
            url,
        ])
        .output()
        .context("running curl (scripts/deps.sh installs it)")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0))
}

/// Makes `$home/.pki/nssdb` (the NSS database Chromium reads on Linux) trusting `ca_file` as
/// a CA for web sites, with certutil (Debian's libnss3-tools, installed by scripts/deps.sh).
fn trust_in_nss(home: &std::path::Path, ca_file: &std::path::Path) -> Result<()> {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db)?;
    let db_arg = format!("sql:{}", db.display());
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new("certutil")
            .args(args)
            .output()
            .context("running certutil (scripts/deps.sh installs libnss3-tools)")?;
        if !out.status.success() {
            bail!(
                "certutil {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    run(&["-N", "-d", &db_arg, "--empty-password"])?;
    let ca = ca_file.to_str().context("CA path")?;
    run(&[
        "-A",
        "-d",
        &db_arg,
        "-t",
        "C,,",
        "-n",
        "hyphae web CA",
        "-i",
        ca,
    ])
}

/// Stores two small matrices through `n` and runs a GEMM job on them to the end, for the jobs
/// page; returns the job id.
fn compute_job(n: &Node, dir: &std::path::Path) -> Result<String> {
    use hyphae_compute::{matrix_file, Matrix};
    wait_until(Duration::from_secs(90), "compute service ready", || {
        Ok(
            hyphae_harness::uds_get(n.state_dir().join("run/compute.sock"), "/status")
                .is_ok_and(|r| r.status == 200),
        )
    })?;
    for (name, m) in [
        ("a", Matrix::random(96, 64, 1)?),
        ("b", Matrix::random(64, 80, 2)?),
    ] {
        let local = dir.join(format!("{name}.hymx"));
        std::fs::write(&local, matrix_file::encode(&m))?;
        let path = format!("jobs/{name}");
        let out = n.cli_timeout(
            &["put", local.to_str().unwrap_or_default(), &path],
            Duration::from_secs(120),
        )?;
        if !out.success() {
            bail!("put {path}: {out}");
        }
    }
    let out = n.cli_timeout(
        &[
            "job", "submit", "jobs/a", "jobs/b", "jobs/c", "--tile", "32", "--wait",
        ],
        Duration::from_secs(200),
    )?;
    if !out.success() {
        bail!("the compute job for the jobs page failed: {out}");
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout)?;
    Ok(v["id"].as_str().context("job id")?.to_string())
}

fn start_joined(c: &Cluster, who: &[&Node], token: Option<&str>) -> Result<()> {
    for n in who {
        n.write_config(&join_config(token, &[&c[0]]))?;
        n.start()?;
    }
    for n in who {
        n.wait_ready(c.ready_timeout())?;
    }
    Ok(())
}

#[test]
fn the_dashboard_works_in_a_headless_browser() -> Result<()> {
    let chromium = std::env::var("HYPHAE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        bail!("no Chromium at {chromium}: run scripts/deps.sh (it installs Debian's chromium)");
    }
    let c = Cluster::builder()
        .nodes(4)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    // n0 founds the mesh, n1 and n2 join with a token: one queen, two princes.
    support::found_mesh(&c)?;
    let t = token(&c[0], 2, "1h")?;
    start_joined(&c, &[&c[1], &c[2]], Some(&t))?;
    wait_directory(&c[0], 3, 2, Duration::from_secs(60))?;
    let members: Vec<String> = (0..3).map(|i| node_id(&c[i])).collect::<Result<_>>()?;

    // n3 asks to join without a token: it waits as pending for someone to admit it.
    start_joined(&c, &[&c[3]], None)?;
    let pending = node_id(&c[3])?;
    wait_until(Duration::from_secs(30), "n3 pending", || {
        Ok(nodes(&c[0])?
            .unwrap_or_default()
            .iter()
            .any(|n| n["id"] == pending.as_str() && n["status"] == "pending"))
    })?;

    let password = admin_password(&c)?;
    let url = format!("https://{}:{GATEWAY_PORT}/", c[0].ip());
    // The browser's home has an NSS database trusting the mesh's web CA, exported as a user
    // would (`hyphae ca export`), so certificate errors need not (and are not) ignored.
    let home = tempfile::tempdir()?;
    let ca_file = home.path().join("hyphae-ca.pem");
    let ca = support::export_web_ca(&c[1])?;
    std::fs::write(&ca_file, format!("{ca}\n"))?;
    trust_in_nss(home.path(), &ca_file)?;
    wait_until(Duration::from_secs(60), "the gateway's /healthz", || {
        Ok(http_status(&format!("{url}healthz"), &ca_file)? == 200)
    })?;

    // A replicated VM on n0 (the project's test guest, backup n1) for the VMs page. Light on
    // purpose (128 MiB, a slow wave, one epoch a second) and booted before the browser starts,
    // so its TCG boot does not compete with the pages' requests.
    let vm = "dash";
    let (kernel, initrd) = guest()?;
    c[0].cli_ok(&[
        "vm",
        "create",
        vm,
        "--kernel",
        kernel.to_str().context("kernel path")?,
        "--initrd",
        initrd.to_str().context("initrd path")?,
        "--append",
        "console=ttyS0 nokaslr mitigations=off panic=-1 wave_region=64 wave_pages=8 wave_sleep_us=20000",
        "--mem",
        "128M",
        "--interval-ms",
        "1000",
        "--backup",
        &c[1].addr(7444).to_string(),
    ])?;
    wait_until(Duration::from_secs(300), "the VM's guest running", || {
        Ok(c[0]
            .cli(&["vm", "console", vm])?
            .stdout
            .contains("wave counter="))
    })?;
    let job = compute_job(&c[1], home.path())?;

    let artifacts = artifacts_dir();
    println!("browser artifacts (screenshots): {}", artifacts.display());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.cjs");
    // The browser runs in n3's network namespace, a client on the mesh's LAN: there it sees
    // only `lo` and `eth0`, so veths and bridges that other cluster tests create and delete
    // on the host do not make Chromium abort its requests (ERR_NETWORK_CHANGED).
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            c[3].netns(),
            "timeout",
            "300",
            "node",
            script,
        ])
        .env("NODE_PATH", hyphae_dashboard::node_modules_dir())
        .env("HYPHAE_URL", &url)
        .env("HYPHAE_PASSWORD", &password)
        .env("HYPHAE_EXPECT_NODES", members.join(","))
        .env("HYPHAE_PENDING_NODE", &pending)
        .env("HYPHAE_FILES", if FILES_READY { "1" } else { "0" })
        .env("HYPHAE_NAME_TARGET", c[1].ip().to_string())
        .env("HYPHAE_VM", vm)
        .env("HYPHAE_JOB_ID", &job)
        .env("HYPHAE_ARTIFACTS", &artifacts)
        .env("HYPHAE_CHROMIUM", &chromium)
        .env("HOME", home.path())
        .output()
        .context("running node (scripts/deps.sh installs Node.js)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("browser: ok"), "{stdout}");

    // The admission done in the browser reached the coordinator: n3 is a member, up.
    let list = wait_directory(&c[0], 4, 2, Duration::from_secs(60))?;
    assert!(
        list.iter().any(|n| n["id"] == pending.as_str()),
        "{list:#?}"
    );
    assert!(c[3].state_dir().join("identity/node.crt").exists());
    // The VM and its replica live in /dev/shm: delete the VM, remove the replica's files.
    c[0].cli_ok(&["vm", "delete", vm])?;
    let shm: Vec<PathBuf> = [&c[0], &c[1]]
        .iter()
        .filter_map(|n| {
            let sock = n.state_dir().join("run/memrep.sock");
            let s: serde_json::Value = hyphae_harness::uds_get(&sock, "/status")
                .ok()?
                .json()
                .ok()?;
            Some(PathBuf::from(s["shm_dir"].as_str()?))
        })
        .collect();
    drop(c);
    for dir in shm {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
