//! Fault injection on a node: process faults (kill -9, SIGSTOP/SIGCONT,
//! graceful stop, restart) and network faults (link down/up, bandwidth
//! limits). Each is one call so tests read as a scenario script.

use std::fs;
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use crate::cmd::{ip, tc};
use crate::node::Node;

/// A token-bucket (`tc tbf`) limit. Strings use tc's units (`1mbit`,
/// `32kbit`, `400ms`) so what a test says is exactly what tc is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tbf {
    /// Sustained rate, e.g. `"1mbit"`.
    pub rate: String,
    /// Bucket size; must be at least one MTU (default `"32kbit"` = 4 KiB).
    pub burst: String,
    /// Longest a packet may queue before it is dropped (default `"400ms"`).
    pub latency: String,
}

impl Tbf {
    /// A limit of `rate` with the default burst and latency.
    pub fn rate(rate: impl Into<String>) -> Self {
        Tbf {
            rate: rate.into(),
            burst: "32kbit".into(),
            latency: "400ms".into(),
        }
    }

    /// Overrides the bucket size.
    pub fn burst(mut self, burst: impl Into<String>) -> Self {
        self.burst = burst.into();
        self
    }

    /// Overrides the queueing latency bound.
    pub fn latency(mut self, latency: impl Into<String>) -> Self {
        self.latency = latency.into();
        self
    }

    fn tc_args(&self) -> [&str; 7] {
        [
            "tbf",
            "rate",
            &self.rate,
            "burst",
            &self.burst,
            "latency",
            &self.latency,
        ]
    }
}

impl From<&str> for Tbf {
    fn from(rate: &str) -> Self {
        Tbf::rate(rate)
    }
}

impl Node {
    /// kill -9: the node gets no chance to clean up (crash simulation).
    /// The process is reaped; [`Node::restart`] or [`Node::start`] brings
    /// it back with the same state dir.
    pub fn kill(&self) -> Result<ExitStatus> {
        self.kill_inner()
    }

    /// Kills the node (SIGKILL, if running) and starts it again with the
    /// same state dir, args and env. Does not wait for readiness; follow
    /// with [`Node::wait_ready`].
    pub fn restart(&self) -> Result<()> {
        if self.is_running() {
            self.kill()?;
        }
        self.start()
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn terminate(&self, grace: Duration) -> Result<ExitStatus> {
        self.terminate_inner(grace)
    }

    /// SIGSTOP: the process freezes but keeps its sockets, so peers see a
    /// hung node rather than a dead one. Returns once the kernel reports
    /// the process stopped (signal delivery is asynchronous).
    pub fn stop(&self) -> Result<()> {
        self.signal(Signal::SIGSTOP)?;
        self.wait_proc_state("stopped", |s| s == 'T')
    }

    /// SIGCONT: resumes a node frozen by [`Node::stop`]; returns once the
    /// kernel no longer reports it stopped.
    pub fn cont(&self) -> Result<()> {
        self.signal(Signal::SIGCONT)?;
        self.wait_proc_state("resumed", |s| s != 'T')
    }

    /// The process state letter from `/proc/<pid>/stat` (`R`, `S`, `T`,
    /// ...), or `None` when no node process is running.
    pub fn proc_state(&self) -> Option<char> {
        let pid = self.pid()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    fn wait_proc_state(&self, what: &str, ok: impl Fn(char) -> bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.proc_state() {
                Some(s) if ok(s) => return Ok(()),
                None => bail!(
                    "{}: process vanished while waiting until {what}",
                    self.name()
                ),
                Some(s) if Instant::now() >= deadline => {
                    bail!("{}: not {what} after 5s (state {s})", self.name())
                }
                Some(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Takes the host-side veth down: the node is cut off from everyone
    /// (peers and the test process) while its process keeps running.
    pub fn link_down(&self) -> Result<()> {
        ip(&["link", "set", self.host_veth(), "down"])
            .with_context(|| format!("{}: link down", self.name()))?;
        Ok(())
    }

    /// Brings the host-side veth back up and waits (≤ 2 s) until the link
    /// reports up, so the next packet is not lost to a race.
    pub fn link_up(&self) -> Result<()> {
        ip(&["link", "set", self.host_veth(), "up"])
            .with_context(|| format!("{}: link up", self.name()))?;
        let operstate = format!("/sys/class/net/{}/operstate", self.host_veth());
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let state =
                fs::read_to_string(&operstate).with_context(|| format!("reading {operstate}"))?;
            if state.trim() == "up" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{}: {} still {} after link up",
                    self.name(),
                    self.host_veth(),
                    state.trim()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Limits bandwidth in both directions: a tbf root qdisc on the
    /// namespace's `eth0` (node egress) and on the host veth (node
    /// ingress). Replaces any earlier limit. Accepts `"1mbit"` or a [`Tbf`].
    pub fn limit_bandwidth(&self, limit: impl Into<Tbf>) -> Result<()> {
        let limit = limit.into();
        let tbf = limit.tc_args();
        let mut inside = vec![
            "-n",
            self.netns(),
            "qdisc",
            "replace",
            "dev",
            "eth0",
            "root",
        ];
        inside.extend(tbf);
        tc(&inside).with_context(|| format!("{}: limit egress to {limit:?}", self.name()))?;
        let mut outside = vec!["qdisc", "replace", "dev", self.host_veth(), "root"];
        outside.extend(tbf);
        tc(&outside).with_context(|| format!("{}: limit ingress to {limit:?}", self.name()))?;
        Ok(())
    }

    /// Removes limits set by [`Node::limit_bandwidth`] (no-op if none).
    pub fn clear_bandwidth(&self) -> Result<()> {
        clear_root_qdisc(Some(self.netns()), "eth0")
            .with_context(|| format!("{}: clear egress limit", self.name()))?;
        clear_root_qdisc(None, self.host_veth())
            .with_context(|| format!("{}: clear ingress limit", self.name()))?;
        Ok(())
    }

    /// `tc qdisc show` for both ends of the node's link (eth0 in the
    /// namespace first), for assertions and debugging.
    pub fn qdiscs(&self) -> Result<String> {
        let inside = tc(&["-n", self.netns(), "qdisc", "show", "dev", "eth0"])?;
        let outside = tc(&["qdisc", "show", "dev", self.host_veth()])?;
        Ok(format!("{}{}", inside.stdout, outside.stdout))
    }
}

/// Deletes the root qdisc of `dev`; "nothing to delete" is success.
fn clear_root_qdisc(netns: Option<&str>, dev: &str) -> Result<()> {
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    let mut del = args.clone();
    del.extend(["qdisc", "del", "dev", dev, "root"]);
    if let Err(e) = tc(&del) {
        let mut show = args;
        show.extend(["qdisc", "show", "dev", dev]);
        if tc(&show)?.stdout.contains("qdisc tbf") {
            return Err(e);
        }
    }
    Ok(())
}
