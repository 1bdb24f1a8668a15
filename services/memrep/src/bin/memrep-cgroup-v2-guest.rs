//! The `/init` of memrep's cgroup v2 test guest (`guest/build-cgroup-v2.sh`,
//! `tests/qemu_cgroup_v2.rs`). Our CI hosts have only cgroup v1's `cpu` controller, so the v2
//! path of [`hyphae_memrep::cgroup_throttle`] is proven inside a small Linux guest whose kernel
//! has the unified hierarchy: this program mounts `cgroup2` at `/sys/fs/cgroup`, starts a
//! CPU-burning process (a main thread that idles, like QEMU's main loop, and a few burning
//! threads standing in for vCPU threads), and puts it under memrep's own cgroup code — the
//! same `probe`, `ThrottleRoot::create`, `VmCgroup::apply`/`read_back` and drop the service
//! uses. It reports on the serial console, one `cg2 KEY VALUE...` line per fact, what the
//! kernel says (`cpu.max` read back, `cpu.stat` usage and throttling over a measured window,
//! the cgroups left at the end), then powers the guest off. The host test parses and judges;
//! this program asserts nothing itself, so a failure shows up as a wrong figure, not a hang.
//!
//! Run as `memrep-cgroup-v2-guest burn N` it is the burner: N busy threads, forever.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyphae_memrep::cgroup_throttle::{self, CgroupVersion};

/// Burning threads in the throttled process (the stand-ins for vCPU threads).
const BURN_THREADS: usize = 3;
/// The throttle asked for: 80 % taken away, so the quota is 20 % of one CPU.
const THROTTLE_PCT: u8 = 80;
/// How long each measured window lasts.
const WINDOW: Duration = Duration::from_secs(3);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("burn") {
        let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1);
        burn(n);
    }
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

/// The burner: `n` threads spinning, the main thread asleep.
fn burn(n: usize) -> ! {
    for _ in 0..n {
        std::thread::spawn(|| {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
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

/// One measured window: the deltas of `cpu.stat` over [`WINDOW`] and the elapsed time.
fn window(label: &str, quota_dir: &Path) {
    let (t0, s0) = (Instant::now(), cpu_stat(quota_dir));
    std::thread::sleep(WINDOW);
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

/// The threads of process `pid` other than its main thread, once all `want` have started.
fn worker_threads(pid: u32, want: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .filter(|&t| t != pid)
                    .collect()
            })
            .unwrap_or_default();
        if tids.len() >= want || Instant::now() > deadline {
            return tids;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/init"));
    let mut burner = match std::process::Command::new(&exe)
        .args(["burn", &BURN_THREADS.to_string()])
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            println!("cg2 burner-failed {e}");
            return;
        }
    };
    let pid = burner.id();
    let tids = worker_threads(pid, BURN_THREADS);
    println!("cg2 burner pid={pid} threads={tids:?}");
    match throttled(&root, pid, &tids) {
        Ok(()) => {}
        Err(e) => println!("cg2 error {e}"),
    }
    // `throttled` killed the burner and dropped its cgroup; on an early error it is killed here.
    let _ = burner.kill();
    let _ = burner.wait();
    root.remove();
    println!("cg2 left {:?}", cgroups_below(&top));
}

fn throttled(
    root: &cgroup_throttle::ThrottleRoot,
    pid: u32,
    tids: &[u32],
) -> Result<(), cgroup_throttle::CgroupError> {
    let mut cg = root.create("burner", pid, tids, 1)?;
    let vm_dir = cg.dir().to_path_buf();
    let quota_dir = vm_dir.join("vcpus");
    println!(
        "cg2 created {} type={} procs={} vcpus_type={}",
        cg.hierarchy_path(),
        read_trim(&vm_dir.join("cgroup.type")),
        read_trim(&vm_dir.join("cgroup.procs")).replace('\n', ","),
        read_trim(&quota_dir.join("cgroup.type")),
    );
    let (quota, in_cg) = cg.read_back()?;
    println!("cg2 unlimited cpu_max={quota} threads={in_cg:?}");
    window("unlimited", &quota_dir);
    let applied = cg.apply(THROTTLE_PCT)?.clone();
    let (quota, in_cg) = cg.read_back()?;
    println!(
        "cg2 applied throttle_pct={} cpu_max={} kernel_cpu_max={quota} threads={in_cg:?}",
        applied.throttle_pct, applied.cpu_max
    );
    window("throttled", &quota_dir);
    let released = cg.apply(0)?.clone();
    let (quota, _) = cg.read_back()?;
    println!(
        "cg2 released cpu_max={} kernel_cpu_max={quota}",
        released.cpu_max
    );
    window("released", &quota_dir);
    // Kill the burner before the cgroup goes (an occupied cgroup cannot be removed).
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}/task")).exists()
        && !read_trim(&quota_dir.join("cgroup.threads")).is_empty()
        && Instant::now() < deadline
    {
        // Reaped by the caller; here only the threads leaving the cgroup matter.
        std::thread::sleep(Duration::from_millis(10));
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
    }
    drop(cg);
    println!("cg2 removed vm_dir_exists={}", vm_dir.exists());
    Ok(())
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}
