//! Discovery on the harness: nodes that know only a join token (no addresses) find their mesh
//! through the beacon (or mDNS, or pinned candidates) and join it.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyphae_harness::{exec_in_netns, init_mesh, uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::{nodes, token};

/// The beacon's `/status` on `node`.
fn beacon_status(node: &Node) -> Result<Value> {
    let r = uds_get(node.state_dir().join("run/beacon.sock"), "/status")?;
    serde_json::from_slice(&r.body).context("beacon /status")
}

/// Whether `node` lists exactly `total` nodes, all up.
fn sees_all_up(node: &Node, total: usize) -> Result<bool> {
    let Some(list) = nodes(node)? else {
        return Ok(false);
    };
    Ok(list.len() == total && list.iter().all(|n| n["status"] == "up"))
}

/// Starts n0 as the founder with `extra` config and returns a token for the others.
fn found_mesh(c: &Cluster, extra: &str, uses: u32) -> Result<String> {
    init_mesh(&c[0])?;
    c[0].write_config(extra)?;
    c[0].start()?;
    c[0].wait_ready(c.ready_timeout())?;
    wait_until(Duration::from_secs(60), "n0 sees itself up", || {
        sees_all_up(&c[0], 1)
    })?;
    token(&c[0], uses, "1h")
}

