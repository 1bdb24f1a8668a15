//! The virtual network of one cluster: a bridge in the root namespace and,
//! per node, a network namespace joined to it by a veth pair.
//!
//! Names and addresses derive from the cluster's slot index alone, so a
//! crashed test's leftovers can be found and removed by the next allocation
//! without any other record. Interface names stay within Linux's 15 chars.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, Result};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::cmd::{self, ip};

/// Second octet of every harness subnet (`10.213.<slot>.0/24`); chosen to be
/// unlikely to clash with real networks on a developer machine or CI runner.
pub const SUBNET_OCTET: u8 = 213;

/// The bridge name for a slot (`hyb<slot>`).
pub(crate) fn bridge_name(slot: u8) -> String {
    format!("hyb{slot}")
}

/// The network namespace name of node `i` in a slot (`hyn<slot>n<i>`).
pub(crate) fn netns_name(slot: u8, i: usize) -> String {
    format!("hyn{slot}n{i}")
}

/// The root-namespace end of node `i`'s veth pair (`hyv<slot>n<i>`).
pub(crate) fn host_veth_name(slot: u8, i: usize) -> String {
    format!("hyv{slot}n{i}")
}

/// The bridge's address: the test process reaches nodes from here.
pub(crate) fn bridge_ip(slot: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, SUBNET_OCTET, slot, 1)
}

/// Node `i`'s address (`.10 + i`, leaving low addresses for the bridge).
pub(crate) fn node_ip(slot: u8, i: usize) -> Ipv4Addr {
    let host = u8::try_from(10 + i).unwrap_or(u8::MAX);
    Ipv4Addr::new(10, SUBNET_OCTET, slot, host)
}

/// Creates the bridge and `n` namespaces with addressed, routed veths.
/// On error, whatever was created is removed again before returning.
pub(crate) fn setup(slot: u8, n: usize) -> Result<()> {
    let res = setup_inner(slot, n);
    if res.is_err() {
        let _ = teardown(slot);
    }
    res
}

fn setup_inner(slot: u8, n: usize) -> Result<()> {
    let br = bridge_name(slot);
    // forward_delay 0 + no STP: ports forward immediately after link up.
    // nf_call_* 0: bridged traffic bypasses a host firewall (br_netfilter).
    ip(&[
        "link",
        "add",
        &br,
        "type",
        "bridge",
        "forward_delay",
        "0",
        "stp_state",
        "0",
    ])?;
    // Not all kernels accept these; they only matter where br_netfilter is loaded.
    let _ = ip(&[
        "link",
        "set",
        &br,
        "type",
        "bridge",
        "nf_call_iptables",
        "0",
        "nf_call_ip6tables",
        "0",
        "nf_call_arptables",
        "0",
    ]);
    ip(&[
        "addr",
        "add",
        &format!("{}/24", bridge_ip(slot)),
        "dev",
        &br,
    ])?;
    ip(&["link", "set", &br, "up"])?;

    for i in 0..n {
        let ns = netns_name(slot, i);
        let veth = host_veth_name(slot, i);
        ip(&["netns", "add", &ns])?;
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["link", "set", &veth, "master", &br, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", node_ip(slot, i)),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &bridge_ip(slot).to_string(),
        ])?;
    }
    Ok(())
}

/// Names currently present on the host that belong to the harness, listed
/// once so reclaiming many slots costs two `ip` calls.
#[derive(Debug, Default)]
pub(crate) struct Present {
    netns: BTreeSet<String>,
    links: BTreeSet<String>,
}

impl Present {
    /// Lists harness-named namespaces and root-namespace links.
    pub(crate) fn scan() -> Result<Self> {
        let mut p = Present::default();
        for line in ip(&["netns", "list"])?.stdout.lines() {
            // Lines look like `name (id: 3)` or just `name`.
            if let Some(name) = line.split_whitespace().next() {
                if name.starts_with("hyn") {
                    p.netns.insert(name.to_string());
                }
            }
        }
        for line in ip(&["-o", "link", "show"])?.stdout.lines() {
            // `7: hyv3n0@if2: <BROADCAST,...` -> `hyv3n0`
            if let Some(name) = line.split(": ").nth(1) {
                let name = name.split('@').next().unwrap_or(name);
                if name.starts_with("hyb") || name.starts_with("hyv") {
                    p.links.insert(name.to_string());
                }
            }
        }
        Ok(p)
    }

    /// Whether anything of `slot` exists.
    pub(crate) fn has_slot(&self, slot: u8) -> bool {
        !self.netns_of(slot).is_empty() || !self.links_of(slot).is_empty()
    }

    fn netns_of(&self, slot: u8) -> Vec<&String> {
        let prefix = format!("hyn{slot}n");
        self.netns
            .iter()
            .filter(|n| n.strip_prefix(&prefix).is_some_and(is_digits))
            .collect()
    }

    fn links_of(&self, slot: u8) -> Vec<&String> {
        let veth = format!("hyv{slot}n");
        let br = bridge_name(slot);
        self.links
            .iter()
            .filter(|n| **n == br || n.strip_prefix(&veth).is_some_and(is_digits))
            .collect()
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Removes everything of `slot` that exists now: processes left in its
/// namespaces (SIGKILL), host veths, namespaces, then the bridge.
pub(crate) fn teardown(slot: u8) -> Result<()> {
    remove(slot, &Present::scan()?)
}

/// Like [`teardown`] but using an existing scan (for reclaiming many slots).
pub(crate) fn remove(slot: u8, present: &Present) -> Result<()> {
    let mut errors = Vec::new();
    let namespaces = present.netns_of(slot);
    for ns in &namespaces {
        if let Err(e) = kill_netns_processes(ns) {
            errors.push(e);
        }
    }
    let links = present.links_of(slot);
    let br = bridge_name(slot);
    // Veths first (deleting one end removes its peer), the bridge last.
    for link in links.iter().filter(|l| ***l != br) {
        if let Err(e) = ip(&["link", "del", link.as_str()]) {
            errors.push(e);
        }
    }
    for ns in &namespaces {
        if let Err(e) = ip(&["netns", "del", ns.as_str()]) {
            errors.push(e);
        }
    }
    if links.iter().any(|l| **l == br) {
        if let Err(e) = ip(&["link", "del", &br]) {
            errors.push(e);
        }
    }
    match errors.len() {
        0 => Ok(()),
        _ => {
            let msg: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
            anyhow::bail!("removing network of slot {slot}: {}", msg.join("; "))
        }
    }
}

/// SIGKILLs every process still living in `ns` (orphans of a crashed test),
/// since a namespace with processes in it outlives `ip netns del`.
fn kill_netns_processes(ns: &str) -> Result<()> {
    let out = cmd::run(Command::new("ip").args(["netns", "pids", ns]))?;
    for line in out.stdout.lines() {
        let pid: i32 = line
            .trim()
            .parse()
            .with_context(|| format!("unexpected `ip netns pids {ns}` output {line:?}"))?;
        // ESRCH (already gone) is fine.
        let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    Ok(())
}
