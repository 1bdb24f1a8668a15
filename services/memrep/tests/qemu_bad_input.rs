//! Bad input against a real QEMU: clear errors, and nothing left behind (no QEMU process, no
//! RAM file in /dev/shm). No guest boot is needed, so this runs in seconds.

mod support;
use support::guest;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyphae_memrep::accel::Accel;
use hyphae_memrep::checkpoint::Primary;
use hyphae_memrep::qemu::{InstancePaths, Launch, LaunchError, QemuProcess, VmSpec};
use hyphae_memrep::qmp::{QmpClient, QmpError};
use hyphae_memrep::restore;

fn spec(kernel: PathBuf, initrd: Option<PathBuf>) -> VmSpec {
    VmSpec {
        name: format!("bad{}", std::process::id()),
        kernel: Some(kernel),
        initrd,
        append: "console=ttyS0".into(),
        mem_mib: 64,
        vcpus: 1,
        disk: None,
    }
}

fn alive(pid: u32) -> bool {
    // Signal 0: does the process exist (and is it not a reaped zombie)?
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

fn shm_empty(shm: &Path) -> bool {
    std::fs::read_dir(shm).unwrap().next().is_none()
}

#[test]
fn a_missing_image_or_too_much_memory_is_refused_before_qemu_starts() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path().join("no-such-kernel"), None);
    let err = s.validate(1024).unwrap_err();
    assert!(
        matches!(err, LaunchError::MissingFile { what: "kernel", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no-such-kernel"));
    let (kernel, initrd) = guest();
    let mut s = spec(kernel, Some(initrd));
    s.mem_mib = 1 << 20;
    let err = s.validate(1024).unwrap_err();
    assert!(err.to_string().contains("at most 1024 MiB"), "{err}");
}

#[tokio::test]
async fn a_kernel_qemu_cannot_load_is_a_clear_error_and_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let junk = dir.path().join("junk-kernel");
    std::fs::write(&junk, vec![0u8; 8192]).unwrap();
    let initrd = dir.path().join("initrd");
    std::fs::write(&initrd, b"x").unwrap();
    // Not a Linux kernel, and with an initrd: QEMU refuses it while setting up the machine.
    let s = spec(junk, Some(initrd));
    let launch = Launch {
        paths: InstancePaths::new(shm.path(), dir.path(), &s.name, "g1"),
        spec: s,
        accel: Accel::Tcg,
        incoming: false,
        owns_ram: true,
    };
    let err = QemuProcess::start(launch).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LaunchError::Process(_)), "{text}");
    assert!(text.contains("kernel") || text.contains("exited"), "{text}");
    assert!(shm_empty(shm.path()), "RAM file left after a failed start");
}

#[tokio::test]
async fn a_dead_qmp_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.qmp");
    // A socket file nobody listens on any more (QEMU died and left it).
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = QmpClient::connect(&path, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Connect { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_crashing_fails_the_checkpoint_and_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let (kernel, initrd) = guest();
    let s = spec(kernel, Some(initrd));
    let launch = Launch {
        paths: InstancePaths::new(shm.path(), dir.path(), &s.name, "g1"),
        spec: s.clone(),
        accel: Accel::Tcg,
        incoming: false,
        owns_ram: true,
    };
    let q = QemuProcess::start(launch).await.expect("QEMU starts");
    let pid = q.pid().expect("pid");
    let mut primary = Primary::new(q, 1, dir.path().join("dev.state"))
        .await
        .expect("primary");
    // SAFETY: killing the QEMU this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let err = primary.checkpoint(&s.name, 1).await.unwrap_err();
    assert!(err.to_string().contains("QMP"), "{err}");
    primary.shutdown().await;
    for _ in 0..50 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "QEMU {pid} still there");
    assert!(shm_empty(shm.path()), "RAM file left after a crash");

    // Resuming from a replica whose device state is missing: refused before QEMU starts.
    let mut paths = InstancePaths::new(shm.path(), dir.path(), &s.name, "g2");
    paths.ram = shm.path().join("replica.ram");
    let err = restore::resume(
        Launch {
            paths,
            spec: s,
            accel: Accel::Tcg,
            incoming: true,
            owns_ram: false,
        },
        &dir.path().join("no-device-state"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LaunchError::MissingFile { .. }), "{err}");
}

