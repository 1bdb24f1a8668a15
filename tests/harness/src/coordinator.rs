//! Driving a mesh's coordinator from tests and benchmarks: forming a mesh with join tokens,
//! reading the directory and roles, writing and reading the key space — all through the
//! binary's own CLI and sockets, as an operator would.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::mesh::init_mesh;
use crate::node::Node;
use crate::wait::wait_for;

/// The directory as `node` sees it (`hyphae nodes --json`), if its coordinator answers.
pub fn nodes(node: &Node) -> Result<Option<Vec<Value>>> {
    let out = node.cli(&["nodes", "--json"])?;
    if !out.success() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(&out.stdout).context("nodes --json output")?;
    Ok(v["nodes"].as_array().cloned())
}

/// The coordinator's `/status` on `node` (`hyphae status --json`'s `coordinator` part).
pub fn coord_status(node: &Node) -> Result<Option<Value>> {
    let out = node.cli(&["status", "--json"])?;
    if !out.success() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(&out.stdout).context("status --json output")?;
    Ok(v.get("coordinator").cloned())
}

/// Counts of each role among the nodes listed.
pub fn roles(list: &[Value]) -> (usize, usize, usize) {
    let count = |r: &str| list.iter().filter(|n| n["role"] == r).count();
    (count("queen"), count("prince"), count("bee"))
}

/// Waits until `node` sees `total` nodes, all up, with one queen and `princes` princes.
pub fn wait_directory(
    node: &Node,
    total: usize,
    princes: usize,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let mut last = None;
    let found = wait_for(timeout, "the expected directory", || {
        let Some(list) = nodes(node)? else {
            return Ok(None);
        };
        let up = list.iter().filter(|n| n["status"] == "up").count();
        let (q, p, _) = roles(&list);
        let good = list.len() == total && up == total && q == 1 && p == princes;
        last = Some(list.clone());
        Ok(good.then_some(list))
    });
    match found {
        Ok(list) => Ok(list),
        Err(e) => bail!("n{}: {e}; last directory: {:#?}", node.index(), last),
    }
}

/// The node id of a running node.
pub fn node_id(node: &Node) -> Result<String> {
    Ok(node.status_json()?["node_id"]
        .as_str()
        .context("no node_id")?
        .to_string())
}

/// `[mesh]` configuration that joins through `peers` with `token`.
pub fn join_config(token: Option<&str>, peers: &[&Node]) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{}\"", p.ip())).collect();
    let mut toml = format!("[mesh]\npeers = [{}]\n", peers.join(", "));
    if let Some(t) = token {
        toml.push_str(&format!("join_token = \"{t}\"\n"));
    }
    toml
}

/// Creates a token on `node`.
pub fn token(node: &Node, uses: u32, ttl: &str) -> Result<String> {
    let out = node.cli_ok(&["token", "create", "--uses", &uses.to_string(), "--ttl", ttl])?;
    Ok(out.stdout_trimmed().to_string())
}

/// Forms a mesh of every node of `c`: n0 runs `init` and starts, the others join with one
/// token. Waits until n0 sees them all up with the expected number of princes.
pub fn form_mesh(c: &Cluster, princes: usize) -> Result<String> {
    form_mesh_with(c, princes, "")
}

/// [`form_mesh`] with extra configuration (TOML sections other than `[mesh]`) on every node.
pub fn form_mesh_with(c: &Cluster, princes: usize, extra: &str) -> Result<String> {
    let mesh = found_mesh_with(c, extra)?;
    let token = token(&c[0], (c.len() - 1).max(1) as u32, "1h")?;
    for n in c.nodes().iter().skip(1) {
        n.write_config(&format!("{}{extra}", join_config(Some(&token), &[&c[0]])))?;
        n.start()?;
    }
    for n in c.nodes().iter().skip(1) {
        n.wait_ready(c.ready_timeout())?;
    }
    wait_directory(&c[0], c.len(), princes, Duration::from_secs(60))?;
    Ok(mesh)
}