/// Starts every node but n0 with only `[mesh] join_token` (plus `extra`), and waits until
/// every node lists all of them up; returns the time from the last start to that moment.
fn join_all_without_addresses(c: &Cluster, token: &str, extra: &str) -> Result<Duration> {
    for n in c.nodes().iter().skip(1) {
        n.write_config(&format!("[mesh]\njoin_token = \"{token}\"\n{extra}"))?;
    }
    for n in c.nodes().iter().skip(1) {
        n.start()?;
    }
    let last_start = Instant::now();
    let total = c.len();
    wait_until(
        Duration::from_secs(240),
        "every node sees every node up",
        || {
            for n in c.nodes() {
                if !sees_all_up(n, total)? {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    Ok(last_start.elapsed())
}

#[test]
fn eight_nodes_join_with_one_token_and_no_addresses() -> Result<()> {
    let c = Cluster::builder()
        .nodes(8)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .ready_timeout(Duration::from_secs(120))
        .build()?;
    let t = found_mesh(&c, "", 7)?;
    let took = join_all_without_addresses(&c, &t, "[share]\ncpu = 50\n")?;
    println!(
        "discovery: 8 nodes converged {} ms after the last start (every directory lists 8 up)",
        took.as_millis()
    );
    for n in c.nodes().iter().skip(1) {
        let s = beacon_status(n)?;
        assert_eq!(s["found_by"], "beacon", "n{}: {s}", n.index());
        assert_eq!(s["standing"], "member", "n{}: {s}", n.index());
    }
    // `hyphae status` tells which step found the mesh.
    let out = c[3].cli_ok(&["status"])?;
    assert!(out.stdout.contains("found by beacon"), "{out}");
    let s = beacon_status(&c[0])?;
    assert!(s["members"].as_array().map(Vec::len) >= Some(7), "{s}");

    // Every node's hardware profile reaches the directory, with its [share].
    let mut last = Vec::new();
    wait_until(
        Duration::from_secs(120),
        "every hardware profile in the directory",
        || {
            let list = nodes(&c[5])?.unwrap_or_default();
            let complete = list.len() == 8
                && list.iter().all(|n| {
                    n["hardware"]["cpu"]["threads"].as_u64() > Some(0)
                        && n["hardware"]["ram"]["total_bytes"].as_u64() > Some(0)
                });
            last = list;
            Ok(complete)
        },
    )
    .with_context(|| format!("{last:#?}"))?;
    let shares: Vec<u64> = last
        .iter()
        .filter_map(|n| n["hardware"]["share"]["cpu"].as_u64())
        .collect();
    assert_eq!(shares.iter().filter(|&&s| s == 50).count(), 7, "{shares:?}");
    assert_eq!(
        shares.iter().filter(|&&s| s == 100).count(),
        1,
        "{shares:?}"
    );
    Ok(())
}

/// A node's coordinator `/status` field `mesh_id`, when it has one.
fn mesh_of(node: &Node) -> Result<Option<String>> {
    Ok(support::coord_status(node)?.and_then(|s| s["mesh_id"].as_str().map(str::to_string)))
}

#[test]
fn with_beacon_and_mdns_off_the_candidates_find_the_mesh() -> Result<()> {
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    let off = "[discovery]\nbeacon = false\nmdns = false\n";
    let t = found_mesh(&c, off, 2)?;
    let pinned = format!(
        "[discovery]\nbeacon = false\nmdns = false\ncandidates = [\"{}\"]\n",
        c[0].ip()
    );
    let took = join_all_without_addresses(&c, &t, &pinned)?;
    println!(
        "discovery: candidates, 3 nodes converged in {} ms",
        took.as_millis()
    );
    for n in c.nodes().iter().skip(1) {
        let s = beacon_status(n)?;
        assert_eq!(s["found_by"], "candidates", "n{}: {s}", n.index());
        assert_eq!(s["packets"]["sent"], 0, "the beacon is off: {s}");
    }
    Ok(())
}

/// A listener in a spare namespace captures a member's real announce, waits until newer ones
/// went out, then sends the old copy (a replay), a copy with one byte changed (a forgery) and
/// garbage to `target`'s live port.
const ATTACK: &str = r#"
import socket, sys, time
src, target = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 41234))
s.settimeout(30)
old = None
while old is None:
    data, addr = s.recvfrom(2048)
    if addr[0] == src and data[:4] == b"HYPB":
        old = data
deadline = time.time() + 2.5
while time.time() < deadline:
    s.settimeout(max(0.01, deadline - time.time()))
    try:
        s.recvfrom(2048)
    except socket.timeout:
        pass
forged = bytearray(old)
forged[-1] ^= 0x01
for packet in (old, bytes(forged), b"garbage", b"HYPB\x01\x01" + b"\xff" * 60):
    s.sendto(packet, (target, 41234))
print("sent")
"#;

#[test]
fn two_meshes_on_one_bridge_stay_apart_and_attacks_are_counted() -> Result<()> {
    // n0 and n1 found two meshes; n2 joins n0's, n3 joins n1's, each with a token only.
    // n4 never starts: its namespace hosts the attacker.
    let c = Cluster::builder()
        .nodes(5)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    let mesh_a = init_mesh(&c[0])?;
    let mesh_b = init_mesh(&c[1])?;
    assert_ne!(mesh_a, mesh_b);
    for i in [0, 1] {
        c[i].start()?;
        c[i].wait_ready(c.ready_timeout())?;
        wait_until(Duration::from_secs(60), "founder up", || {
            sees_all_up(&c[i], 1)
        })?;
    }
    let ta = token(&c[0], 1, "1h")?;
    let tb = token(&c[1], 1, "1h")?;
    c[2].write_config(&format!("[mesh]\njoin_token = \"{ta}\"\n"))?;
    c[3].write_config(&format!("[mesh]\njoin_token = \"{tb}\"\n"))?;
    c[2].start()?;
    c[3].start()?;
    wait_until(
        Duration::from_secs(120),
        "both meshes have two members",
        || {
            Ok(sees_all_up(&c[0], 2)?
                && sees_all_up(&c[1], 2)?
                && sees_all_up(&c[2], 2)?
                && sees_all_up(&c[3], 2)?)
        },
    )?;
    assert_eq!(mesh_of(&c[2])?.as_deref(), Some(mesh_a.as_str()));
    assert_eq!(mesh_of(&c[3])?.as_deref(), Some(mesh_b.as_str()));
    // Each beacon hears only its own mesh's members, and counts the other mesh's packets.
    let ids = |i: usize| -> Result<String> { support::node_id(&c[i]) };
    wait_until(
        Duration::from_secs(30),
        "other-mesh packets counted",
        || {
            let s = beacon_status(&c[2])?;
            Ok(s["packets"]["dropped"]["other_mesh"].as_u64() > Some(0))
        },
    )?;
    // (The beacons learn the joiners' membership a tick after the directory does: wait.)
    for (me, own, other) in [
        (0, 2, [1, 3]),
        (2, 0, [1, 3]),
        (1, 3, [0, 2]),
        (3, 1, [0, 2]),
    ] {
        let (own_id, other_ids) = (ids(own)?, [ids(other[0])?, ids(other[1])?]);
        let mut last = Value::Null;
        wait_until(
            Duration::from_secs(30),
            "each hears only its own mesh",
            || {
                let s = beacon_status(&c[me])?;
                let heard: Vec<String> = s["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["node"].as_str().map(str::to_string))
                    .collect();
                assert!(
                    !heard.iter().any(|h| other_ids.contains(h)),
                    "n{me} hears the other mesh: {s}"
                );
                last = s;
                Ok(heard == vec![own_id.clone()])
            },
        )
        .with_context(|| format!("n{me}: {last}"))?;
    }

    // The attack on n2's live port: replayed, forged and malformed packets are counted and
    // change nothing.
    let before = beacon_status(&c[2])?;
    let out = exec_in_netns(
        c[4].netns(),
        "python3",
        &["-c", ATTACK, &c[0].ip().to_string(), &c[2].ip().to_string()],
    )?;
    assert!(out.success() && out.stdout.contains("sent"), "{out}");
    let mut last = Value::Null;
    let after = wait_for(Duration::from_secs(30), "the attack counted", || {
        let s = beacon_status(&c[2])?;
        last = s.clone();
        let d = &s["packets"]["dropped"];
        let grew = |k: &str| d[k].as_u64() > before["packets"]["dropped"][k].as_u64();
        Ok((grew("replayed") && grew("forged") && grew("malformed")).then_some(s))
    })
    .with_context(|| format!("before: {before}\nafter: {last}\nattacker: {out}"))?;
    assert_eq!(
        after["members"].as_array().map(Vec::len),
        Some(1),
        "{after}"
    );
    assert!(sees_all_up(&c[0], 2)? && sees_all_up(&c[2], 2)?);
    let metrics = uds_get(c[2].state_dir().join("run/beacon.sock"), "/metrics")?;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("hyphae_beacon_packets_dropped_total{reason=\"forged\"}"),
        "{text}"
    );
    Ok(())
}

/// Whether `node` founded a mesh (holds a CA and never joined one).
fn founded(node: &Node) -> bool {
    node.state_dir().join("identity/ca.key").exists()
        && !node.state_dir().join("coordinator/joined").exists()
}

/// How many `start #` lines the harness wrote into `node`'s log: 1 = never restarted.
fn starts(node: &Node) -> Result<usize> {
    Ok(node.log()?.matches("=== hyphae-harness: start #").count())
}

#[test]
fn three_fresh_auto_init_nodes_form_exactly_one_mesh() -> Result<()> {
    let c = Cluster::builder()
        .nodes(4)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .config_all(
            "[discovery]\nauto_init = true\ninit_after = \"3s\"\n\
             auto_init_secret = \"test-lan-secret-0123\"\n",
        )
        .build()?;
    let first = &c.nodes()[..3];
    // Three within one second of each other; n3 comes later.
    for n in first {
        n.start()?;
    }
    for n in first {
        n.wait_ready(c.ready_timeout())?;
    }
    // Exactly one founds a mesh, and its genesis window admits the other two: nobody types
    // `admit`, and every node lists three members up.
    wait_until(Duration::from_secs(120), "one mesh of three", || {
        let founders = (0..3).filter(|&i| founded(&c[i])).count();
        if founders != 1 {
            return Ok(false);
        }
        let meshes: Vec<Option<String>> = first.iter().map(mesh_of).collect::<Result<_>>()?;
        if meshes[0].is_none() || meshes.iter().any(|m| *m != meshes[0]) {
            return Ok(false);
        }
        for n in first {
            if !sees_all_up(n, 3)? {
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    let founder = (0..3).find(|&i| founded(&c[i])).expect("one founder");
    assert_eq!(
        (0..3).filter(|&i| founded(&c[i])).count(),
        1,
        "exactly one node ran init"
    );
    let admitted = c[founder]
        .log()?
        .matches("admitted in the auto_init genesis window")
        .count();
    assert_eq!(admitted, 2, "{}", c[founder].log_tail(40));

    // A fourth auto_init node was not heard during the election: it hears the mesh, asks to
    // be admitted, and waits as pending although the window is still open.
    c[3].start()?;
    c[3].wait_ready(c.ready_timeout())?;
    let id3 = support::node_id(&c[3])?;
    wait_until(Duration::from_secs(90), "n3 answered pending", || {
        Ok(c[3].log()?.contains("waiting to be admitted"))
    })?;
    let list = nodes(&c[founder])?.context("the founder's directory")?;
    let n3 = list
        .iter()
        .find(|n| n["id"] == id3.as_str())
        .context("n3 listed")?;
    assert_eq!(n3["status"], "pending", "{list:?}");
    assert_eq!(c[3].status_json()?["member"], false);
    assert!(!founded(&c[3]), "n3 must not found a second mesh");
    Ok(())
}

#[test]
fn a_tokenless_node_waits_as_pending_and_joins_when_admitted() -> Result<()> {
    let c = Cluster::builder()
        .nodes(2)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    found_mesh(&c, "", 1)?;
    let mesh = mesh_of(&c[0])?.context("n0's mesh")?;
    // n1: no token, no peers, no auto_init. Its beacon finds the mesh and its coordinator
    // asks to be admitted.
    c[1].start()?;
    c[1].wait_ready(c.ready_timeout())?;
    let id = support::node_id(&c[1])?;
    wait_until(Duration::from_secs(60), "n1 pending at the queen", || {
        let Some(list) = nodes(&c[0])? else {
            return Ok(false);
        };
        Ok(list
            .iter()
            .any(|n| n["id"] == id.as_str() && n["status"] == "pending"))
    })?;
    assert_eq!(c[1].status_json()?["member"], false);
    c[0].cli_ok(&["admit", &id])?;
    wait_until(
        Duration::from_secs(120),
        "both nodes up in one mesh",
        || {
            for n in c.nodes() {
                if !sees_all_up(n, 2)? || mesh_of(n)?.as_deref() != Some(mesh.as_str()) {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    assert_eq!(starts(&c[1])?, 1, "n1 joined without a restart");
    Ok(())
}

#[test]
fn the_ipv6_multicast_beacon_alone_finds_the_mesh() -> Result<()> {
    let c = Cluster::builder()
        .nodes(2)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    // No IPv4 broadcast, no mDNS, no candidates: only IPv6 link-local multicast to ff02::1.
    let v6_only = "[discovery]\nbeacon_ipv4 = false\nmdns = false\n";
    let t = found_mesh(&c, v6_only, 1)?;
    c[1].write_config(&format!("[mesh]\njoin_token = \"{t}\"\n{v6_only}"))?;
    c[1].start()?;
    wait_until(Duration::from_secs(120), "both nodes up", || {
        for n in c.nodes() {
            if !sees_all_up(n, 2)? {
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    let s = beacon_status(&c[1])?;
    assert_eq!(s["found_by"], "beacon", "{s}");
    for n in c.nodes() {
        // The nodes hear each other (a new member announces at its next interval), and the
        // only packets on the wire are IPv6: every member was heard from an fe80:: source.
        let s = wait_for(Duration::from_secs(30), "the other member heard", || {
            let s = beacon_status(n)?;
            Ok((s["members"].as_array().is_some_and(|m| !m.is_empty())).then_some(s))
        })?;
        assert_eq!(
            s["steps"]["mdns"],
            false,
            "n{}: mDNS must be off: {s}",
            n.index()
        );
        let members = s["members"].as_array().context("members")?;
        assert!(
            members
                .iter()
                .all(|m| m["source"].as_str().unwrap_or("").starts_with("[fe80:")),
            "n{}: {s}",
            n.index()
        );
    }
    Ok(())
}

#[test]
fn with_the_beacon_off_mdns_finds_the_mesh() -> Result<()> {
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    // Distinct names: every namespace shares the test host's name, and mDNS host records
    // must not collide.
    let off = "[discovery]\nbeacon = false\n";
    let t = found_mesh(&c, &format!("[node]\nname = \"mesh-n0\"\n{off}"), 2)?;
    for n in c.nodes().iter().skip(1) {
        n.write_config(&format!(
            "[node]\nname = \"mesh-n{}\"\n[mesh]\njoin_token = \"{t}\"\n{off}",
            n.index()
        ))?;
    }
    for n in c.nodes().iter().skip(1) {
        n.start()?;
    }
    let start = Instant::now();
    wait_until(
        Duration::from_secs(120),
        "every node sees every node up",
        || {
            for n in c.nodes() {
                if !sees_all_up(n, 3)? {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    println!(
        "discovery: mDNS, 3 nodes converged in {} ms",
        start.elapsed().as_millis()
    );
    for n in c.nodes().iter().skip(1) {
        let s = beacon_status(n)?;
        assert_eq!(s["found_by"], "mdns", "n{}: {s}", n.index());
        assert_eq!(s["packets"]["sent"], 0, "the beacon is off: {s}");
    }
    Ok(())
}

/// Browses `_hyphae._udp.local.` with python3-zeroconf (Debian's package: an mDNS
/// implementation independent of mdns-sd) and resolves the instance of node `argv[1]`.
const ZEROCONF_BROWSE: &str = r#"
import sys, time
from zeroconf import Zeroconf, ServiceBrowser, ServiceListener
want = sys.argv[1]
zc = Zeroconf()
found = set()
class Listener(ServiceListener):
    def add_service(self, zc, kind, name): found.add(name)
    def update_service(self, zc, kind, name): found.add(name)
    def remove_service(self, zc, kind, name): pass
browser = ServiceBrowser(zc, "_hyphae._udp.local.", Listener())
deadline = time.time() + 40
while time.time() < deadline:
    for name in list(found):
        info = zc.get_service_info("_hyphae._udp.local.", name, timeout=2000)
        if info and info.properties.get(b"node") == want.encode():
            print("service", name, "server", info.server, "port", info.port,
                  "addresses", ",".join(info.parsed_addresses()),
                  "mesh", (info.properties.get(b"mesh") or b"").decode())
            zc.close()
            sys.exit(0)
    time.sleep(0.2)
print("not found; saw", sorted(found))
zc.close()
sys.exit(1)
"#;

#[test]
fn a_third_party_mdns_client_sees_the_service_and_host_record() -> Result<()> {
    let c = Cluster::builder()
        .nodes(2)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    let mesh = init_mesh(&c[0])?;
    c[0].write_config("[node]\nname = \"mdns-n0\"\n")?;
    c[0].start()?;
    c[0].wait_ready(c.ready_timeout())?;
    let id = support::node_id(&c[0])?;
    // n1 never starts a node: its namespace hosts the independent client.
    let out = exec_in_netns(
        c[1].netns(),
        "/usr/bin/python3",
        &["-c", ZEROCONF_BROWSE, &id],
    )?;
    assert!(out.success(), "{out}");
    let line = out.stdout.trim();
    assert!(line.contains("server mdns-n0.local."), "{line}");
    assert!(line.contains("port 7445"), "{line}");
    assert!(line.contains(&c[0].ip().to_string()), "{line}");
    assert!(line.contains(&format!("mesh {mesh}")), "{line}");
    Ok(())
}

/// Browses `_https._tcp.local.` with python3-zeroconf until both `argv[1:]` instances resolve,
/// then prints each as `name|server|port|addresses`.
const ZEROCONF_HTTPS: &str = r#"
import sys, time
from zeroconf import Zeroconf, ServiceBrowser, ServiceListener
want = sys.argv[1:]
kind = "_https._tcp.local."
zc = Zeroconf()
found = set()
class Listener(ServiceListener):
    def add_service(self, zc, kind, name): found.add(name)
    def update_service(self, zc, kind, name): found.add(name)
    def remove_service(self, zc, kind, name): pass
browser = ServiceBrowser(zc, kind, Listener())
deadline = time.time() + 60
while time.time() < deadline:
    lines = []
    for name in want:
        full = name + "." + kind
        if full not in found:
            break
        info = zc.get_service_info(kind, full, timeout=2000)
        if not info or not info.parsed_addresses():
            break
        lines.append("|".join([full, info.server, str(info.port), ",".join(info.parsed_addresses())]))
    if len(lines) == len(want):
        print("\n".join(lines))
        zc.close()
        sys.exit(0)
    time.sleep(0.5)
print("not found; saw", sorted(found))
zc.close()
sys.exit(1)
"#;

#[test]
fn a_third_party_mdns_client_finds_the_dashboard_at_hyphae_local() -> Result<()> {
    let c = Cluster::builder()
        .nodes(2)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    // A one-node mesh: n0 is its queen, so it answers `hyphae.local` too.
    found_mesh(&c, "[node]\nname = \"dash-n0\"\n", 1)?;
    let out = exec_in_netns(
        c[1].netns(),
        "/usr/bin/python3",
        &["-c", ZEROCONF_HTTPS, "Hyphae on dash-n0", "Hyphae"],
    )?;
    assert!(out.success(), "{out}");
    let ip = c[0].ip().to_string();
    let lines: Vec<&str> = out.stdout.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let own: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(own[1], "dash-n0.local.", "{out}");
    assert_eq!(own[2], "8443", "the gateway's port: {out}");
    assert!(own[3].split(',').any(|a| a == ip), "{out}");
    let mesh_wide: Vec<&str> = lines[1].split('|').collect();
    assert_eq!(mesh_wide[1], "hyphae.local.", "{out}");
    assert_eq!(mesh_wide[2], "8443", "{out}");
    assert!(mesh_wide[3].split(',').any(|a| a == ip), "{out}");
    Ok(())
}

#[test]
fn the_hardware_profile_lists_the_vulkan_device_and_its_heaps() -> Result<()> {
    let c = Cluster::builder()
        .nodes(1)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    found_mesh(&c, "", 1)?;
    // The first sample is taken 10 s after start; the report then goes through Raft.
    let gpus = wait_for(Duration::from_secs(90), "a hardware profile", || {
        let Some(list) = nodes(&c[0])? else {
            return Ok(None);
        };
        Ok(list
            .first()
            .and_then(|n| n["hardware"]["gpus"].as_array().cloned()))
    })?;
    // scripts/deps.sh installs the Vulkan loader and lavapipe (llvmpipe), a CPU device.
    let lavapipe = gpus
        .iter()
        .find(|g| g["name"].as_str().unwrap_or("").contains("llvmpipe"))
        .with_context(|| format!("no lavapipe device in {gpus:?}"))?;
    let heaps = lavapipe["heaps"].as_array().context("heaps")?;
    assert!(!heaps.is_empty(), "{lavapipe}");
    assert!(
        heaps.iter().all(|h| h["size"].as_u64() > Some(0)),
        "{lavapipe}"
    );
    if lavapipe["memory_budget"] == true {
        assert!(lavapipe["vram_used_bytes"].is_u64(), "{lavapipe}");
        assert!(
            heaps.iter().all(|h| h["budget_bytes"].is_u64()),
            "{lavapipe}"
        );
    }
    println!("lavapipe: {lavapipe}");
    Ok(())
}
