//! The cgroup v2 throttle path, proven on a real kernel. Our CI hosts have only cgroup v1's
//! `cpu` controller (so `qemu_bad_input.rs` and `tests/memrep_throttle.rs` prove the v1 path);
//! here a guest (the test guest's Debian kernel, whose unified hierarchy has the `cpu`
//! controller) boots with `memrep-cgroup-v2-guest` as its /init (`guest/build-cgroup-v2.sh`).
//! It mounts `cgroup2` at /sys/fs/cgroup, starts a real QEMU inside the guest (TCG, booting
//! the same kernel, which keeps its vCPU thread busy) and throttles it with memrep's own code
//! (`QemuProcess::start`, `VmThrottle::start` finding the vCPU thread through QMP, `apply`,
//! `finish`), then reports over the serial console. This test parses the console and asserts:
//! the v2 root was chosen, the VM cgroup is a threaded domain holding QEMU with a threaded
//! `vcpus` child holding QEMU's vCPU thread (not its main thread), the kernel reads back
//! `20000 100000` for an 80 % throttle, `cpu.stat` shows the quota biting (throttled periods,
//! usage about 20 % of the window) and not biting before and after, and no cgroup is left at
//! the end.
//!
//! Needs root (/dev/shm), qemu-system-x86_64, gcc, cpio, binutils (scripts/deps.sh).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyphae_memrep::accel;
use hyphae_memrep::qemu::{InstancePaths, Launch, QemuProcess, VmSpec};

/// The guest's kernel and initramfs (cached like the test guest).
fn cgroup_v2_guest() -> (PathBuf, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest/build-cgroup-v2.sh");
    let program = env!("CARGO_BIN_EXE_memrep-cgroup-v2-guest");
    let out = std::process::Command::new(&script)
        .arg(program)
        .output()
        .expect("run guest/build-cgroup-v2.sh");
    assert!(
        out.status.success(),
        "cgroup v2 guest build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    (dir.join("vmlinuz"), dir.join("initrd.cpio"))
}

/// The value of `key=` in a `cg2 ...` line (up to the next ` key=` or the end).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let pat = format!(" {key}=");
    let Some(start) = line.find(&pat) else {
        return "";
    };
    let rest = &line[start + pat.len()..];
    // Values may hold spaces (`20000 100000`); a value ends where the next `word=` starts.
    let mut end = rest.len();
    for (i, _) in rest.match_indices(' ') {
        let next = &rest[i + 1..];
        let word: String = next.chars().take_while(|c| *c != ' ').collect();
        if word.contains('=') {
            end = i;
            break;
        }
    }
    &rest[..end]
}

