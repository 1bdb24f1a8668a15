//! Enforcing the scheduler's throttle: a CPU quota on QEMU's vCPU threads through a per-VM
//! cgroup. QEMU's own `cpu-throttle-*` knobs act only during a migration; a CFS quota works
//! at any time. cgroup v2 (`cpu.max` on a threaded child holding the vCPU threads) is used
//! where the unified hierarchy offers the `cpu` controller, else the cgroup v1 `cpu`
//! controller (`cpu.cfs_quota_us` / `cpu.cfs_period_us`, threads written to `tasks`). Under
//! systemd the cgroups live in the unit's delegated subtree (`Delegate=cpu`); otherwise
//! (`hyphae node`, tests) under a hyphae-owned directory `hyphae/memrep-<node>` of the
//! hierarchy. Where neither works, [`probe`] says why and the throttle is shown as
//! unavailable, never pretended.
//!
//! The parsing of `/proc/self/mountinfo` and `/proc/self/cgroup` and the quota arithmetic are
//! plain functions tested without a cgroup file system; the file writes are at the edges.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// The CFS period used for every VM cgroup (100 ms, the kernel's default).
pub const PERIOD_US: u64 = 100_000;

/// Which cgroup interface enforces the quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// The legacy `cpu` controller hierarchy.
    V1,
    /// The unified hierarchy with the `cpu` controller.
    V2,
}

impl CgroupVersion {
    /// `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

/// Why a cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup file could not be read or written.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Neither cgroup v2 with `cpu` nor the v1 `cpu` controller can be used.
    #[error("CPU throttling unavailable: {0}")]
    Unavailable(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A cgroup file system mount as `/proc/self/mountinfo` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// v1 (`cgroup`) or v2 (`cgroup2`).
    pub version: CgroupVersion,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Which part of the hierarchy the mount shows (`/` unless inside a container).
    pub root: String,
}

/// The cgroup mounts usable for the quota: the v2 mount and the v1 mount carrying `cpu`.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        let version = match r[0] {
            "cgroup2" => CgroupVersion::V2,
            "cgroup" if r[2].split(',').any(|o| o == "cpu") => CgroupVersion::V1,
            _ => continue,
        };
        out.push(CgroupMount {
            version,
            mount_point: PathBuf::from(unescape_mount(l[4])),
            root: unescape_mount(l[3]),
        });
    }
    out
}

/// mountinfo escapes spaces and a few other bytes as `\NNN` (octal).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|oct| u8::from_str_radix(oct, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup path in the hierarchy of `version` (from `/proc/self/cgroup`).
pub fn own_cgroup(text: &str, version: CgroupVersion) -> Option<String> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let hier = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let hit = match version {
            CgroupVersion::V2 => hier == "0" && controllers.is_empty(),
            CgroupVersion::V1 => controllers.split(',').any(|c| c == "cpu"),
        };
        hit.then(|| path.to_string())
    })
}

/// The directory of cgroup `path` under `mount` (a path outside the mount's root is not
/// reachable from here).
pub fn cgroup_dir(mount: &CgroupMount, path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" {
        path
    } else {
        let rest = path.strip_prefix(mount.root.as_str())?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        rest
    };
    let rel = rel.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(if rel.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(rel)
    })
}

/// The CFS quota (µs per [`PERIOD_US`]) that leaves the vCPUs `100 - throttle_pct` percent of
/// `vcpus` CPUs; `None` means unlimited (no throttle). Never below 1 ms, the kernel's floor.
pub fn quota_us(throttle_pct: u8, vcpus: u32) -> Option<u64> {
    if throttle_pct == 0 {
        return None;
    }
    let keep = 100u64.saturating_sub(u64::from(throttle_pct.min(100)));
    Some((PERIOD_US * u64::from(vcpus.max(1)) * keep / 100).max(1_000))
}

/// What a VM cgroup has applied, for status.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct AppliedQuota {
    /// The throttle the quota implements (percent of CPU taken away).
    pub throttle_pct: u8,
    /// `cpu.max` form: `max 100000` or `QUOTA 100000`.
    pub cpu_max: String,
}

