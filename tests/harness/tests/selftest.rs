//! Self-tests of the cluster harness against a stand-in node binary.
//! They need root and iproute2, ping and python3 (as the real cluster tests do).

mod standin;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use hyphae_harness::{ip, wait_until, Cluster, ClusterBuilder, Tbf};

const READY: Duration = Duration::from_secs(15);

fn builder(nodes: usize) -> ClusterBuilder {
    Cluster::builder()
        .nodes(nodes)
        .binary(standin::standin())
        .ready_timeout(READY)
}

/// Identities (netns inode, link ifindex) of everything a cluster created,
/// so "is it gone?" is answered correctly even if a concurrent test has
/// already reused the slot and its names.
struct Fingerprint {
    items: Vec<(String, PathBuf, u64)>,
}

impl Fingerprint {
    fn of(c: &Cluster) -> Self {
        let mut items = Vec::new();
        let link = |name: &str| {
            let p = PathBuf::from(format!("/sys/class/net/{name}/ifindex"));
            let idx = fs::read_to_string(&p).unwrap().trim().parse().unwrap();
            (name.to_string(), p, idx)
        };
        items.push(link(&c.bridge()));
        for n in c {
            items.push(link(n.host_veth()));
            let p = PathBuf::from(format!("/run/netns/{}", n.netns()));
            let ino = fs::metadata(&p).unwrap().ino();
            items.push((n.netns().to_string(), p, ino));
        }
        Fingerprint { items }
    }

    /// Names whose object (same inode / ifindex) still exists.
    fn remaining(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|(_, path, id)| {
                if path.starts_with("/run/netns") {
                    fs::metadata(path).is_ok_and(|m| m.ino() == *id)
                } else {
                    fs::read_to_string(path).is_ok_and(|s| s.trim().parse() == Ok(*id))
                }
            })
            .map(|(name, _, _)| name.clone())
            .collect()
    }

    /// The names, for checking `ip netns list` / `ip link` output.
    fn names(&self) -> Vec<&str> {
        self.items.iter().map(|(n, _, _)| n.as_str()).collect()
    }
}

#[test]
fn network_comes_up_and_everyone_reaches_everyone() -> Result<()> {
    let c = builder(2).start()?;
    let slot = c.slot();
    assert_eq!(c.subnet(), format!("10.213.{slot}.0/24"));
    assert_eq!(c.bridge(), format!("hyb{slot}"));
    assert_eq!(c.bridge_ip().to_string(), format!("10.213.{slot}.1"));
    for (i, n) in c.nodes().iter().enumerate() {
        assert_eq!(n.ip().to_string(), format!("10.213.{slot}.{}", 10 + i));
        assert_eq!(n.netns(), format!("hyn{slot}n{i}"));
        assert_eq!(n.host_veth(), format!("hyv{slot}n{i}"));
        assert_eq!(n.quic_addr(), format!("10.213.{slot}.{}:7440", 10 + i));
        assert!(n.state_dir().starts_with(c.state_root()));
        assert!(n.pid().is_some());

        let addr = n
            .exec("ip", &["-4", "-o", "addr", "show", "dev", "eth0"])?
            .check()?;
        assert!(addr.stdout.contains(&format!("{}/24", n.ip())), "{addr}");
        let lo = n.exec("ip", &["-o", "link", "show", "lo"])?.check()?;
        assert!(lo.stdout.contains("UP"), "{lo}");
        let route = n.exec("ip", &["route", "show", "default"])?.check()?;
        assert!(
            route.stdout.contains(&format!("via {}", c.bridge_ip())),
            "{route}"
        );
        // The host end is enslaved to the bridge.
        let veth = ip(&["-o", "link", "show", n.host_veth()])?;
        assert!(
            veth.stdout.contains(&format!("master {}", c.bridge())),
            "{veth}"
        );

        assert!(
            c.host_can_ping(n.ip())?,
            "root namespace cannot reach {}",
            n.name()
        );
        assert!(n.can_ping(c.bridge_ip())?);
    }
    assert!(c[0].can_ping(c[1].ip())?, "n0 cannot reach n1");
    assert!(c[1].can_ping(c[0].ip())?, "n1 cannot reach n0");
    Ok(())
}

