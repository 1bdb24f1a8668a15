//! A cluster: N nodes on a private bridge, with guaranteed teardown.
//!
//! Dropping a [`Cluster`] — normally or while a test panics — kills every
//! node, removes its namespaces, veths and bridge and frees its slot. On
//! panic it also prints each node's log tail and keeps the state dirs, so a
//! failing test explains itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::ops::Index;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tempfile::TempDir;

use crate::cmd;
use crate::net;
use crate::node::{Node, NodeSpec};
use crate::slot::{GlobalLock, Slot};

/// Set to `1` to keep every cluster's state dirs, even for passing tests.
pub const KEEP_STATE_ENV: &str = "HYPHAE_KEEP_STATE";

/// How many log lines per node are printed when a test panics.
pub const PANIC_LOG_LINES: usize = 80;

/// Most nodes one cluster may have (addresses `.10` to `.209`).
pub const MAX_NODES: usize = 200;

/// Configures a [`Cluster`]; obtained from [`Cluster::builder`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    binary: Option<PathBuf>,
    name: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    node_args: BTreeMap<usize, Vec<String>>,
    node_env: BTreeMap<usize, Vec<(String, String)>>,
    configs: BTreeMap<usize, String>,
    config_all: Option<String>,
    ready_timeout: Duration,
    keep_state: bool,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            nodes: 1,
            binary: None,
            name: None,
            args: Vec::new(),
            env: Vec::new(),
            node_args: BTreeMap::new(),
            node_env: BTreeMap::new(),
            configs: BTreeMap::new(),
            config_all: None,
            ready_timeout: Duration::from_secs(30),
            keep_state: false,
        }
    }
}

impl ClusterBuilder {
    /// Number of nodes (default 1).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// The node binary; in the root package's tests use
    /// `env!("CARGO_BIN_EXE_hyphae")`. Required.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// A label for messages and the state dir name (default: the current
    /// thread's name, which is the test's name under cargo test/nextest).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// An extra argument appended after `node` on every node.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// An environment variable for every node (process and CLI calls).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// An extra argument for node `i` only (after the cluster-wide ones).
    pub fn node_arg(mut self, i: usize, arg: impl Into<String>) -> Self {
        self.node_args.entry(i).or_default().push(arg.into());
        self
    }

    /// An environment variable for node `i` only (overrides cluster-wide).
    pub fn node_env(mut self, i: usize, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.node_env
            .entry(i)
            .or_default()
            .push((key.into(), value.into()));
        self
    }

    /// `hyphae.toml` contents for node `i` (written at build time). For
    /// configs that need other nodes' addresses, build first and use
    /// [`Node::write_config`] before starting.
    pub fn config(mut self, i: usize, toml: impl Into<String>) -> Self {
        self.configs.insert(i, toml.into());
        self
    }

    /// `hyphae.toml` contents for every node without a [`Self::config`].
    pub fn config_all(mut self, toml: impl Into<String>) -> Self {
        self.config_all = Some(toml.into());
        self
    }

    /// How long [`Cluster::start_all`] waits for each node (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Keep the state dirs after a passing test too (see also
    /// `HYPHAE_KEEP_STATE=1`).
    pub fn keep_state(mut self, keep: bool) -> Self {
        self.keep_state = keep;
        self
    }

