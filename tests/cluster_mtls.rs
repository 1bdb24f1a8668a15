//! The first cluster test: members of one mesh reach each other over mutual-TLS QUIC; a node of
//! another mesh and a node without a certificate are refused by every member.

use std::time::Duration;

use anyhow::Result;
use hyphae_harness::{enrol_offline, init_mesh, Cluster};

#[test]
fn members_ping_each_other_and_outsiders_are_refused() -> Result<()> {
    // n0..n2: one mesh. n3: its own mesh (another CA). n4: never joined, no certificate.
    let c = Cluster::builder()
        .nodes(5)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    let mesh = init_mesh(&c[0])?;
    enrol_offline(&c[0], &c[1])?;
    enrol_offline(&c[0], &c[2])?;
    let other_mesh = init_mesh(&c[3])?;
    assert_ne!(mesh, other_mesh);
    c.start_all()?;

    let ids: Vec<String> = c
        .nodes()
        .iter()
        .map(|n| {
            Ok(n.status_json()?["node_id"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        })
        .collect::<Result<_>>()?;
    for (i, n) in c.nodes().iter().enumerate().take(3) {
        let status = n.status_json()?;
        assert_eq!(status["member"], true, "n{i}: {status}");
        assert_eq!(status["mesh_id"], mesh.as_str(), "n{i}: {status}");
    }
    assert_eq!(c[4].status_json()?["member"], false);

    // Every member pings every other member, insisting on the node id it expects.
    for a in 0..3 {
        for b in 0..3 {
            if a == b {
                continue;
            }
            let out = c[a].cli(&["ping", &c[b].quic_addr(), "--node", &ids[b], "--count", "3"])?;
            assert!(out.success(), "n{a} -> n{b}: {out}");
            assert!(
                out.stdout.contains(&format!("pong from {}", ids[b])),
                "{out}"
            );
        }
    }

    // Asking for the wrong node at an address fails.
    let out = c[0].cli(&["ping", &c[1].quic_addr(), "--node", &ids[2]])?;
    assert!(!out.success(), "wrong node accepted: {out}");

    // The other mesh's node is refused by each member, and refuses them in turn.
    for m in 0..3 {
        let out = c[3].cli(&["ping", &c[m].quic_addr()])?;
        assert!(!out.success(), "n3 (other mesh) reached n{m}: {out}");
        assert!(out.stderr.contains("refused"), "{out}");
        let out = c[m].cli(&["ping", &c[3].quic_addr()])?;
        assert!(!out.success(), "n{m} accepted n3's certificate: {out}");
    }

    // The node without a certificate cannot even try as a member, and an anonymous connection
    // is refused by every member.
    let out = c[4].cli(&["ping", &c[0].quic_addr()])?;
    assert!(
        !out.success() && out.stderr.contains("not a member"),
        "{out}"
    );
    for m in 0..3 {
        let out = c[4].cli(&["ping", "--anonymous", &c[m].quic_addr()])?;
        assert!(!out.success(), "n{m} accepted an anonymous client: {out}");
        assert!(out.stderr.contains("refused"), "{out}");
    }

    // Each member counted the outsiders' refused handshakes (n3's and n4's), and still serves.
    std::thread::sleep(Duration::from_millis(300));
    for m in 0..3 {
        let status = c[m].status_json()?;
        let refused = status["rpc"]["handshakes_refused"].as_u64().unwrap_or(0);
        assert!(refused >= 2, "n{m} counted {refused} refusals: {status}");
        let metrics = c[m].get("/metrics")?;
        assert!(
            metrics
                .text()
                .contains("hyphae_rpc_handshakes_refused_total{service=\"node\"}"),
            "{}",
            metrics.text()
        );
        let next = (m + 1) % 3;
        assert!(c[m].cli(&["ping", &c[next].quic_addr()])?.success());
    }
    Ok(())
}

#[test]
fn a_member_survives_a_peer_crash_and_talks_again_after_restart() -> Result<()> {
    let c = Cluster::builder()
        .nodes(2)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    init_mesh(&c[0])?;
    enrol_offline(&c[0], &c[1])?;
    c.start_all()?;
    assert!(c[0].cli(&["ping", &c[1].quic_addr()])?.success());
    c[1].kill()?;
    let out = c[0].cli(&["ping", "--timeout", "2s", &c[1].quic_addr()])?;
    assert!(!out.success(), "{out}");
    c[1].restart()?;
    c[1].wait_ready(Duration::from_secs(30))?;
    let out = c[0].cli(&["ping", &c[1].quic_addr()])?;
    assert!(out.success(), "{out}");
    // A link cut shows up as unreachable, and heals.
    c[1].link_down()?;
    assert!(!c[0]
        .cli(&["ping", "--timeout", "2s", &c[1].quic_addr()])?
        .success());
    c[1].link_up()?;
    hyphae_harness::wait_until(Duration::from_secs(15), "ping after link up", || {
        Ok(c[0].cli(&["ping", &c[1].quic_addr()])?.success())
    })?;
    Ok(())
}