#[test]
fn readiness_status_and_http_client() -> Result<()> {
    let c = builder(1).env("STANDIN_READY_DELAY", "0.7").build()?;
    let n = &c[0];
    assert!(n.status_json().is_err(), "no node yet, no socket");
    n.start()?;
    let t0 = Instant::now();
    let status = n.wait_ready(READY)?;
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "ready too early"
    );
    assert_eq!(status["ready"], true);
    assert_eq!(status["pid"], n.pid().unwrap());
    // /status is chunked by the stand-in, /metrics has Content-Length.
    let raw = n.get("/status")?;
    assert_eq!(raw.header("transfer-encoding"), Some("chunked"));
    assert_eq!(n.status_json()?["starts"], 1);
    let metrics = n.get("/metrics")?;
    assert_eq!(
        (metrics.status, metrics.text().as_str()),
        (200, "standin_up 1\n")
    );
    assert_eq!(n.get("/nope")?.status, 404);
    let generic = hyphae_harness::uds_get(n.socket_path(), "/metrics")?;
    assert!(generic.is_success());
    Ok(())
}

#[test]
fn cli_setup_args_env_and_config() -> Result<()> {
    let c = builder(2)
        .arg("--verbose")
        .node_arg(1, "--role=relay")
        .env("STANDIN_TAG", "all")
        .node_env(1, "STANDIN_TAG", "one")
        .config(0, "listen = \"0.0.0.0:7440\"\n")
        .build()?;
    // Setup verbs run before start, in the node's namespace and state dir.
    let init = c[0].setup(&["init"])?;
    assert_eq!(init.stdout_trimmed(), "mesh-0123");
    assert!(c[0].state_dir().join("mesh-id").exists());

    let echo = c[1].cli(&["echo", "hello", "world"])?;
    assert!(echo.success(), "{echo}");
    assert!(echo.stdout.contains("hello world\ntag=one\n"), "{echo}");
    assert!(echo
        .stdout
        .contains(&format!("cwd={}", c[1].state_dir().display())));

    let fail = c[0].cli(&["fail"])?;
    assert_eq!(fail.code(), Some(3));
    assert!(fail.stderr.contains("failing as asked"));
    let err = format!("{:#}", c[0].cli_ok(&["fail"]).unwrap_err());
    assert!(
        err.contains("fail") && err.contains("failing as asked"),
        "{err}"
    );

    let t0 = Instant::now();
    let hung = c[0].cli_timeout(&["sleep", "30"], Duration::from_millis(500));
    let err = format!("{:#}", hung.unwrap_err());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "hung CLI not killed in time"
    );
    assert!(
        err.contains("timed out") && err.contains("sleeping"),
        "{err}"
    );

    c.start_all()?;
    let s0 = c[0].status_json()?;
    let s1 = c[1].status_json()?;
    assert_eq!(s0["args"], serde_json::json!(["--verbose"]));
    assert_eq!(s1["args"], serde_json::json!(["--verbose", "--role=relay"]));
    assert_eq!(
        (s0["tag"].as_str(), s1["tag"].as_str()),
        (Some("all"), Some("one"))
    );
    assert_eq!(s0["config"], "listen = \"0.0.0.0:7440\"\n");
    assert_eq!(s1["config"], "");
    assert!(
        c[0].setup(&["init"]).is_err(),
        "setup must refuse a running node"
    );
    // The node log has the harness header and the node's own output.
    let log = c[1].log()?;
    assert!(log.contains("=== hyphae-harness: start #1 of n1"), "{log}");
    assert!(log.contains("standin: listening on"), "{log}");
    Ok(())
}

