//! A VM that boots from its disk alone (no `-kernel`): the test guest made into a bootable
//! raw image (`guest/build-boot-disk.sh`: FAT + syslinux, the kernel and initramfs inside),
//! booted by the firmware (SeaBIOS) from the virtio-blk disk. It counts as the test guest
//! always does; its RAM, disk and device state replicate to one replica epoch after epoch
//! (each committed replica's RAM checked); then kill -9 of QEMU and a resume on the replica's
//! RAM and disk: the guest continues from at least the committed counter. The firmware's ROM
//! regions (the BIOS image, option ROMs) are not in the shared RAM file, so the device-state
//! stream must carry them: the test finds SeaBIOS in it, and the resume depends on it.
//!
//! Needs root (for /dev/shm), qemu-system-x86_64, gcc, cpio, dosfstools, syslinux, mtools
//! (scripts/deps.sh).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyphae_memrep::accel;
use hyphae_memrep::checkpoint::Primary;
use hyphae_memrep::epoch::assembler::Assembler;
use hyphae_memrep::guest_check;
use hyphae_memrep::qemu::{InstancePaths, Launch, QemuProcess, VmSpec};
use hyphae_memrep::replica_store::ReplicaStore;
use hyphae_memrep::restore;
use hyphae_memrep::vm_disk::{self, DiskSource};

/// The bootable image (cached like the test guest).
fn boot_disk() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest/build-boot-disk.sh");
    let out = std::process::Command::new(&script)
        .output()
        .expect("run guest/build-boot-disk.sh");
    assert!(
        out.status.success(),
        "boot disk build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Every `wave counter=N` on a serial log.
fn counters(serial: &Path) -> Vec<u64> {
    std::fs::read_to_string(serial)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("wave counter="))
        .filter_map(|c| c.trim().parse().ok())
        .collect()
}

async fn wait_counter(q: &mut QemuProcess, at_least: u64, limit: Duration) -> Vec<u64> {
    let serial = q.launch.paths.serial.clone();
    let deadline = Instant::now() + limit;
    loop {
        let seen = counters(&serial);
        if seen.iter().any(|&c| c >= at_least) {
            return seen;
        }
        let exited = q.exited();
        let log = std::fs::read_to_string(&serial).unwrap_or_default();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "no counter ≥ {at_least} in {limit:?} (QEMU exited: {exited:?}); console tail: {}; stderr: {}",
            &log[log.len().saturating_sub(600)..],
            q.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_boots_from_its_disk_replicates_and_resumes_after_kill_9() {
    let image = boot_disk();
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let name = format!("boot{}", std::process::id());
    let spec = VmSpec {
        name: name.clone(),
        kernel: None,
        initrd: None,
        append: String::new(),
        mem_mib: 128,
        vcpus: 1,
        disk: Some(image.display().to_string()),
    };
    spec.validate(1024)
        .expect("a disk without a kernel is a valid spec");
    let (acc, why) = accel::probe();
    eprintln!("accelerator: {acc:?} ({why})");
    let mut paths = InstancePaths::new(shm.path(), dir.path(), &name, "g1");
    let disk = InstancePaths::disk_file(shm.path(), &name, "g1");
    vm_disk::prepare(
        &DiskSource::Local(image.clone()),
        &disk,
        vm_disk::tmpfs_budget(shm.path(), spec.mem_bytes()),
        &dir.path().join("no-chunkstore.sock"),
    )
    .await
    .expect("disk prepared");
    paths.disk = Some(disk.clone());
    let launch = Launch {
        spec: spec.clone(),
        accel: acc,
        paths,
        incoming: false,
        owns_ram: true,
    };
    assert!(!launch.args().iter().any(|a| a == "-kernel"));
    let mut q = QemuProcess::start(launch).await.expect("start QEMU");
    // Firmware, boot loader, then the kernel: under TCG on a loaded machine 30-120 s.
    wait_counter(&mut q, 0, Duration::from_secs(240)).await;
    let log = std::fs::read_to_string(&q.launch.paths.serial).unwrap();
    assert!(
        log.contains("SYSLINUX"),
        "the guest did not come up through the disk's boot loader: {log}"
    );

    let device = dir.path().join("g1.device");
    let mut primary = Primary::new(q, 1, device.clone()).await.expect("primary");
    let mut store = ReplicaStore::open(
        &name,
        &dir.path().join("replica"),
        &shm.path().join("replica.ram"),
    )
    .unwrap();
    let mut counter = 0;
    for epoch in 1..=20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let cp = primary.checkpoint(&name, epoch).await.expect("checkpoint");
        let mut asm = Assembler::new(&name, store.committed());
        let mut complete = None;
        for p in &cp.parts {
            complete = asm.push(p).expect("epoch part");
        }
        store
            .commit(complete.expect("epoch complete"))
            .expect("commit");
        let ram = guest_check::check(store.ram().expect("replica RAM"))
            .unwrap_or_else(|e| panic!("epoch {epoch}: replica RAM not consistent: {e}"));
        assert!(ram.counter >= counter, "the replica went back");
        counter = ram.counter;
    }
    // The disk went with the RAM: the replica's disk starts with the image's boot sector.
    let boot_sector = std::fs::read(&image).unwrap()[..512].to_vec();
    assert_eq!(
        &store.disk().expect("replica disk")[..512],
        &boot_sector[..]
    );
    // The ROMs are in the device-state stream (they are not in the shared RAM file).
    let state = std::fs::read(store.device_path()).expect("committed device state");
    assert!(
        state.windows(7).any(|w| w == b"SeaBIOS"),
        "the firmware's ROM is not in the device state ({} bytes)",
        state.len()
    );
    eprintln!(
        "committed counter {counter}, device state {} KiB",
        state.len() / 1024
    );

    // kill -9 of QEMU, resume on the replica's RAM and disk.
    let pid = primary.qemu.pid().expect("pid");
    // SAFETY: a signal to the QEMU child this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    drop(primary);
    assert!(!disk.exists(), "the primary's disk file leaked");
    let mut paths = InstancePaths::new(shm.path(), dir.path(), &name, "g2");
    paths.ram = store.ram_path().to_path_buf();
    paths.disk = Some(store.disk_path().to_path_buf());
    let mut q = restore::resume(
        Launch {
            spec,
            accel: acc,
            paths,
            incoming: true,
            owns_ram: false,
        },
        &store.device_path(),
    )
    .await
    .expect("resume from the replica");
    let seen = wait_counter(&mut q, counter + 300, Duration::from_secs(120)).await;
    eprintln!("after resume (committed counter {counter}): {seen:?}");
    assert!(
        seen.iter().all(|&c| c >= counter),
        "the counter went back: {seen:?} < {counter}"
    );
    let log = std::fs::read_to_string(&q.launch.paths.serial).unwrap();
    assert!(
        !log.contains("SYSLINUX"),
        "the resumed guest booted again instead of continuing: {log}"
    );
    q.shutdown().await;
    store.destroy().unwrap();
    let left: Vec<_> = std::fs::read_dir(shm.path()).unwrap().collect();
    assert!(left.is_empty(), "files left in /dev/shm: {left:?}");
}