/// Where per-VM cgroups are made; found by [`probe`].
#[derive(Debug, Clone)]
pub struct ThrottleRoot {
    /// The interface in use.
    pub version: CgroupVersion,
    /// The directory holding `vm-<name>` cgroups.
    pub dir: PathBuf,
    /// The same directory as a cgroup path in its hierarchy (as `/proc/PID/cgroup` shows it),
    /// valid in every mount namespace.
    pub hierarchy_path: String,
    /// Whether it is a systemd-delegated subtree (else hyphae-owned).
    pub delegated: bool,
    /// A cgroup file system memrep mounted itself (none was mounted in its mount namespace,
    /// as under `ip netns exec`, which remounts /sys); unmounted by [`ThrottleRoot::remove`].
    pub own_mount: Option<PathBuf>,
}

/// The cgroup path of `dir` in the hierarchy that `mount` shows.
fn hierarchy_path(mount: &CgroupMount, dir: &Path) -> String {
    let rel = dir
        .strip_prefix(&mount.mount_point)
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = mount.root.trim_end_matches('/');
    if rel.is_empty() {
        if root.is_empty() {
            "/".into()
        } else {
            root.into()
        }
    } else {
        format!("{root}/{rel}")
    }
}

/// Mounts the hierarchy of `version` (v1: the `cpu` controller) at `at`.
fn mount_hierarchy(version: CgroupVersion, at: &Path) -> Result<CgroupMount, CgroupError> {
    use std::ffi::CString;
    std::fs::create_dir_all(at).map_err(io(at))?;
    let target = CString::new(at.as_os_str().as_encoded_bytes())
        .map_err(|_| CgroupError::Unavailable("mount point has a NUL byte".into()))?;
    let (fstype, data) = match version {
        CgroupVersion::V1 => (c"cgroup", Some(c"cpu")),
        CgroupVersion::V2 => (c"cgroup2", None),
    };
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data.map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        let _ = std::fs::remove_dir(at);
        return Err(CgroupError::Io {
            path: at.display().to_string(),
            source: e,
        });
    }
    Ok(CgroupMount {
        version,
        mount_point: at.to_path_buf(),
        root: "/".into(),
    })
}

fn unmount(at: &Path) {
    if let Ok(target) = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()) {
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = std::fs::remove_dir(at);
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(io(path))
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io(path))
}

/// A systemd service of ours (Type=notify) with its own cgroup to delegate; a process that
/// merely inherited systemd's variables (a test run from a unit) is not one.
fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() && std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Finds where VM cgroups can be made: the unit's delegated subtree under systemd, else
/// `hyphae/memrep-<node_tag>` at the top of the hierarchy (made while a VM runs). Where no
/// cgroup file system is mounted in this mount namespace, memrep mounts one under
/// `mount_dir`. Stale `vm-*` cgroups from a previous run (kill -9) are removed.
pub fn probe(node_tag: &str, mount_dir: &Path) -> Result<ThrottleRoot, CgroupError> {
    let mountinfo = read(Path::new("/proc/self/mountinfo"))?;
    let own = read(Path::new("/proc/self/cgroup"))?;
    let mounts = parse_mountinfo(&mountinfo);
    let mut why = Vec::new();
    for version in [CgroupVersion::V2, CgroupVersion::V1] {
        let Some(mount) = mounts.iter().find(|m| m.version == version) else {
            why.push(format!("no cgroup {} mount with cpu", version.as_str()));
            continue;
        };
        match prepare(mount, &own, node_tag) {
            Ok(root) => {
                remove_stale(&root);
                return Ok(root);
            }
            Err(e) => why.push(format!("{}: {e}", version.as_str())),
        }
    }
    if mounts.is_empty() && !under_systemd() {
        for version in [CgroupVersion::V2, CgroupVersion::V1] {
            let at = mount_dir.join(format!("cgroup-{}", version.as_str()));
            let mount = match mount_hierarchy(version, &at) {
                Ok(m) => m,
                Err(e) => {
                    why.push(format!("mounting {}: {e}", version.as_str()));
                    continue;
                }
            };
            match prepare(&mount, &own, node_tag) {
                Ok(mut root) => {
                    root.own_mount = Some(at);
                    remove_stale(&root);
                    return Ok(root);
                }
                Err(e) => {
                    why.push(format!("{} (own mount): {e}", version.as_str()));
                    unmount(&at);
                }
            }
        }
    }
    Err(CgroupError::Unavailable(why.join("; ")))
}