    /// Creates the network and state dirs; no node is started, so setup
    /// verbs (`init`, enrolment) can run first. Then call
    /// [`Cluster::start_all`].
    pub fn build(self) -> Result<Cluster> {
        if self.nodes == 0 || self.nodes > MAX_NODES {
            bail!("a cluster needs 1..={MAX_NODES} nodes, not {}", self.nodes);
        }
        if let Some(i) = self
            .node_args
            .keys()
            .chain(self.node_env.keys())
            .chain(self.configs.keys())
            .find(|i| **i >= self.nodes)
        {
            bail!(
                "per-node setting for node {i}, but the cluster has {} nodes",
                self.nodes
            );
        }
        let binary = self
            .binary
            .as_ref()
            .context("no node binary: call .binary(env!(\"CARGO_BIN_EXE_hyphae\"))")?;
        let binary = fs::canonicalize(binary)
            .with_context(|| format!("node binary {}", binary.display()))?;
        if !nix::unistd::geteuid().is_root() {
            bail!(
                "the cluster harness needs root (network namespaces, veths, bridges); \
                 run the tests as root, e.g. inside the dev container"
            );
        }
        let name = self.name.clone().unwrap_or_else(default_name);
        let keep_state = self.keep_state || std::env::var(KEEP_STATE_ENV).is_ok_and(|v| v == "1");

        let slot = {
            let global = GlobalLock::acquire()?;
            let slot = Slot::allocate(&global)?;
            if let Err(e) = net::setup(slot.idx(), self.nodes) {
                let _ = slot.release();
                return Err(e.context(format!("setting up the network of cluster `{name}`")));
            }
            slot
        };
        let idx = slot.idx();
        // From here on, Drop cleans up whatever fails.
        let mut cluster = Cluster {
            name: name.clone(),
            slot: Some(slot),
            idx,
            nodes: Vec::new(),
            state: None,
            state_root: PathBuf::new(),
            ready_timeout: self.ready_timeout,
            keep_state,
        };
        let state = tempfile::Builder::new()
            .prefix(&format!("hyphae-{}-", short(&name)))
            .tempdir()
            .context("creating the cluster state dir")?;
        cluster.state_root = std::path::absolute(state.path())
            .with_context(|| format!("absolute path of {}", state.path().display()))?;
        cluster.state = Some(state);

        for i in 0..self.nodes {
            let dir = cluster.state_root.join(format!("n{i}"));
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut args = self.args.clone();
            args.extend(self.node_args.get(&i).cloned().unwrap_or_default());
            let mut env = self.env.clone();
            env.extend(self.node_env.get(&i).cloned().unwrap_or_default());
            let node = Node::new(NodeSpec {
                index: i,
                ip: net::node_ip(idx, i),
                netns: net::netns_name(idx, i),
                host_veth: net::host_veth_name(idx, i),
                state_dir: dir,
                binary: binary.clone(),
                args,
                env: Vec::new(),
            });
            for (k, v) in env {
                node.set_env(k, v);
            }
            if let Some(toml) = self.configs.get(&i).or(self.config_all.as_ref()) {
                node.write_config(toml)?;
            }
            cluster.nodes.push(node);
        }
        tracing::info!(cluster = %name, slot = idx, state = %cluster.state_root.display(), "cluster built");
        Ok(cluster)
    }

    /// [`Self::build`], then [`Cluster::start_all`]: every node running and
    /// ready. For tests that need no setup verbs.
    pub fn start(self) -> Result<Cluster> {
        let cluster = self.build()?;
        cluster.start_all()?;
        Ok(cluster)
    }
}

/// N hyphae nodes, each in its own network namespace on a shared bridge
/// that the test process can reach. Index it (`cluster[1]`) for nodes.
pub struct Cluster {
    name: String,
    slot: Option<Slot>,
    idx: u8,
    nodes: Vec<Node>,
    state: Option<TempDir>,
    state_root: PathBuf,
    ready_timeout: Duration,
    keep_state: bool,
}

impl Cluster {
    /// Starts configuring a cluster.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// The cluster's label (test name by default).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The slot index: the third octet of the subnet.
    pub fn slot(&self) -> u8 {
        self.idx
    }

    /// The cluster subnet in CIDR form, e.g. `10.213.4.0/24`.
    pub fn subnet(&self) -> String {
        format!("10.{}.{}.0/24", net::SUBNET_OCTET, self.idx)
    }

    /// The bridge's name in the root namespace.
    pub fn bridge(&self) -> String {
        net::bridge_name(self.idx)
    }

    /// The bridge's address (the nodes' default gateway; the test process
    /// talks to nodes from here).
    pub fn bridge_ip(&self) -> Ipv4Addr {
        net::bridge_ip(self.idx)
    }

    /// Directory holding every node's state dir (`n0/`, `n1/`, ...).
    pub fn state_root(&self) -> &Path {
        &self.state_root
    }

