//! Admission on the harness: token misuse is refused, a tokenless node waits as pending until
//! admitted, and a revoked node is refused by every member.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyphae_harness::{wait_for, wait_until, Cluster};
use support::{get, join_config, node_id, nodes, put, token, wait_directory};

#[test]
fn expired_reused_and_forged_tokens_are_refused() -> Result<()> {
    let c = Cluster::builder()
        .nodes(4)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    support::found_mesh(&c)?;

    // One use: n1 gets in, n2 is refused with the same token.
    let once = token(&c[0], 1, "1h")?;
    c[1].write_config(&join_config(Some(&once), &[&c[0]]))?;
    c[1].start()?;
    wait_directory(&c[0], 2, 0, Duration::from_secs(30))?;
    c[2].write_config(&join_config(Some(&once), &[&c[0]]))?;
    c[2].start()?;
    let status = c[2].wait_exit(Duration::from_secs(30))?;
    assert!(!status.success());
    let log = c[2].log()?;
    assert!(log.contains("used up"), "{log}");

    // Expired.
    let short = token(&c[0], 5, "1s")?;
    std::thread::sleep(Duration::from_millis(2100));
    c[2].write_config(&join_config(Some(&short), &[&c[0]]))?;
    c[2].start()?;
    assert!(!c[2].wait_exit(Duration::from_secs(30))?.success());
    assert!(
        c[2].log()?.contains("join token expired"),
        "{}",
        c[2].log_tail(20)
    );

    // Forged: a valid token with another secret.
    let good = token(&c[0], 5, "1h")?;
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[3] = "a".repeat(parts[3].len());
    let forged = parts.join(".");
    c[3].write_config(&join_config(Some(&forged), &[&c[0]]))?;
    c[3].start()?;
    assert!(!c[3].wait_exit(Duration::from_secs(30))?.success());
    assert!(
        c[3].log()?.contains("invalid join token"),
        "{}",
        c[3].log_tail(20)
    );

    // Garbage that is not a token at all never leaves the node.
    c[3].write_config(&join_config(Some("hyphae1.garbage"), &[&c[0]]))?;
    c[3].start()?;
    assert!(!c[3].wait_exit(Duration::from_secs(30))?.success());
    assert!(
        c[3].log()?.contains("malformed join token"),
        "{}",
        c[3].log_tail(20)
    );

    // Garbage on the Raft and admission ports, and a client without a certificate on the
    // Raft port: refused, and nothing changes.
    for port in [7441, 7445] {
        let target = format!("/dev/udp/{}/{port}", c[0].ip());
        c[3].exec(
            "bash",
            &["-c", &format!("head -c 1200 /dev/urandom > {target}")],
        )?;
    }
    let raft = format!("{}:7441", c[0].ip());
    let out = c[3].cli(&["ping", "--anonymous", &raft])?;
    assert!(
        !out.success(),
        "anonymous client accepted on the Raft port: {out}"
    );
    let member = c[1].cli(&["ping", "--timeout", "2s", &raft])?;
    assert!(
        !member.success(),
        "the node ALPN was accepted on the Raft port: {member}"
    );

    // Nothing changed: two nodes, the mesh still commits, and the refusals were logged.
    let list = nodes(&c[0])?.unwrap_or_default();
    assert_eq!(list.len(), 2, "{list:#?}");
    assert!(support::put(&c[1], "still", "ok", Duration::from_secs(20))?.is_ok());
    let log = c[0].log()?;
    assert!(log.contains("admission refused"), "{log}");
    assert!(log.contains("refused connection"), "{log}");
    Ok(())
}