#[test]
fn link_down_isolates_and_link_up_restores() -> Result<()> {
    let c = builder(2).start()?;
    let (a, b) = (&c[0], &c[1]);
    assert!(a.can_ping(b.ip())?);
    b.link_down()?;
    assert!(
        !a.can_ping(b.ip())?,
        "n1 reachable from n0 with its link down"
    );
    assert!(
        !c.host_can_ping(b.ip())?,
        "n1 reachable from root with its link down"
    );
    assert!(c.host_can_ping(a.ip())?, "n0 must be unaffected");
    assert!(b.is_running(), "link faults leave the process alone");
    b.link_up()?;
    wait_until(Duration::from_secs(5), "n1 reachable again", || {
        a.can_ping(b.ip())
    })?;
    assert!(c.host_can_ping(b.ip())?);
    Ok(())
}

#[test]
fn bandwidth_limit_applies_both_ways_and_clears() -> Result<()> {
    let c = builder(2).start()?;
    let n = &c[1];
    n.limit_bandwidth("1mbit")?;
    let q = n.qdiscs()?;
    assert_eq!(q.matches("qdisc tbf").count(), 2, "{q}");
    assert!(q.contains("rate 1Mbit"), "{q}");
    // Replacing a limit works, with explicit burst/latency.
    n.limit_bandwidth(Tbf::rate("512kbit").burst("64kbit").latency("100ms"))?;
    let q = n.qdiscs()?;
    assert_eq!(q.matches("rate 512Kbit").count(), 2, "{q}");
    assert!(c[0].can_ping(n.ip())?, "limited is not cut off");
    // Effect: 48 KB of ICMP payload through a 256 kbit/s (32 KB/s) bucket
    // of 2 KB, with a queue deep enough that nothing is dropped, takes over
    // a second; unlimited it takes milliseconds.
    n.limit_bandwidth(Tbf::rate("256kbit").burst("16kbit").latency("3s"))?;
    let t0 = Instant::now();
    let flood = c[0].exec(
        "ping",
        &["-c6", "-i0.01", "-s8000", "-W5", "-q", &n.ip().to_string()],
    )?;
    let took = t0.elapsed();
    assert!(flood.stdout.contains("6 received"), "{flood}");
    assert!(
        took >= Duration::from_millis(1000),
        "{took:?}: not limited\n{flood}"
    );
    n.clear_bandwidth()?;
    let q = n.qdiscs()?;
    assert!(!q.contains("tbf"), "{q}");
    n.clear_bandwidth()?; // idempotent
    Ok(())
}

#[test]
fn kill_restart_stop_cont_terminate() -> Result<()> {
    let c = builder(2).start()?;
    let n = &c[1];
    let pid = n.pid().unwrap();

    let status = n.kill()?;
    assert_eq!(status.signal(), Some(9));
    assert!(!n.is_running());
    assert!(n.status_json().is_err(), "killed node must not answer");
    assert!(n.kill().is_err(), "killing a dead node is a test bug");
    assert!(c[0].status_json().is_ok(), "other nodes unaffected");

    n.restart()?;
    let st = n.wait_ready(READY)?;
    assert_eq!(st["starts"], 2, "restart reuses the state dir");
    assert_ne!(n.pid().unwrap(), pid);
    assert_eq!(n.starts(), 2);
    assert_eq!(n.log()?.matches("=== hyphae-harness: start #").count(), 2);

    n.stop()?;
    assert_eq!(n.proc_state(), Some('T'));
    assert!(n
        .get_timeout("/status", Duration::from_millis(300))
        .is_err());
    n.cont()?;
    assert_eq!(n.wait_ready(READY)?["ready"], true);

    // Restart of a running node, then graceful stop.
    n.restart()?;
    n.wait_ready(READY)?;
    let st = n.terminate(Duration::from_secs(5))?;
    assert_eq!(st.signal(), Some(15));
    assert_eq!(n.last_exit().and_then(|s| s.signal()), Some(15));
    Ok(())
}

