//! The `/init` of memrep's cgroup v2 test guest (`guest/build-cgroup-v2.sh`,
//! `tests/qemu_cgroup_v2.rs`). Our CI hosts have only cgroup v1's `cpu` controller, so the v2
//! path of [`hyphae_memrep::cgroup_throttle`] is proven inside a small Linux guest whose kernel
//! has the unified hierarchy: this program mounts `cgroup2` at `/sys/fs/cgroup`, starts a QEMU
//! (TCG, inside the guest) and throttles it with memrep's own code — the same `probe`,
//! `QemuProcess::start`, `VmThrottle::start` (vCPU threads found through QMP), `apply` and
//! `finish` the service uses. It reports on the serial console, one `cg2 KEY VALUE...` line per
//! fact, what the kernel says (`cpu.max` read back, `cpu.stat` usage and throttling over
//! measured windows, the cgroups left at the end), then powers the guest off. The host test
//! parses and judges; this program asserts nothing itself, so a failure shows up as a wrong
//! figure, not a hang.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;

use hyphae_memrep::accel::Accel;
use hyphae_memrep::cgroup_throttle::{self, CgroupVersion};
use hyphae_memrep::qemu::{InstancePaths, Launch, QemuProcess, VmSpec};
use hyphae_memrep::vm_throttle::{ThrottleEnv, ThrottleMetrics, VmThrottle};

/// The throttle asked for: 80 % taken away, so the quota is 20 % of one CPU.
const THROTTLE_PCT: u8 = 80;
/// How long the throttled window lasts.
const WINDOW: Duration = Duration::from_secs(3);
/// How long the window after the release lasts.
const RELEASED_WINDOW: Duration = Duration::from_millis(800);

fn main() {
    if std::process::id() == 1 {
        init_mounts();
    }
    report();
    println!("cg2 end");
    let _ = std::io::stdout().flush();
    if std::process::id() == 1 {
        // SAFETY: plain system calls; as PID 1 the guest has nothing else to stop.
        unsafe {
            libc::sync();
            libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
        }
    }
}