fn num(line: &str, key: &str) -> u64 {
    field(line, key)
        .parse()
        .unwrap_or_else(|_| panic!("no number {key}= in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memrep_cgroup_code_throttles_on_a_cgroup_v2_kernel() {
    let (kernel, initrd) = cgroup_v2_guest();
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let name = format!("cg2{}", std::process::id());
    let spec = VmSpec {
        name: name.clone(),
        kernel: Some(kernel),
        initrd: Some(initrd),
        append: "console=ttyS0 quiet panic=-1".into(),
        // The initramfs carries QEMU and its libraries (~60 MB), and that QEMU a 32 MiB guest.
        mem_mib: 512,
        vcpus: 1,
        disk: None,
    };
    let (acc, why) = accel::probe();
    eprintln!("accelerator: {acc:?} ({why})");
    let mut q = QemuProcess::start(Launch {
        paths: InstancePaths::new(shm.path(), dir.path(), &name, "g1"),
        spec,
        accel: acc,
        incoming: false,
        owns_ram: true,
    })
    .await
    .expect("start QEMU");
    let serial = q.launch.paths.serial.clone();
    // TCG on a loaded machine: the kernel boots in 10-90 s, the program then needs ~10 s.
    let deadline = Instant::now() + Duration::from_secs(240);
    let log = loop {
        let log = std::fs::read_to_string(&serial).unwrap_or_default();
        if log.lines().any(|l| l.trim() == "cg2 end") {
            break log;
        }
        let exited = q.exited();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "no report from the guest (QEMU exited: {exited:?}); console: {log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    q.shutdown().await;
    let report: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cg2 "))
        .collect();
    eprintln!("{}", report.join("\n"));
    let line = |prefix: &str| -> &str {
        report
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in the report: {report:#?}"))
    };
    assert!(
        !report.iter().any(|l| l.starts_with("cg2 error")
            || l.starts_with("cg2 probe-failed")
            || l.starts_with("cg2 mount-failed")),
        "{report:#?}"
    );
    assert!(
        line("cg2 controllers").split(' ').any(|c| c == "cpu"),
        "the guest kernel has no cpu controller on cgroup v2"
    );
    let probe = line("cg2 probe");
    assert_eq!(field(probe, "version"), "v2", "{probe}");
    assert_eq!(field(probe, "dir"), "/sys/fs/cgroup/hyphae/memrep-guest");
    assert_eq!(field(probe, "own_mount"), "false");

    let qemu = line("cg2 qemu");
    let pid = field(qemu, "pid");
    assert_eq!(
        field(qemu, "throttle"),
        "v2 /hyphae/memrep-guest/vm-inner",
        "{qemu}"
    );
    let all_threads: Vec<&str> = field(qemu, "all_threads").split(',').collect();
    let created = line("cg2 created");
    assert!(
        created.starts_with("cg2 created /hyphae/memrep-guest/vm-inner "),
        "{created}"
    );
    assert_eq!(field(created, "type"), "domain threaded", "{created}");
    assert_eq!(
        field(created, "procs"),
        pid,
        "the process in the VM's cgroup"
    );
    assert_eq!(field(created, "vcpus_type"), "threaded");
    let unlimited = line("cg2 unlimited");
    assert_eq!(field(unlimited, "cpu_max"), "max 100000");
    // TCG runs every vCPU on one thread: exactly one thread in `vcpus`, one of QEMU's, and not
    // its main thread (the main loop serves QMP and checkpoints: never throttled).
    let threads = field(unlimited, "threads");
    assert!(
        !threads.is_empty() && !threads.contains(','),
        "one vCPU thread: {unlimited}"
    );
    assert!(
        all_threads.contains(&threads),
        "{threads} is not QEMU's: {qemu}"
    );
    assert_ne!(threads, pid, "QEMU's main thread is throttled");

    let applied = line("cg2 applied");
    assert_eq!(field(applied, "throttle_pct"), "80");
    assert_eq!(field(applied, "cpu_max"), "20000 100000");
    assert_eq!(
        field(applied, "kernel_cpu_max"),
        "20000 100000",
        "{applied}"
    );
    assert_eq!(field(applied, "threads"), threads);

    // Released, the vCPU thread takes most of the guest's CPU and is never throttled. (The
    // guest's QEMU lives only a few CPU-seconds: its kernel resets early under nested TCG, so
    // the program throttles at once and measures the unthrottled figures after the release;
    // QEMU must still be running then, or the figures would be about a dead thread.)
    let w = line("cg2 window released");
    assert_eq!(num(w, "nr_throttled"), 0, "{w}");
    assert!(
        num(w, "usage_usec") * 2 > num(w, "elapsed_us"),
        "the vCPU thread did not run: {w}"
    );
    let state = line("cg2 qemu-state");
    assert!(
        state.starts_with("cg2 qemu-state exited=None "),
        "the guest's QEMU ended before the last window: {state}"
    );
    // Throttled to 20 %: throttled in most periods, usage near 20 % of the window (generous:
    // 10-35 %; the first and last period are partial).
    let w = line("cg2 window throttled");
    let (usage, elapsed) = (num(w, "usage_usec"), num(w, "elapsed_us"));
    assert!(num(w, "nr_throttled") > 0, "the quota never bit: {w}");
    assert!(
        num(w, "nr_throttled") * 2 >= num(w, "nr_periods"),
        "throttled in under half of the periods: {w}"
    );
    assert!(
        usage * 10 >= elapsed && usage * 100 <= elapsed * 35,
        "usage {usage} µs over {elapsed} µs is not about 20 %: {w}"
    );
    let released = line("cg2 released");
    assert_eq!(field(released, "kernel_cpu_max"), "max 100000");

    // Removal: the VM's cgroup and the hyphae-owned base are gone, nothing else was made.
    assert_eq!(field(line("cg2 removed"), "vm_dir_exists"), "false");
    assert_eq!(line("cg2 left"), "cg2 left []");
    let left: Vec<_> = std::fs::read_dir(shm.path()).unwrap().collect();
    assert!(left.is_empty(), "files left in /dev/shm: {left:?}");
}

#[test]
fn report_fields_parse() {
    let l = "cg2 applied throttle_pct=80 cpu_max=20000 100000 kernel_cpu_max=20000 100000 threads=[1, 2]";
    assert_eq!(field(l, "cpu_max"), "20000 100000");
    assert_eq!(field(l, "kernel_cpu_max"), "20000 100000");
    assert_eq!(field(l, "threads"), "[1, 2]");
    assert_eq!(field(l, "missing"), "");
}
