//! Every service verb that runs as a `Type=notify` systemd unit tells systemd it has started
//! (`READY=1` on `$NOTIFY_SOCKET`), also while its node is not (yet) a member of a mesh: without
//! it systemd fails the unit after `TimeoutStartSec=` and the appliance never settles (the image
//! boot test hung on exactly this). The socket here is a plain Unix datagram socket, as systemd's.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a service may take to start on a loaded CI machine (it needs well under a second).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A node that cannot find a mesh by itself: every discovery step off, no join token.
const ISOLATED: &str = "[discovery]\nbeacon = false\nmdns = false\nauto_init = false\n";

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hyphae VERB` with its own state dir and notify socket; returns what it sent.
fn notifications(verb: &str, dir: &Path) -> (Vec<String>, Option<std::process::ExitStatus>) {
    std::fs::write(dir.join("hyphae.toml"), ISOLATED).expect("write config");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("socket timeout");
    let child = Command::new(env!("CARGO_BIN_EXE_hyphae"))
        .arg("--state-dir")
        .arg(dir)
        .arg("--config")
        .arg(dir.join("hyphae.toml"))
        .arg(verb)
        .env("NOTIFY_SOCKET", &sock_path)
        .env_remove("HYPHAE_STATE_DIR")
        .env_remove("HYPHAE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hyphae");
    let mut running = Running(child);
    let mut seen = Vec::new();
    let deadline = Instant::now() + START_TIMEOUT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let ready = msg.lines().any(|l| l == "READY=1");
            seen.push(msg);
            if ready {
                return (seen, None);
            }
        }
        if let Ok(Some(status)) = running.0.try_wait() {
            return (seen, Some(status));
        }
    }
    (seen, None)
}

fn assert_ready(verb: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seen, exited) = notifications(verb, dir.path());
    assert!(
        seen.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "`hyphae {verb}` sent no READY=1 within {START_TIMEOUT:?} (exited: {exited:?}); it sent {seen:?}"
    );
}

#[test]
fn coordinator_tells_systemd_it_started() {
    assert_ready("coordinator");
}

#[test]
fn chunkstore_tells_systemd_it_started() {
    assert_ready("chunkstore");
}

#[test]
fn gateway_tells_systemd_it_started() {
    assert_ready("gateway");
}

#[test]
fn memrep_tells_systemd_it_started() {
    assert_ready("memrep");
}

#[test]
fn compute_tells_systemd_it_started() {
    assert_ready("compute");
}

/// `hyphae status --json` for the node in `dir`, parsed; `None` while it does not answer.
fn status_json(dir: &Path) -> Option<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_hyphae"))
        .arg("--state-dir")
        .arg(dir)
        .arg("--config")
        .arg(dir.join("hyphae.toml"))
        .args(["status", "--json"])
        .env_remove("HYPHAE_STATE_DIR")
        .env_remove("HYPHAE_CONFIG")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Under systemd each service is its own process, started before the node joins: the agent
/// must notice the membership its node gains while it runs (it used to read it once at start,
/// so `hyphae status` said "not a member yet" on a node that had founded its mesh).
#[test]
fn the_agent_serves_the_mesh_once_its_node_joins() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port free right now (not 7440: other tests on this host may hold it).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    std::fs::write(
        dir.path().join("hyphae.toml"),
        format!("{ISOLATED}[ports]\nnode = {port}\n"),
    )
    .expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_hyphae"))
        .arg("--state-dir")
        .arg(dir.path())
        .arg("--config")
        .arg(dir.path().join("hyphae.toml"))
        .arg("agent")
        .env_remove("HYPHAE_STATE_DIR")
        .env_remove("HYPHAE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hyphae agent");
    let _agent = Running(child);

    let deadline = Instant::now() + START_TIMEOUT;
    let before = loop {
        if let Some(s) = status_json(dir.path()) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never answered its status"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(before["member"], false, "{before}");

    let init = Command::new(env!("CARGO_BIN_EXE_hyphae"))
        .arg("--state-dir")
        .arg(dir.path())
        .arg("--config")
        .arg(dir.path().join("hyphae.toml"))
        .arg("init")
        .env_remove("HYPHAE_STATE_DIR")
        .env_remove("HYPHAE_CONFIG")
        .output()
        .expect("run hyphae init");
    assert!(init.status.success(), "hyphae init: {init:?}");

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let s = status_json(dir.path()).unwrap_or_default();
        if s["member"] == true && s["quic"].is_string() && s["mesh_id"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never saw the membership `hyphae init` wrote: {s}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