fn mount(fstype: &str, target: &str) {
    let _ = std::fs::create_dir_all(target);
    let (Ok(t), Ok(f)) = (
        std::ffi::CString::new(target),
        std::ffi::CString::new(fstype),
    ) else {
        return;
    };
    // SAFETY: valid NUL-terminated strings that outlive the call.
    let rc = unsafe { libc::mount(f.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        println!(
            "cg2 mount-failed {fstype} {target} {}",
            std::io::Error::last_os_error()
        );
    }
}

/// What an init must do before anything else: /dev (for the console), /proc, /sys and the
/// unified cgroup hierarchy at its usual place.
fn init_mounts() {
    mount("devtmpfs", "/dev");
    if let Ok(console) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    {
        use std::os::fd::AsRawFd;
        // SAFETY: duplicating a descriptor we own onto the standard ones.
        unsafe {
            libc::dup2(console.as_raw_fd(), 0);
            libc::dup2(console.as_raw_fd(), 1);
            libc::dup2(console.as_raw_fd(), 2);
        }
    }
    mount("proc", "/proc");
    mount("sysfs", "/sys");
    mount("cgroup2", "/sys/fs/cgroup");
    mount("tmpfs", "/run");
    mount("tmpfs", "/dev/shm");
}

/// `cpu.stat` of a cgroup as `(key, value)` pairs.
fn cpu_stat(dir: &Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(dir.join("cpu.stat"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn stat_of(stat: &[(String, u64)], key: &str) -> u64 {
    stat.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or(0)
}

/// One measured window: the deltas of `cpu.stat` over `length` and the elapsed time.
async fn window(label: &str, quota_dir: &Path, length: Duration) {
    let (t0, s0) = (Instant::now(), cpu_stat(quota_dir));
    tokio::time::sleep(length).await;
    let (elapsed, s1) = (t0.elapsed(), cpu_stat(quota_dir));
    let d = |k: &str| stat_of(&s1, k).saturating_sub(stat_of(&s0, k));
    println!(
        "cg2 window {label} elapsed_us={} usage_usec={} nr_periods={} nr_throttled={} throttled_usec={}",
        elapsed.as_micros(),
        d("usage_usec"),
        d("nr_periods"),
        d("nr_throttled"),
        d("throttled_usec"),
    );
}

/// Every cgroup (directory) below `top`, as paths relative to it.
fn cgroups_below(top: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![top.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let p = e.path();
                out.push(
                    p.strip_prefix(top)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .into_owned(),
                );
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn report() {
    let top = PathBuf::from("/sys/fs/cgroup");
    println!(
        "cg2 kernel {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "cg2 controllers {}",
        std::fs::read_to_string(top.join("cgroup.controllers"))
            .unwrap_or_default()
            .trim()
    );
    let root = match cgroup_throttle::probe("guest", Path::new("/run/memrep")) {
        Ok(r) => r,
        Err(e) => {
            println!("cg2 probe-failed {e}");
            return;
        }
    };
    println!(
        "cg2 probe version={} dir={} hierarchy_path={} own_mount={}",
        root.version.as_str(),
        root.dir.display(),
        root.hierarchy_path,
        root.own_mount.is_some()
    );
    if root.version != CgroupVersion::V2 {
        return;
    }
    let root = Arc::new(root);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            println!("cg2 error runtime: {e}");
            return;
        }
    };
    runtime.block_on(throttled_qemu(root.clone()));
    root.remove();
    println!("cg2 left {:?}", cgroups_below(&top));
}

/// A QEMU (TCG, booting the guest's own kernel, which keeps its vCPU thread busy for
/// minutes at this depth of emulation) started and throttled exactly as the service does:
/// `QemuProcess::start`, `VmThrottle::start` (vCPU threads from QMP `query-cpus-fast`),
/// `VmThrottle::apply`, `QemuProcess::shutdown`, `VmThrottle::finish`.
async fn throttled_qemu(root: Arc<cgroup_throttle::ThrottleRoot>) {
    let spec = VmSpec {
        name: "inner".into(),
        kernel: Some(PathBuf::from("/vmlinuz")),
        initrd: None,
        append: "console=ttyS0".into(),
        mem_mib: 32,
        vcpus: 1,
        disk: None,
    };
    let _ = std::fs::create_dir_all("/dev/shm");
    let launch = Launch {
        paths: InstancePaths::new(Path::new("/dev/shm"), Path::new("/run"), "inner", "g1"),
        spec,
        accel: Accel::Tcg,
        incoming: false,
        owns_ram: true,
    };
    let mut q = match QemuProcess::start(launch).await {
        Ok(q) => q,
        Err(e) => {
            println!("cg2 error qemu: {e}");
            return;
        }
    };
    let pid = q.pid().unwrap_or(0);
    let env = ThrottleEnv {
        root: Ok(root.clone()),
        metrics: ThrottleMetrics::default(),
    };
    let mut t = VmThrottle::start(&env, "inner", &mut q).await;
    let vm_dir = root.dir.join("vm-inner");
    let quota_dir = vm_dir.join("vcpus");
    let threads = || read_trim(&quota_dir.join("cgroup.threads")).replace('\n', ",");
    println!(
        "cg2 qemu pid={pid} throttle={} all_threads={}",
        t.description,
        task_ids(pid)
    );
    println!(
        "cg2 created {} type={} procs={} vcpus_type={}",
        t.description.strip_prefix("v2 ").unwrap_or(&t.description),
        read_trim(&vm_dir.join("cgroup.type")),
        read_trim(&vm_dir.join("cgroup.procs")).replace('\n', ","),
        read_trim(&quota_dir.join("cgroup.type")),
    );
    println!(
        "cg2 unlimited cpu_max={} threads={}",
        read_trim(&quota_dir.join("cpu.max")),
        threads()
    );
    // No unthrottled window first: the kernel this QEMU boots lives only ~2.5 CPU-seconds
    // under nested TCG with `-cpu max` (it resets early in its start-up, and `-no-reboot`
    // ends QEMU), so the quota goes on at once and the unthrottled figures come from a short
    // window after the release (~1.5 CPU-seconds used in all).
    match t.apply(THROTTLE_PCT) {
        Some(a) => println!(
            "cg2 applied throttle_pct={} cpu_max={} kernel_cpu_max={} threads={}",
            a.throttle_pct,
            a.cpu_max,
            read_trim(&quota_dir.join("cpu.max")),
            threads()
        ),
        None => println!("cg2 error apply: {}", t.description),
    }
    window("throttled", &quota_dir, WINDOW).await;
    match t.apply(0) {
        Some(a) => println!(
            "cg2 released cpu_max={} kernel_cpu_max={}",
            a.cpu_max,
            read_trim(&quota_dir.join("cpu.max"))
        ),
        None => println!("cg2 error release: {}", t.description),
    }
    window("released", &quota_dir, RELEASED_WINDOW).await;
    let serial = std::fs::read_to_string(&q.launch.paths.serial).unwrap_or_default();
    let tail: String = serial
        .chars()
        .rev()
        .take(400)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    println!(
        "cg2 qemu-state exited={:?} all_threads={} stderr={:?} console_tail={:?}",
        q.exited(),
        task_ids(pid),
        q.stderr_tail(),
        tail
    );
    // As the runner does: QEMU goes first, then its cgroup.
    q.shutdown().await;
    t.finish().await;
    println!("cg2 removed vm_dir_exists={}", vm_dir.exists());
}

/// The thread ids of process `pid`, comma-separated.
fn task_ids(pid: u32) -> String {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    tids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}