/// Founds a mesh on n0 of `c` (`hyphae init`, then start it) and waits until its coordinator
/// lists it; returns the mesh id. The other nodes are left alone.
pub fn found_mesh(c: &Cluster) -> Result<String> {
    found_mesh_with(c, "")
}

/// [`found_mesh`] with `extra` configuration on n0.
pub fn found_mesh_with(c: &Cluster, extra: &str) -> Result<String> {
    let mesh = init_mesh(&c[0])?;
    if !extra.is_empty() {
        c[0].write_config(extra)?;
    }
    c[0].start()?;
    c[0].wait_ready(c.ready_timeout())?;
    wait_directory(&c[0], 1, 0, Duration::from_secs(30))?;
    Ok(mesh)
}

/// The index of the node every given node agrees is queen.
pub fn queen_index(c: &Cluster, among: &[usize], timeout: Duration) -> Result<usize> {
    wait_for(timeout, "agreement on one queen", || {
        let mut queen = None;
        for &i in among {
            let Some(s) = coord_status(&c[i])? else {
                return Ok(None);
            };
            let Some(q) = s["queen"].as_str().map(str::to_string) else {
                return Ok(None);
            };
            if queen.get_or_insert(q.clone()) != &q {
                return Ok(None);
            }
        }
        let Some(q) = queen else { return Ok(None) };
        for &i in among {
            if node_id(&c[i])? == q {
                return Ok(Some(i));
            }
        }
        Ok(None)
    })
}

/// Writes `table/key = value` through `node`; Ok(version) or the CLI's error.
pub fn put(
    node: &Node,
    key: &str,
    value: &str,
    timeout: Duration,
) -> Result<std::result::Result<u64, String>> {
    // A CLI killed at the timeout is a failed write (of unknown outcome), not a test error.
    let out = match node.cli_timeout(&["kv", "put", "test", key, value], timeout) {
        Ok(out) => out,
        Err(e) => return Ok(Err(format!("{e:#}"))),
    };
    if out.success() {
        Ok(Ok(out.stdout_trimmed().parse().unwrap_or(0)))
    } else {
        Ok(Err(out.stderr.clone()))
    }
}

/// Writes `test/key = value` through `node` until it is acknowledged, for a test's set-up
/// writes: under load the queen can change while a write is in flight ("outcome unknown"), and
/// putting the same value again is harmless. Fails when `within` passes without an ack.
pub fn put_until_acked(node: &Node, key: &str, value: &str, within: Duration) -> Result<u64> {
    let start = Instant::now();
    loop {
        let left = within.saturating_sub(start.elapsed());
        let attempt = left
            .min(Duration::from_secs(10))
            .max(Duration::from_secs(1));
        match put(node, key, value, attempt)? {
            Ok(version) => return Ok(version),
            Err(e) if start.elapsed() >= within => {
                bail!("`{key}` not acknowledged within {within:?}: {e}")
            }
            Err(_) => std::thread::sleep(crate::POLL_INTERVAL),
        }
    }
}

/// Reads `test/key` on `node` (its applied state).
pub fn get(node: &Node, key: &str) -> Result<Option<String>> {
    let out = node.cli(&["kv", "get", "test", key])?;
    if !out.success() {
        return Ok(None);
    }
    Ok(out
        .stdout_trimmed()
        .split_once('\t')
        .map(|(_, v)| v.to_string()))
}

/// The committed events (`GET /events` on `coordinator.sock`) as `(node id, kind)`.
pub fn events(node: &Node) -> Result<Vec<(String, String)>> {
    let sock = node.state_dir().join("run/coordinator.sock");
    let v = crate::http_uds::uds_get(&sock, "/events")?.json()?;
    Ok(v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["node"].as_str().unwrap_or_default().to_string(),
                e["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// Milliseconds since `t`.
pub fn ms_since(t: Instant) -> u128 {
    t.elapsed().as_millis()
}