    /// All nodes, in index order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i`; panics (with a clear message) if out of range, like `[]`.
    pub fn node(&self, i: usize) -> &Node {
        match self.nodes.get(i) {
            Some(n) => n,
            None => panic!(
                "cluster `{}` has no node {i} ({} nodes)",
                self.name,
                self.nodes.len()
            ),
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false (a cluster has at least one node); for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node's IP, in index order.
    pub fn ips(&self) -> Vec<Ipv4Addr> {
        self.nodes.iter().map(Node::ip).collect()
    }

    /// The readiness timeout configured on the builder.
    pub fn ready_timeout(&self) -> Duration {
        self.ready_timeout
    }

    /// Starts every node that is not running, then waits until all are
    /// ready (within the builder's ready timeout, shared across nodes).
    pub fn start_all(&self) -> Result<()> {
        for node in &self.nodes {
            if !node.is_running() {
                node.start()?;
            }
        }
        self.wait_all_ready(self.ready_timeout)?;
        Ok(())
    }

    /// Waits until every node reports ready; returns their `/status` JSON.
    pub fn wait_all_ready(&self, timeout: Duration) -> Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        self.nodes
            .iter()
            .map(|n| n.wait_ready(deadline.saturating_duration_since(Instant::now())))
            .collect()
    }

    /// Whether the test process (root namespace) gets an ICMP echo reply
    /// from `ip` within a second.
    pub fn host_can_ping(&self, ip: Ipv4Addr) -> Result<bool> {
        Ok(
            cmd::output(Command::new("ping").args(["-c1", "-W1", "-n", &ip.to_string()]))?
                .success(),
        )
    }

    /// Prints the last `lines` lines of every node's log to stderr, each
    /// under a header naming the node (done automatically on panic).
    pub fn dump_logs(&self, lines: usize) {
        let mut out = String::new();
        for node in &self.nodes {
            let _ = writeln!(out, "{}", node.log_excerpt(lines));
        }
        eprint!("{out}");
    }
}

impl Index<usize> for Cluster {
    type Output = Node;

    fn index(&self, i: usize) -> &Node {
        self.node(i)
    }
}

impl<'a> IntoIterator for &'a Cluster {
    type Item = &'a Node;
    type IntoIter = std::slice::Iter<'a, Node>;

    fn into_iter(self) -> Self::IntoIter {
        self.nodes.iter()
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("subnet", &self.subnet())
            .field("state_root", &self.state_root)
            .field("nodes", &self.nodes)
            .finish()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = thread::panicking();
        let keep = panicking || self.keep_state;
        if panicking {
            eprintln!(
                "\n======== hyphae-harness: test panicked; node logs of cluster `{}` \
                 (subnet {}, state kept in {}) ========",
                self.name,
                self.subnet(),
                self.state_root.display()
            );
            self.dump_logs(PANIC_LOG_LINES);
            eprintln!("======== end of cluster `{}` logs ========", self.name);
        }
        for node in &self.nodes {
            node.kill_for_teardown();
        }
        if let Some(slot) = self.slot.take() {
            match GlobalLock::acquire() {
                Ok(_global) => {
                    if let Err(e) = net::teardown(self.idx) {
                        eprintln!("hyphae-harness: teardown of cluster `{}`: {e:#}", self.name);
                    }
                }
                Err(e) => eprintln!(
                    "hyphae-harness: teardown of cluster `{}` skipped (the next allocation \
                     reclaims it): {e:#}",
                    self.name
                ),
            }
            if let Err(e) = slot.release() {
                eprintln!("hyphae-harness: releasing slot {}: {e:#}", self.idx);
            }
        }
        if let Some(state) = self.state.take() {
            if keep {
                let path = state.keep();
                eprintln!(
                    "hyphae-harness: kept state dirs of cluster `{}` in {}",
                    self.name,
                    path.display()
                );
            } else if let Err(e) = state.close() {
                eprintln!(
                    "hyphae-harness: removing state of cluster `{}`: {e}",
                    self.name
                );
            }
        }
    }
}

/// The current thread's name (the test path under cargo test), else "cluster".
fn default_name() -> String {
    match thread::current().name() {
        Some(n) if n != "main" => n.rsplit("::").next().unwrap_or(n).to_string(),
        _ => "cluster".to_string(),
    }
}

/// A filesystem-safe, short form of `name` (socket paths must stay < 108 bytes).
fn short(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect()
}