#[test]
fn a_pending_node_is_admitted_then_revoked() -> Result<()> {
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    support::found_mesh(&c)?;
    let t = token(&c[0], 1, "1h")?;
    c[1].write_config(&join_config(Some(&t), &[&c[0]]))?;
    c[1].start()?;
    // n2 asks without a token (through n1, a bee: the request is forwarded to the queen).
    wait_directory(&c[0], 2, 0, Duration::from_secs(30))?;
    c[2].write_config(&join_config(None, &[&c[1]]))?;
    c[2].start()?;
    c[2].wait_ready(c.ready_timeout())?;
    let id2 = node_id(&c[2])?;
    wait_until(Duration::from_secs(30), "n2 pending", || {
        let list = nodes(&c[0])?.unwrap_or_default();
        Ok(list
            .iter()
            .any(|n| n["id"] == id2.as_str() && n["status"] == "pending"))
    })?;
    // Pending nodes are not members: no certificate, not in Raft.
    assert!(!c[2].state_dir().join("identity/node.crt").exists());
    c[1].cli_ok(&["admit", &id2])?;
    let list = wait_directory(&c[0], 3, 2, Duration::from_secs(60))?;
    assert!(list.iter().any(|n| n["id"] == id2.as_str()));
    assert!(c[2].state_dir().join("identity/node.crt").exists());

    // n2 can write through the queen.
    assert!(put(&c[2], "before", "1", Duration::from_secs(20))?.is_ok());

    // Revoke n2 from n1: within 5 s every member refuses it.
    let t0 = Instant::now();
    c[1].cli_ok(&["revoke", &id2, "--reason", "test"])?;
    wait_for(Duration::from_secs(5), "n2's writes refused", || match put(
        &c[2],
        "after",
        "1",
        Duration::from_secs(3),
    )? {
        Ok(_) => Ok(None),
        Err(e) => Ok(Some(e)),
    })?;
    println!("revocation effective after {} ms", t0.elapsed().as_millis());
    for i in 0..2 {
        let list = nodes(&c[i])?.unwrap_or_default();
        let rec = list.iter().find(|n| n["id"] == id2.as_str()).cloned();
        assert_eq!(
            rec.map(|r| r["status"].clone()),
            Some("revoked".into()),
            "n{i}"
        );
    }
    // A revoked node cannot come back with a token either.
    let t2 = token(&c[0], 1, "1h")?;
    c[2].terminate(Duration::from_secs(5))?;
    std::fs::remove_dir_all(c[2].state_dir().join("coordinator"))?;
    for f in ["node.crt", "ca.crt", "mesh.toml", "ca.key"] {
        let _ = std::fs::remove_file(c[2].state_dir().join("identity").join(f));
    }
    c[2].write_config(&join_config(Some(&t2), &[&c[0]]))?;
    c[2].start()?;
    assert!(!c[2].wait_exit(Duration::from_secs(30))?.success());
    assert!(c[2].log()?.contains("is revoked"), "{}", c[2].log_tail(20));
    Ok(())
}

/// `node`'s IPv6 link-local address on its LAN interface (the kernel gives every veth one).
fn link_local_v6(node: &hyphae_harness::Node) -> Result<String> {
    let out = node.exec("ip", &["-6", "-o", "addr", "show", "scope", "link"])?;
    out.stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("fe80:").map(|rest| format!("fe80:{rest}")))
        .and_then(|a| a.split('/').next().map(str::to_string))
        .context(format!("no link-local address: {}", out.stdout))
}

/// The index of `node`'s LAN interface (the zone of a link-local address it dials).
fn lan_ifindex(node: &hyphae_harness::Node) -> Result<String> {
    let out = node.exec("ip", &["-o", "link", "show"])?;
    out.stdout
        .lines()
        .filter(|l| !l.contains(" lo:"))
        .find_map(|l| l.split(':').next().map(|i| i.trim().to_string()))
        .context(format!("no LAN interface: {}", out.stdout))
}

/// A joiner that reaches the queen first over IPv6 link-local (an address that means nothing
/// without the interface it was seen on, which the directory does not keep) is told to ask
/// again; it gets in over its routable address, which is what the directory records, and the
/// mesh replicates to it.
#[test]
fn a_join_over_ipv6_link_local_is_recorded_at_a_dialable_address() -> Result<()> {
    let c = Cluster::builder()
        .nodes(2)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    support::found_mesh(&c)?;
    let t = token(&c[0], 1, "1h")?;
    let link_local = format!("[{}%{}]:7445", link_local_v6(&c[0])?, lan_ifindex(&c[1])?);
    c[1].write_config(&format!(
        "[mesh]\npeers = [\"{link_local}\", \"{}\"]\njoin_token = \"{t}\"\n",
        c[0].ip()
    ))?;
    c[1].start()?;
    let list = wait_directory(&c[0], 2, 0, Duration::from_secs(60))?;
    let id1 = node_id(&c[1])?;
    let rec = list
        .iter()
        .find(|n| n["id"] == id1.as_str())
        .context("n1 in the directory")?;
    assert_eq!(
        rec["coordinator_addr"],
        format!("{}:7441", c[1].ip()).as_str(),
        "{rec:#}"
    );
    assert!(
        c[1].log()?.contains("cannot be dialled by other members"),
        "n1 never tried the link-local path first: {}",
        c[1].log_tail(30)
    );
    // The queen replicates to it: a write at the queen is read on n1.
    assert!(put(&c[0], "after-join", "1", Duration::from_secs(20))?.is_ok());
    wait_until(Duration::from_secs(20), "n1 has the write", || {
        Ok(get(&c[1], "after-join")?.as_deref() == Some("1"))
    })?;
    Ok(())
}