fn prepare(mount: &CgroupMount, own: &str, node_tag: &str) -> Result<ThrottleRoot, CgroupError> {
    let version = mount.version;
    let delegated = under_systemd();
    let dir = if delegated {
        let path = own_cgroup(own, version)
            .ok_or_else(|| CgroupError::Unavailable("not in a cpu cgroup".into()))?;
        cgroup_dir(mount, &path)
            .ok_or_else(|| CgroupError::Unavailable(format!("{path} not under the mount")))?
    } else {
        mount
            .mount_point
            .join("hyphae")
            .join(format!("memrep-{node_tag}"))
    };
    if version == CgroupVersion::V2 {
        let parent = if delegated {
            dir.clone()
        } else {
            mount.mount_point.clone()
        };
        let controllers = read(&parent.join("cgroup.controllers"))?;
        if !controllers.split_whitespace().any(|c| c == "cpu") {
            return Err(CgroupError::Unavailable(format!(
                "the cpu controller is not available in {}",
                parent.display()
            )));
        }
        if delegated {
            // No internal processes in v2: memrep itself moves to a leaf before the subtree
            // gets the cpu controller.
            let leaf = dir.join("memrep");
            std::fs::create_dir_all(&leaf).map_err(io(&leaf))?;
            write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
            write(&dir.join("cgroup.subtree_control"), "+cpu")?;
        }
    } else {
        // The quota files must be there: the cpu controller is attached to this hierarchy
        // and the kernel has CFS bandwidth control.
        read(&mount.mount_point.join("cpu.cfs_quota_us"))?;
    }
    Ok(ThrottleRoot {
        version,
        hierarchy_path: hierarchy_path(mount, &dir),
        dir,
        delegated,
        own_mount: None,
    })
}

/// Removes `vm-*` cgroups a killed run left behind, then the hyphae-owned base if empty.
fn remove_stale(root: &ThrottleRoot) {
    if let Ok(entries) = std::fs::read_dir(&root.dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("vm-") && e.path().is_dir() {
                tracing::info!(cgroup = %e.path().display(), "removing a stale VM cgroup");
                remove_tree(&e.path());
            }
        }
    }
    root.release_base();
}

/// Removes what a killed node (`hyphae node`, not under systemd) left in the hierarchies this
/// process sees: `hyphae/memrep-<node_tag>` with its VM cgroups (empty once QEMU is gone), and
/// `hyphae` if nothing else is in it. For tests and operators cleaning up after a kill -9.
pub fn remove_node_leftovers(node_tag: &str) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for m in parse_mountinfo(&mountinfo) {
        let hyphae = m.mount_point.join("hyphae");
        let base = hyphae.join(format!("memrep-{node_tag}"));
        if base.is_dir() {
            remove_tree(&base);
        }
        let _ = std::fs::remove_dir(&hyphae);
    }
}

/// Removes a cgroup directory and its child cgroups (deepest first). Only empty cgroups can
/// be removed; a thread that is exiting may keep one busy for a moment, so this retries.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    tracing::warn!(cgroup = %dir.display(), "could not remove a VM cgroup");
}

impl ThrottleRoot {
    /// Removes the hyphae-owned directories (if empty) and memrep's own mount (at service
    /// stop).
    pub fn remove(&self) {
        self.release_base();
        if let Some(at) = &self.own_mount {
            unmount(at);
        }
    }

    /// Makes the hyphae-owned directory (`hyphae/memrep-<node>`) with the cpu controller on
    /// for its children. It exists only while a VM runs, so a node killed without a VM
    /// leaves nothing behind. A sibling node removing the shared `hyphae` directory at the
    /// same moment is retried once.
    fn ensure_base(&self) -> Result<(), CgroupError> {
        if self.delegated {
            return Ok(());
        }
        let mut last = Ok(());
        for _ in 0..2 {
            last = self.try_base();
            if last.is_ok() {
                break;
            }
        }
        last
    }

    fn try_base(&self) -> Result<(), CgroupError> {
        match self.version {
            CgroupVersion::V1 => std::fs::create_dir_all(&self.dir).map_err(io(&self.dir)),
            CgroupVersion::V2 => {
                let hyphae = self.dir.parent().unwrap_or(&self.dir);
                let top = hyphae.parent().unwrap_or(hyphae);
                write(&top.join("cgroup.subtree_control"), "+cpu")?;
                std::fs::create_dir_all(hyphae).map_err(io(hyphae))?;
                write(&hyphae.join("cgroup.subtree_control"), "+cpu")?;
                std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
                write(&self.dir.join("cgroup.subtree_control"), "+cpu")
            }
        }
    }

