//! One hyphae node: its namespace, address, state directory and process.
//!
//! All methods take `&self` (process state sits behind a mutex) so a test
//! can hold references to several nodes of a cluster at once and, e.g.,
//! kill one while querying another.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cmd::{self, CmdOutput};
use crate::http_uds::{self, HttpResponse};

/// UDP/QUIC port hyphae nodes listen on; see [`Node::addr`].
pub const DEFAULT_PORT: u16 = 7440;

/// How long a CLI verb may run before [`Node::cli`] kills it: generous for
/// debug builds, but a hang fails the test instead of stalling it.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest path a Unix socket address can hold (`sun_path` minus NUL).
const MAX_SOCKET_PATH: usize = 107;

/// One node of a [`crate::Cluster`].
pub struct Node {
    index: usize,
    ip: Ipv4Addr,
    netns: String,
    host_veth: String,
    state_dir: PathBuf,
    binary: PathBuf,
    proc: Mutex<Proc>,
}

/// Everything fixed about a node, gathered by the cluster builder.
pub(crate) struct NodeSpec {
    pub index: usize,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub host_veth: String,
    pub state_dir: PathBuf,
    pub binary: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Mutable per-node state: the running process and what the next start uses.
struct Proc {
    child: Option<Child>,
    last_exit: Option<ExitStatus>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    starts: u32,
}

impl Node {
    pub(crate) fn new(spec: NodeSpec) -> Self {
        Node {
            index: spec.index,
            ip: spec.ip,
            netns: spec.netns,
            host_veth: spec.host_veth,
            state_dir: spec.state_dir,
            binary: spec.binary,
            proc: Mutex::new(Proc {
                child: None,
                last_exit: None,
                args: spec.args,
                env: spec.env,
                starts: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Proc> {
        // A panic elsewhere must not make teardown impossible.
        self.proc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Position in the cluster (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Short name used in logs and messages (`n0`, `n1`, ...).
    pub fn name(&self) -> String {
        format!("n{}", self.index)
    }

    /// The node's address on the cluster bridge.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `ip:port`, e.g. for `node.cli(&["ping", &other.addr(7440).to_string()])`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.ip, port))
    }

    /// `ip:7440` as a string, the form CLI verbs take.
    pub fn quic_addr(&self) -> String {
        self.addr(DEFAULT_PORT).to_string()
    }

    /// The network namespace the node runs in (for `ip netns exec`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The root-namespace end of the node's veth (what link faults toggle).
    pub fn host_veth(&self) -> &str {
        &self.host_veth
    }

    /// The node's `--state-dir`; survives restarts.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Where the node's stdout and stderr go (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.state_dir.join("node.log")
    }

    /// The node's local control socket (`<state-dir>/run/node.sock`).
    pub fn socket_path(&self) -> PathBuf {
        self.state_dir.join("run").join("node.sock")
    }

    /// The config file the node reads (`<state-dir>/hyphae.toml`).
    pub fn config_path(&self) -> PathBuf {
        self.state_dir.join("hyphae.toml")
    }

    /// The binary this node runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Writes `<state-dir>/hyphae.toml`; takes effect at the next start.
    pub fn write_config(&self, toml: &str) -> Result<()> {
        let path = self.config_path();
        fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))
    }

    /// Replaces the extra arguments appended after `node` at the next start.
    pub fn set_args<I, S>(&self, args: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.lock().args = args.into_iter().map(Into::into).collect();
    }

    /// Sets an environment variable for the next start and for [`Node::cli`].
    pub fn set_env(&self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        let mut p = self.lock();
        p.env.retain(|(k, _)| *k != key);
        p.env.push((key, value));
    }

    /// The node process's pid while one is running (it may be stopped).
    pub fn pid(&self) -> Option<u32> {
        let mut p = self.lock();
        reap(&mut p);
        p.child.as_ref().map(Child::id)
    }

    /// Whether the node process exists (running or SIGSTOPped).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// How the last node process ended, if one has ended.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        let mut p = self.lock();
        reap(&mut p);
        p.last_exit
    }

    /// How many times the node process has been started.
    pub fn starts(&self) -> u32 {
        self.lock().starts
    }

    /// Starts `ip netns exec <ns> <binary> --state-dir <dir> node <args>`
    /// with output appended to [`Node::log_path`]. Does not wait for
    /// readiness; see [`Node::wait_ready`].
    pub fn start(&self) -> Result<()> {
        let mut p = self.lock();
        reap(&mut p);
        if let Some(child) = &p.child {
            bail!("{} is already running (pid {})", self.name(), child.id());
        }
        let sock = self.socket_path();
        if sock.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "socket path {} is longer than {MAX_SOCKET_PATH} bytes; use a shorter TMPDIR",
                sock.display()
            );
        }
        let mut command = self.command_in_netns(&p.env);
        command.arg("node").args(&p.args);
        let described = cmd::describe(&command);

        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .with_context(|| format!("duplicating {}", log_path.display()))?;
        writeln!(
            log,
            "=== hyphae-harness: start #{} of {} at {}: {described}",
            p.starts + 1,
            self.name(),
            unix_time()
        )
        .with_context(|| format!("writing {}", log_path.display()))?;

        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .with_context(|| format!("spawning {}: `{described}`", self.name()))?;
        p.child = Some(child);
        p.starts += 1;
        Ok(())
    }

