//! The coordinator on the harness: a mesh formed from `hyphae init` and join tokens, its
//! directory and roles as every node sees them.

mod support;

use std::time::Duration;

use anyhow::Result;
use hyphae_harness::{uds_get, uds_put_json, Cluster};
use support::{coord_status, form_mesh, node_id, nodes, roles, wait_directory};

#[test]
fn three_nodes_form_a_mesh_from_tokens() -> Result<()> {
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    let mesh = form_mesh(&c, 2)?;
    for n in c.nodes() {
        let list = wait_directory(n, 3, 2, Duration::from_secs(30))?;
        assert_eq!(roles(&list), (1, 2, 0), "n{}: {list:#?}", n.index());
        let status = coord_status(n)?.expect("coordinator status");
        assert_eq!(status["mesh_id"], mesh.as_str(), "{status}");
        assert!(status["queen"].is_string(), "{status}");
        // Joined nodes hold a certificate now.
        assert!(n.state_dir().join("identity/node.crt").exists());
    }
    // They agree on who is queen.
    let queen = support::queen_index(&c, &[0, 1, 2], Duration::from_secs(10))?;
    // Read-your-writes on a prince: a write it forwarded to the queen is in its own (local,
    // non-linearizable) reads as soon as the write returns. Straight over the socket, so that
    // the read follows the write's answer within a millisecond.
    for i in (0..3).filter(|&i| i != queen) {
        let socket = c[i].state_dir().join("run/coordinator.sock");
        for j in 0..20 {
            let (uri, value) = (format!("/kv/test/ryw-{i}-{j}"), format!("v{j}"));
            let put = uds_put_json(&socket, &uri, &serde_json::json!({ "value": value }))?;
            if put.status != 200 {
                // An election under load: the outcome is unknown, nothing to read back.
                continue;
            }
            let got = uds_get(&socket, &uri)?;
            assert_eq!(got.status, 200, "n{i} does not read its own write {uri}");
            assert_eq!(got.json()?["value"], value.as_str(), "{uri} on n{i}");
        }
    }
    // Every node lists the same ids.
    let ids = |i: usize| -> Result<Vec<String>> {
        let mut v: Vec<String> = nodes(&c[i])?
            .unwrap_or_default()
            .iter()
            .map(|n| n["id"].as_str().unwrap_or_default().to_string())
            .collect();
        v.sort();
        Ok(v)
    };
    assert_eq!(ids(0)?, ids(1)?);
    assert_eq!(ids(0)?, ids(2)?);

    // n2 leaves cleanly: it is listed as left, without a role, and two members keep one voter.
    let id2 = node_id(&c[2])?;
    c[2].cli_ok(&["leave"])?;
    hyphae_harness::wait_until(Duration::from_secs(30), "n2 left", || {
        let list = nodes(&c[0])?.unwrap_or_default();
        let gone = list
            .iter()
            .any(|n| n["id"] == id2.as_str() && n["status"] == "left" && n["role"] == "none");
        let status = coord_status(&c[0])?.unwrap_or_default();
        let voters = status["voters"].as_array().map(Vec::len);
        let in_raft = status.to_string().contains(&id2);
        Ok(gone && voters == Some(1) && !in_raft)
    })?;
    assert!(support::put(&c[1], "after-leave", "1", Duration::from_secs(20))?.is_ok());
    Ok(())
}

/// Fast liveness for the tests: suspect after 1 s, down after 3 s.
const FAST_LIVENESS: &str =
    "[coordinator]\nheartbeat_interval = \"250ms\"\nsuspect_after = \"1s\"\nheal_after = \"3s\"\n";

#[test]
fn five_nodes_keep_three_voters_and_replace_a_dead_prince() -> Result<()> {
    let c = Cluster::builder()
        .nodes(5)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    support::form_mesh_with(&c, 2, FAST_LIVENESS)?;
    // Every node sees all five: one queen among three princes (the three voters; the queen is
    // the prince that leads), and two bees.
    for n in c.nodes() {
        let list = wait_directory(n, 5, 2, Duration::from_secs(30))?;
        assert_eq!(roles(&list), (1, 2, 2), "n{}: {list:#?}", n.index());
        let voters: Vec<&serde_json::Value> = list.iter().filter(|n| n["voter"] == true).collect();
        assert_eq!(voters.len(), 3, "n{}: {list:#?}", n.index());
        assert!(voters.iter().any(|v| v["role"] == "queen"), "{list:#?}");
    }
    let all: Vec<usize> = (0..5).collect();
    let q = support::queen_index(&c, &all, Duration::from_secs(10))?;
    let list = nodes(&c[q])?.unwrap_or_default();
    let prince_id = list
        .iter()
        .find(|n| n["role"] == "prince")
        .and_then(|n| n["id"].as_str())
        .map(str::to_string)
        .expect("a prince");
    let mut prince = None;
    for i in 0..5 {
        if node_id(&c[i])? == prince_id {
            prince = Some(i);
        }
    }
    let p = prince.expect("the prince's index");

    // Kill the prince: the queen marks it suspect, replaces it with a bee, then marks it down.
    c[p].kill()?;
    let list = hyphae_harness::wait_for(Duration::from_secs(30), "a replaced prince", || {
        let Some(list) = nodes(&c[q])? else {
            return Ok(None);
        };
        let dead = list.iter().find(|n| n["id"] == prince_id.as_str());
        let down = dead.is_some_and(|d| d["status"] == "down");
        let voters = list
            .iter()
            .filter(|n| n["role"] == "queen" || n["role"] == "prince")
            .filter(|n| n["status"] == "up")
            .count();
        Ok((down && voters == 3).then_some(list))
    })?;
    assert_eq!(roles(&list).0, 1, "{list:#?}");
    let kinds: Vec<String> = support::events(&c[q])?
        .into_iter()
        .filter(|(node, _)| *node == prince_id)
        .map(|(_, kind)| kind)
        .collect();
    // Down at the end, through suspect. (On a loaded machine fast liveness can flap a node
    // before the kill, so a late `up` may sit between its last `suspect` and the final `down`.)
    assert!(
        kinds.last().map(String::as_str) == Some("down") && kinds.iter().any(|k| k == "suspect"),
        "{kinds:?}"
    );

    // It comes back: up again (as a bee now: the princes it left are healthy).
    c[p].restart()?;
    c[p].wait_ready(c.ready_timeout())?;
    hyphae_harness::wait_until(Duration::from_secs(30), "the old prince up again", || {
        let list = nodes(&c[q])?.unwrap_or_default();
        Ok(list
            .iter()
            .any(|n| n["id"] == prince_id.as_str() && n["status"] == "up"))
    })?;
    let kinds: Vec<String> = support::events(&c[q])?
        .into_iter()
        .filter(|(node, _)| *node == prince_id)
        .map(|(_, kind)| kind)
        .collect();
    assert_eq!(kinds.last().map(String::as_str), Some("up"), "{kinds:?}");
    Ok(())
}