    /// Removes the hyphae-owned directories if no VM cgroup is left in them.
    fn release_base(&self) {
        if !self.delegated {
            let _ = std::fs::remove_dir(&self.dir);
            if let Some(parent) = self.dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }

    /// Makes the cgroup of VM `name`, holding the QEMU `pid` (v2) and its vCPU threads
    /// `vcpu_tids`, with no quota yet.
    pub fn create(
        &self,
        name: &str,
        pid: u32,
        vcpu_tids: &[u32],
        vcpus: u32,
    ) -> Result<VmCgroup, CgroupError> {
        let dir = self.dir.join(format!("vm-{name}"));
        let hierarchy_path = format!("{}/vm-{name}", self.hierarchy_path.trim_end_matches('/'));
        if dir.exists() {
            remove_tree(&dir);
        }
        self.ensure_base()?;
        if let Err(e) = std::fs::create_dir(&dir) {
            self.release_base();
            return Err(io(&dir)(e));
        }
        // From here on, dropping `cg` removes the directory again.
        let cg = VmCgroup {
            version: self.version,
            root: self.clone(),
            hierarchy_path,
            vm_dir: dir.clone(),
            quota_dir: match self.version {
                CgroupVersion::V1 => dir.clone(),
                CgroupVersion::V2 => dir.join("vcpus"),
            },
            vcpus,
            applied: AppliedQuota {
                throttle_pct: 0,
                cpu_max: format!("max {PERIOD_US}"),
            },
        };
        match self.version {
            CgroupVersion::V1 => {
                write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                write(&dir.join("cpu.cfs_quota_us"), "-1")?;
                for t in vcpu_tids {
                    write(&dir.join("tasks"), &t.to_string())?;
                }
            }
            CgroupVersion::V2 => {
                // The process in the VM's domain cgroup, its vCPU threads in a threaded child.
                write(&dir.join("cgroup.procs"), &pid.to_string())?;
                std::fs::create_dir(&cg.quota_dir).map_err(io(&cg.quota_dir))?;
                write(&cg.quota_dir.join("cgroup.type"), "threaded")?;
                write(&dir.join("cgroup.subtree_control"), "+cpu")?;
                write(&cg.quota_dir.join("cpu.max"), &format!("max {PERIOD_US}"))?;
                for t in vcpu_tids {
                    write(&cg.quota_dir.join("cgroup.threads"), &t.to_string())?;
                }
            }
        }
        Ok(cg)
    }
}

/// One VM's cgroup; dropping it removes the directory (QEMU must be gone by then, or its
/// threads keep the cgroup busy until they exit: removal retries for a second).
#[derive(Debug)]
pub struct VmCgroup {
    version: CgroupVersion,
    root: ThrottleRoot,
    hierarchy_path: String,
    vm_dir: PathBuf,
    quota_dir: PathBuf,
    vcpus: u32,
    applied: AppliedQuota,
}

impl VmCgroup {
    /// Sets the quota for `throttle_pct`; a no-op if it is already applied.
    pub fn apply(&mut self, throttle_pct: u8) -> Result<&AppliedQuota, CgroupError> {
        if throttle_pct == self.applied.throttle_pct {
            return Ok(&self.applied);
        }
        let quota = quota_us(throttle_pct, self.vcpus);
        let cpu_max = match quota {
            Some(q) => format!("{q} {PERIOD_US}"),
            None => format!("max {PERIOD_US}"),
        };
        match self.version {
            CgroupVersion::V1 => {
                let v = quota.map_or("-1".to_string(), |q| q.to_string());
                write(&self.quota_dir.join("cpu.cfs_quota_us"), &v)?;
            }
            CgroupVersion::V2 => write(&self.quota_dir.join("cpu.max"), &cpu_max)?,
        }
        self.applied = AppliedQuota {
            throttle_pct,
            cpu_max,
        };
        Ok(&self.applied)
    }

    /// What is applied now.
    pub fn applied(&self) -> &AppliedQuota {
        &self.applied
    }

    /// The interface in use.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The VM's cgroup directory.
    pub fn dir(&self) -> &Path {
        &self.vm_dir
    }

    /// The VM's cgroup as a path in its hierarchy (what `/proc/PID/cgroup` shows).
    pub fn hierarchy_path(&self) -> &str {
        &self.hierarchy_path
    }