    /// Polls `GET /status` until it returns JSON with `"ready": true`, and
    /// returns that JSON. Fails early, with the log tail, if the process
    /// exits; fails with the last error and log tail on timeout.
    pub fn wait_ready(&self, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut p = self.lock();
                reap(&mut p);
                if p.child.is_none() {
                    let how = match p.last_exit {
                        Some(status) => format!("exited with {status}"),
                        None => "was never started".to_string(),
                    };
                    drop(p);
                    bail!(
                        "{} {how} while waiting for it to become ready\n{}",
                        self.name(),
                        self.log_excerpt(40)
                    );
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = left
                .min(Duration::from_secs(2))
                .max(Duration::from_millis(100));
            let last = match self.get_timeout("/status", attempt) {
                Ok(resp) if resp.is_success() => match resp.json() {
                    Ok(v) if v.get("ready") == Some(&Value::Bool(true)) => return Ok(v),
                    Ok(v) => format!("not ready yet: {v}"),
                    Err(e) => format!("{e:#}"),
                },
                Ok(resp) => format!("HTTP {} {}: {}", resp.status, resp.reason, resp.text()),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} not ready after {timeout:?}; last /status attempt: {last}\n{}",
                    self.name(),
                    self.log_excerpt(40)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET uri` on the node's local socket (e.g. `/metrics`).
    pub fn get(&self, uri: &str) -> Result<HttpResponse> {
        self.get_timeout(uri, http_uds::DEFAULT_TIMEOUT)
    }

    /// `GET uri` on the node's local socket with an explicit deadline.
    pub fn get_timeout(&self, uri: &str, timeout: Duration) -> Result<HttpResponse> {
        http_uds::uds_get_timeout(self.socket_path(), uri, timeout)
            .with_context(|| format!("node {}", self.name()))
    }

    /// `GET /status` as JSON (any HTTP status other than 2xx is an error).
    pub fn status_json(&self) -> Result<Value> {
        let resp = self.get("/status")?;
        if !resp.is_success() {
            bail!(
                "{}: GET /status returned HTTP {}: {}",
                self.name(),
                resp.status,
                resp.text()
            );
        }
        resp.json()
    }

    /// Runs `ip netns exec <ns> <binary> --state-dir <dir> ARGS...` (any CLI
    /// verb, with the node's env) and captures the result; a non-zero exit
    /// is returned, not an error. Works whether or not the node is running.
    /// It runs with the state dir as working directory and is killed after
    /// [`CLI_TIMEOUT`] (see [`Node::cli_timeout`]).
    pub fn cli<S: AsRef<str>>(&self, args: &[S]) -> Result<CmdOutput> {
        self.cli_timeout(args, CLI_TIMEOUT)
    }

    /// [`Node::cli`] with an explicit limit; running past it is an error.
    pub fn cli_timeout<S: AsRef<str>>(&self, args: &[S], timeout: Duration) -> Result<CmdOutput> {
        let env = self.lock().env.clone();
        let mut command = self.command_in_netns(&env);
        command.args(args.iter().map(AsRef::as_ref));
        cmd::output_timeout(&mut command, timeout).with_context(|| format!("{} CLI", self.name()))
    }

    /// Like [`Node::cli`] but a non-zero exit is an error (with output).
    pub fn cli_ok<S: AsRef<str>>(&self, args: &[S]) -> Result<CmdOutput> {
        self.cli(args)?.check()
    }

    /// Runs a setup verb (e.g. `init`, `cert install`) that must happen
    /// while the node is not running; it must succeed.
    pub fn setup<S: AsRef<str>>(&self, args: &[S]) -> Result<CmdOutput> {
        if self.is_running() {
            bail!(
                "{}: setup verbs must run before the node is started",
                self.name()
            );
        }
        self.cli_ok(args)
    }

    /// Runs any program inside the node's namespace (`ip netns exec`), e.g.
    /// `node.exec("ss", &["-uanp"])`; a non-zero exit is not an error.
    pub fn exec<S: AsRef<str>>(&self, program: &str, args: &[S]) -> Result<CmdOutput> {
        cmd::exec_in_netns(&self.netns, program, args)
    }

    /// Whether one ICMP echo from this node's namespace to `ip` is answered
    /// within a second (`ping -c1 -W1`).
    pub fn can_ping(&self, ip: Ipv4Addr) -> Result<bool> {
        Ok(self
            .exec("ping", &["-c1", "-W1", "-n", &ip.to_string()])?
            .success())
    }

    /// The whole node log (all starts).
    pub fn log(&self) -> Result<String> {
        let path = self.log_path();
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The last `lines` lines of the node log ("" if there is none yet).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log().unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A headed log excerpt for error messages and panic dumps.
    pub(crate) fn log_excerpt(&self, lines: usize) -> String {
        let tail = self.log_tail(lines);
        format!(
            "----- last {lines} lines of {} ({}) -----\n{}\n----- end of {} log -----",
            self.name(),
            self.log_path().display(),
            if tail.is_empty() { "(empty)" } else { &tail },
            self.name()
        )
    }

    /// `ip netns exec <ns> <binary> --state-dir <dir>` with the node's env,
    /// run from the state dir so stray relative paths land there.
    fn command_in_netns(&self, env: &[(String, String)]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns])
            .arg(&self.binary)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .current_dir(&self.state_dir)
            .envs(env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Signals the node process; errors name the node and say if it is gone.
    pub(crate) fn signal(&self, sig: nix::sys::signal::Signal) -> Result<()> {
        let mut p = self.lock();
        reap(&mut p);
        let Some(child) = &p.child else {
            bail!("{}: cannot send {sig}: {}", self.name(), not_running(&p));
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, sig)
            .with_context(|| format!("{}: kill({pid}, {sig})", self.name()))
    }

    /// SIGKILLs and reaps the process; errors if none was running.
    pub(crate) fn kill_inner(&self) -> Result<ExitStatus> {
        let mut p = self.lock();
        reap(&mut p);
        let Some(mut child) = p.child.take() else {
            bail!("{}: cannot kill: {}", self.name(), not_running(&p));
        };
        child
            .kill()
            .with_context(|| format!("{}: SIGKILL pid {}", self.name(), child.id()))?;
        let status = child
            .wait()
            .with_context(|| format!("{}: reaping pid {}", self.name(), child.id()))?;
        p.last_exit = Some(status);
        Ok(status)
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns how it ended.
    pub(crate) fn terminate_inner(&self, grace: Duration) -> Result<ExitStatus> {
        self.signal(nix::sys::signal::Signal::SIGTERM)?;
        match self.wait_exit(grace) {
            Ok(status) => Ok(status),
            Err(_) => self.kill_inner(),
        }
    }

    /// Waits until the node process exits on its own (or `timeout` passes).
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut p = self.lock();
                reap(&mut p);
                if p.child.is_none() {
                    return p
                        .last_exit
                        .with_context(|| format!("{} was never started", self.name()));
                }
            }
            if Instant::now() >= deadline {
                bail!("{} still running after {timeout:?}", self.name());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Teardown path: SIGKILL and reap whatever runs, never failing loudly.
    pub(crate) fn kill_for_teardown(&self) {
        let mut p = self.lock();
        if let Some(mut child) = p.child.take() {
            if let Err(e) = child.kill() {
                eprintln!("hyphae-harness: SIGKILL {}: {e}", self.name());
            }
            match child.wait() {
                Ok(status) => p.last_exit = Some(status),
                Err(e) => eprintln!("hyphae-harness: reaping {}: {e}", self.name()),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_for_teardown();
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name())
            .field("ip", &self.ip)
            .field("netns", &self.netns)
            .field("state_dir", &self.state_dir)
            .field("pid", &self.pid())
            .finish()
    }
}

/// Moves an exited child into `last_exit` so state queries see reality.
fn reap(p: &mut Proc) {
    if let Some(child) = p.child.as_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            p.last_exit = Some(status);
            p.child = None;
        }
    }
}

fn not_running(p: &Proc) -> String {
    match p.last_exit {
        Some(status) => format!("not running (last exit: {status})"),
        None => "never started".to_string(),
    }
}

fn unix_time() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03} (unix)", d.as_secs(), d.subsec_millis())
}