/// The vCPU threads go into the VM's cgroup, the scheduler's throttle becomes a CFS quota the
/// kernel reports back, and when QEMU crashes the cgroup goes with it: no cgroup directory is
/// left under the node's throttle root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throttle_is_a_cpu_quota_and_a_crash_leaves_no_cgroup() {
    use hyphae_memrep::cgroup_throttle;
    use hyphae_memrep::vm_throttle::{ThrottleEnv, ThrottleMetrics, VmThrottle};
    use std::sync::Arc;

    let mount_dir = tempfile::tempdir().unwrap();
    let root =
        match cgroup_throttle::probe(&format!("test{}", std::process::id()), mount_dir.path()) {
            Ok(r) => Arc::new(r),
            Err(e) => panic!("this host offers no CPU cgroup for the throttle: {e}"),
        };
    let vm_dirs = |root: &cgroup_throttle::ThrottleRoot| -> Vec<String> {
        std::fs::read_dir(&root.dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("vm-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let (kernel, initrd) = guest();
    let s = spec(kernel, Some(initrd));
    let launch = Launch {
        paths: InstancePaths::new(shm.path(), dir.path(), &s.name, "g1"),
        spec: s.clone(),
        accel: Accel::Tcg,
        incoming: false,
        owns_ram: true,
    };
    let mut q = QemuProcess::start(launch).await.expect("QEMU starts");
    let pid = q.pid().expect("pid");
    let env = ThrottleEnv {
        root: Ok(root.clone()),
        metrics: ThrottleMetrics::default(),
    };
    let mut t = VmThrottle::start(&env, &s.name, &mut q).await;
    assert!(
        t.description.starts_with("v1 ") || t.description.starts_with("v2 "),
        "{}",
        t.description
    );
    let applied = t.apply(50).expect("quota applied");
    assert_eq!(applied.cpu_max, "50000 100000");
    assert_eq!(vm_dirs(&root), vec![format!("vm-{}", s.name)]);
    let cg_dir = root.dir.join(format!("vm-{}", s.name));
    let quota_file = if root.version == cgroup_throttle::CgroupVersion::V1 {
        cg_dir.join("cpu.cfs_quota_us")
    } else {
        cg_dir.join("vcpus/cpu.max")
    };
    let kernel_says = std::fs::read_to_string(&quota_file).unwrap();
    assert!(kernel_says.starts_with("50000"), "{kernel_says}");
    // The threads in the cgroup are QEMU's (vCPU threads are tasks of the QEMU process).
    let tasks_file = if root.version == cgroup_throttle::CgroupVersion::V1 {
        cg_dir.join("tasks")
    } else {
        cg_dir.join("vcpus/cgroup.threads")
    };
    let tids: Vec<u32> = std::fs::read_to_string(&tasks_file)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(!tids.is_empty(), "no vCPU thread in the cgroup");
    for tid in &tids {
        assert!(
            Path::new(&format!("/proc/{pid}/task/{tid}")).exists(),
            "thread {tid} is not QEMU's"
        );
    }
    assert_eq!(t.apply(0).expect("released").cpu_max, "max 100000");

    // QEMU crashes; once it is reaped the VM's cgroup is removed.
    // SAFETY: killing the QEMU this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    q.shutdown().await;
    t.finish().await;
    assert!(
        vm_dirs(&root).is_empty(),
        "cgroup left: {:?}",
        vm_dirs(&root)
    );
    assert!(shm_empty(shm.path()), "RAM file left after a crash");
    root.remove();
    assert!(!root.dir.exists(), "{} left", root.dir.display());
}