#[test]
fn wait_ready_fails_fast_with_log_tail_when_node_exits() -> Result<()> {
    let c = builder(1).node_env(0, "STANDIN_EXIT", "1").build()?;
    c[0].start()?;
    let t0 = Instant::now();
    let err = format!(
        "{:#}",
        c[0].wait_ready(Duration::from_secs(30)).unwrap_err()
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "did not fail fast");
    assert!(err.contains("exited with"), "{err}");
    assert!(
        err.contains("standin: exiting as asked"),
        "no log tail in: {err}"
    );
    assert_eq!(c[0].last_exit().and_then(|s| s.code()), Some(7));
    Ok(())
}

#[test]
fn wait_ready_times_out_with_last_status() -> Result<()> {
    let c = builder(1).env("STANDIN_READY_DELAY", "60").build()?;
    c[0].start()?;
    let err = format!(
        "{:#}",
        c[0].wait_ready(Duration::from_millis(800)).unwrap_err()
    );
    assert!(err.contains("not ready after"), "{err}");
    assert!(err.contains("\"ready\":false"), "{err}");
    Ok(())
}

#[test]
fn drop_removes_network_and_state() -> Result<()> {
    let c = builder(2).start()?;
    let fp = Fingerprint::of(&c);
    let state = c.state_root().to_path_buf();
    let pids: Vec<u32> = c.nodes().iter().filter_map(|n| n.pid()).collect();
    assert_eq!(pids.len(), 2);
    drop(c);
    assert_eq!(fp.remaining(), Vec::<String>::new());
    assert!(
        !state.exists(),
        "state dir of a passing test must be removed"
    );
    for pid in pids {
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists(),
            "node pid {pid} survived"
        );
    }
    // And by name, as `ip` sees it (names may only reappear if reused).
    let netns = ip(&["netns", "list"])?.stdout;
    let links = ip(&["-o", "link", "show"])?.stdout;
    let live = ip_names(&netns, &links);
    for name in fp.names() {
        if live.contains(name) {
            eprintln!("note: {name} exists again (slot reused by a concurrent test)");
        }
    }
    Ok(())
}

#[test]
fn panicking_test_still_tears_down_and_keeps_state() {
    let seen: Mutex<Option<(Fingerprint, PathBuf)>> = Mutex::new(None);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let c = builder(2).start().unwrap();
        *seen.lock().unwrap() = Some((Fingerprint::of(&c), c.state_root().to_path_buf()));
        panic!("intentional panic inside a cluster test");
    }));
    assert!(result.is_err());
    let (fp, state) = seen.into_inner().unwrap().expect("cluster was built");
    assert_eq!(fp.remaining(), Vec::<String>::new());
    // Kept for post-mortem, with the logs of both nodes.
    assert!(state.join("n0/node.log").exists() && state.join("n1/node.log").exists());
    fs::remove_dir_all(&state).unwrap();
}

#[test]
fn parallel_clusters_get_distinct_slots() -> Result<()> {
    let handles: Vec<_> = (0..3)
        .map(|i| thread::spawn(move || builder(1).name(format!("par{i}")).start()))
        .collect();
    let clusters: Vec<Cluster> = handles
        .into_iter()
        .map(|h| h.join().expect("builder thread panicked"))
        .collect::<Result<_>>()?;
    let slots: HashSet<u8> = clusters.iter().map(Cluster::slot).collect();
    assert_eq!(slots.len(), 3);
    for c in &clusters {
        assert!(c.host_can_ping(c[0].ip())?);
        assert_eq!(c[0].status_json()?["ready"], true);
    }
    Ok(())
}

fn ip_names(netns: &str, links: &str) -> HashSet<String> {
    let mut names: HashSet<String> = netns
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    for l in links.lines() {
        if let Some(n) = l.split(": ").nth(1) {
            names.insert(n.split('@').next().unwrap_or(n).to_string());
        }
    }
    names
}
