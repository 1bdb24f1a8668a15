//! Cross-process allocation of cluster slots.
//!
//! Tests run concurrently (threads under `cargo test`, processes under
//! nextest), and each cluster needs its own subnet, bridge and namespace
//! names. A slot is an index `0..=MAX_SLOT` owned by holding an `flock` on
//! `/run/hyphae-harness/slot-<idx>.lock` for the cluster's lifetime; the
//! kernel drops the lock when the owner dies, however it dies. The owner's
//! pid (and start time, against pid reuse) is written into the file so a
//! later allocation can tell a crashed owner from a live one and reclaim the
//! bridge, namespaces and veths it left behind.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::net;

/// Directory holding the lock files (tmpfs, so stale files vanish on reboot).
pub const RUN_DIR: &str = "/run/hyphae-harness";

/// Highest slot index; slots map to `10.213.<slot>.0/24`.
pub const MAX_SLOT: u8 = 250;

/// The global lock serialises allocation and `ip netns` add/del, which race
/// when run concurrently (shared mount propagation of `/run/netns`).
pub(crate) struct GlobalLock {
    _lock: Flock<File>,
}

impl GlobalLock {
    /// Blocks until this process holds the harness-wide lock.
    pub(crate) fn acquire() -> Result<Self> {
        fs::create_dir_all(RUN_DIR).with_context(|| format!("creating {RUN_DIR}"))?;
        let path = Path::new(RUN_DIR).join("global.lock");
        let file = open_lock_file(&path)?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("flock {}", path.display()))?;
        Ok(GlobalLock { _lock: lock })
    }
}

/// An owned slot; dropping it (or dying) frees it for others.
pub(crate) struct Slot {
    idx: u8,
    path: PathBuf,
    lock: Flock<File>,
}

impl Slot {
    /// The slot index (bridge `hyb<idx>`, subnet `10.213.<idx>.0/24`).
    pub(crate) fn idx(&self) -> u8 {
        self.idx
    }

    /// Claims the lowest free slot. While scanning, every slot whose owner
    /// is gone but whose network is still present is cleaned up. The caller
    /// must hold the [`GlobalLock`].
    pub(crate) fn allocate(_global: &GlobalLock) -> Result<Slot> {
        let present = net::Present::scan()?;
        let me = Owner::current()?;
        let mut chosen: Option<Slot> = None;
        for idx in 0..=MAX_SLOT {
            let path = Path::new(RUN_DIR).join(format!("slot-{idx}.lock"));
            let file = open_lock_file(&path)?;
            let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, Errno::EWOULDBLOCK)) => continue, // a live owner holds it
                Err((_, e)) => return Err(e).with_context(|| format!("flock {}", path.display())),
            };
            let previous = read_owner(&mut lock);
            if let Some(prev) = previous {
                // Belt and braces: a live foreign owner whose lock we could
                // still take (lock file replaced under it) keeps its slot.
                if prev != me && prev.is_alive() {
                    continue;
                }
            }
            if present.has_slot(idx) {
                tracing::info!(slot = idx, owner = ?previous, "reclaiming leftover cluster network");
                if let Err(e) = net::remove(idx, &present) {
                    // Unusable for now; another slot will do.
                    eprintln!("hyphae-harness: could not reclaim slot {idx}: {e:#}");
                    continue;
                }
            }
            if chosen.is_none() {
                write_owner(&mut lock, &me)
                    .with_context(|| format!("recording owner in {}", path.display()))?;
                chosen = Some(Slot { idx, path, lock });
            }
        }
        match chosen {
            Some(slot) => Ok(slot),
            None => bail!(
                "all {} harness slots are in use (see {RUN_DIR}/slot-*.lock for owner pids)",
                u16::from(MAX_SLOT) + 1
            ),
        }
    }

    /// Frees the slot: clears the owner record, then unlocks.
    pub(crate) fn release(self) -> Result<()> {
        self.lock
            .set_len(0)
            .with_context(|| format!("clearing {}", self.path.display()))?;
        Ok(())
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))
}

/// Identity of an owning process: pid plus its start time (clock ticks
/// since boot), so a recycled pid is not mistaken for the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    pid: i32,
    start: u64,
}

impl Owner {
    fn current() -> Result<Self> {
        let pid = std::process::id() as i32;
        let start = process_start_time(pid)
            .with_context(|| format!("reading start time of own pid {pid}"))?;
        Ok(Owner { pid, start })
    }

    fn is_alive(&self) -> bool {
        process_start_time(self.pid).is_ok_and(|s| s == self.start)
    }
}

/// Field 22 of `/proc/<pid>/stat`; the command name (field 2) may contain
/// spaces and parentheses, so fields are counted after the last `)`.
fn process_start_time(pid: i32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    // After ')' come fields 3.. ; starttime is field 22 => index 19.
    rest.split_whitespace()
        .nth(19)
        .context("short /proc stat")?
        .parse()
        .context("bad starttime in /proc stat")
}

fn read_owner(file: &mut File) -> Option<Owner> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    let mut it = s.split_whitespace();
    let pid = it.next()?.parse().ok()?;
    let start = it.next()?.parse().ok()?;
    Some(Owner { pid, start })
}

fn write_owner(file: &mut File, owner: &Owner) -> Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{} {}", owner.pid, owner.start)?;
    file.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_recycled_pid_is_not() {
        let me = Owner::current().unwrap();
        assert!(me.is_alive());
        let fake = Owner {
            start: me.start + 1,
            ..me
        };
        assert!(!fake.is_alive());
    }

    /// Leftovers of a dead owner (bridge, namespace with a process in it,
    /// veth) are removed by the next allocation. Uses the top slot, which
    /// concurrent tests never reach, and needs root.
    #[test]
    fn allocation_reclaims_leftovers_of_dead_owner() {
        use std::process::Command;
        let idx = MAX_SLOT;
        let global = GlobalLock::acquire().unwrap();
        // A pid that is certainly dead: a reaped child.
        let mut dead = Command::new("true").spawn().unwrap();
        dead.wait().unwrap();
        let path = Path::new(RUN_DIR).join(format!("slot-{idx}.lock"));
        fs::write(&path, format!("{} 1\n", dead.id())).unwrap();

        let (br, ns, veth) = (
            net::bridge_name(idx),
            net::netns_name(idx, 0),
            net::host_veth_name(idx, 0),
        );
        crate::ip(&["link", "add", &br, "type", "bridge"]).unwrap();
        crate::ip(&["netns", "add", &ns]).unwrap();
        crate::ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])
        .unwrap();
        let mut orphan = Command::new("ip")
            .args(["netns", "exec", &ns, "sleep", "600"])
            .spawn()
            .unwrap();
        crate::wait_until(std::time::Duration::from_secs(5), "orphan in netns", || {
            Ok(!crate::ip(&["netns", "pids", &ns])?.stdout.trim().is_empty())
        })
        .unwrap();

        let slot = Slot::allocate(&global).unwrap();
        let present = net::Present::scan().unwrap();
        assert!(!present.has_slot(idx), "leftovers survived: {present:?}");
        let status = orphan.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert_ne!(slot.idx(), idx);
        slot.release().unwrap();
    }
}