    /// The quota as the kernel reports it, read back from the cgroup (`QUOTA PERIOD` or
    /// `max PERIOD`), and the thread ids in it.
    pub fn read_back(&self) -> Result<(String, Vec<u32>), CgroupError> {
        let (quota, tasks) = match self.version {
            CgroupVersion::V1 => {
                let q = read(&self.quota_dir.join("cpu.cfs_quota_us"))?;
                let p = read(&self.quota_dir.join("cpu.cfs_period_us"))?;
                let q = q.trim();
                let q = if q == "-1" { "max" } else { q };
                (format!("{q} {}", p.trim()), "tasks")
            }
            CgroupVersion::V2 => (
                read(&self.quota_dir.join("cpu.max"))?.trim().to_string(),
                "cgroup.threads",
            ),
        };
        let tids = read(&self.quota_dir.join(tasks))?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        Ok((quota, tids))
    }
}

impl Drop for VmCgroup {
    fn drop(&mut self) {
        remove_tree(&self.vm_dir);
        self.root.release_base();
    }
}

/// The vCPU thread ids of a `query-cpus-fast` answer (deduplicated: single-threaded TCG runs
/// every vCPU on one thread).
pub fn vcpu_threads(answer: &serde_json::Value) -> Vec<u32> {
    let mut out: Vec<u32> = answer
        .as_array()
        .map(|cpus| {
            cpus.iter()
                .filter_map(|c| c.get("thread-id")?.as_u64())
                .filter_map(|t| u32::try_from(t).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 1 0:23 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:24 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:25 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
28 25 0:26 /ctr /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
29 25 0:27 / /sys/fs/cgroup/cpu\\040x rw - cgroup cgroup rw,cpuset
";

    #[test]
    fn mountinfo_finds_the_v1_cpu_and_the_v2_mounts() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].version, CgroupVersion::V1);
        assert_eq!(m[0].mount_point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(m[1].version, CgroupVersion::V2);
        assert_eq!(m[1].root, "/ctr");
        assert!(parse_mountinfo("garbage\n\n1 2 3 - x").is_empty());
        assert_eq!(unescape_mount("a\\040b"), "a b");
        assert_eq!(unescape_mount("trail\\04"), "trail\\04");
    }

    #[test]
    fn own_cgroup_per_version_and_dir_under_the_mount_root() {
        let own = "4:memory:/x\n1:cpu,cpuacct:/system.slice/hyphae-memrep.service\n0::/ctr/svc\n";
        assert_eq!(
            own_cgroup(own, CgroupVersion::V1).as_deref(),
            Some("/system.slice/hyphae-memrep.service")
        );
        assert_eq!(
            own_cgroup(own, CgroupVersion::V2).as_deref(),
            Some("/ctr/svc")
        );
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            cgroup_dir(&m[1], "/ctr/svc"),
            Some(PathBuf::from("/sys/fs/cgroup/unified/svc"))
        );
        assert_eq!(cgroup_dir(&m[1], "/other"), None);
        assert_eq!(cgroup_dir(&m[1], "/ctrx"), None);
        assert_eq!(cgroup_dir(&m[0], "/../etc"), None);
        assert_eq!(
            cgroup_dir(&m[0], "/"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu"))
        );
    }

    #[test]
    fn hierarchy_paths_from_mount_points() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            hierarchy_path(&m[0], Path::new("/sys/fs/cgroup/cpu/hyphae/x")),
            "/hyphae/x"
        );
        assert_eq!(hierarchy_path(&m[0], Path::new("/sys/fs/cgroup/cpu")), "/");
        assert_eq!(
            hierarchy_path(&m[1], Path::new("/sys/fs/cgroup/unified/a")),
            "/ctr/a"
        );
    }

    #[test]
    fn quota_leaves_the_rest_of_the_cpus() {
        assert_eq!(quota_us(0, 2), None);
        assert_eq!(quota_us(20, 1), Some(80_000));
        assert_eq!(quota_us(50, 2), Some(100_000));
        assert_eq!(quota_us(100, 1), Some(1_000));
        assert_eq!(quota_us(255, 1), Some(1_000));
        assert_eq!(quota_us(95, 0), Some(5_000));
    }

    #[test]
    fn vcpu_threads_from_query_cpus_fast() {
        let v = serde_json::json!([
            {"cpu-index": 0, "thread-id": 42, "target": "x86_64"},
            {"cpu-index": 1, "thread-id": 42},
            {"cpu-index": 2, "thread-id": 7},
            {"cpu-index": 3}
        ]);
        assert_eq!(vcpu_threads(&v), vec![7, 42]);
        assert!(vcpu_threads(&serde_json::json!({"no": "array"})).is_empty());
    }
}
