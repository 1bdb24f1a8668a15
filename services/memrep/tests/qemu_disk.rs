//! A VM with a disk against a real QEMU (TCG here): the test guest (`wave_disk=1`) keeps a
//! counter ring on /dev/vda and reads it back against its RAM every iteration. Epochs carry RAM
//! and disk pages together; every committed replica's disk must go with its RAM (the disk's
//! newest counter is the RAM's or the one before, `guest_check::check_disk`). Then kill -9 of
//! the primary's QEMU and a resume on the replica's RAM and disk: the guest continues from at
//! least the committed counter and never finds its disk out of step with its RAM.
//!
//! Bad disks are refused before QEMU starts, with nothing left in /dev/shm.
//!
//! Needs root (for /dev/shm and QEMU), qemu-system-x86_64, gcc, cpio (scripts/deps.sh).

mod support;
use support::guest;

use std::path::Path;
use std::time::{Duration, Instant};

use hyphae_memrep::accel;
use hyphae_memrep::checkpoint::Primary;
use hyphae_memrep::epoch::assembler::Assembler;
use hyphae_memrep::guest_check;
use hyphae_memrep::qemu::{InstancePaths, Launch, QemuProcess, VmSpec};
use hyphae_memrep::replica_store::ReplicaStore;
use hyphae_memrep::restore;
use hyphae_memrep::vm_disk::{self, DiskError, DiskSource};

/// A 1 MiB raw image: the counter ring (blocks 0..15) empty, the seed text in block 16.
fn write_image(path: &Path, seed: &str) {
    let mut img = vec![0u8; 1 << 20];
    img[16 * 4096..16 * 4096 + seed.len() + 1].copy_from_slice(format!("{seed}\n").as_bytes());
    std::fs::write(path, img).unwrap();
}

/// `(counter, mismatches)` of every `wave disk counter=N mismatches=M` line, and whether a
/// `wave disk MISMATCH` line was printed.
fn disk_lines(serial: &Path) -> (Vec<(u64, u64)>, bool) {
    let log = std::fs::read_to_string(serial).unwrap_or_default();
    let lines = log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("wave disk counter="))
        .filter_map(|rest| {
            let (c, m) = rest.split_once(" mismatches=")?;
            Some((c.parse().ok()?, m.trim().parse().ok()?))
        })
        .collect();
    (lines, log.contains("wave disk MISMATCH"))
}

async fn wait_disk_counter(serial: &Path, at_least: u64, limit: Duration) -> Vec<(u64, u64)> {
    let deadline = Instant::now() + limit;
    loop {
        let (lines, mismatch) = disk_lines(serial);
        assert!(
            !mismatch,
            "the guest found its disk out of step with its RAM"
        );
        if lines.iter().any(|&(c, _)| c >= at_least) {
            return lines;
        }
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "no disk counter ≥ {at_least} on {} in {limit:?}; console tail: {}",
            serial.display(),
            &log[log.len().saturating_sub(600)..]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_and_ram_replicate_together_and_resume_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let name = format!("d{}", std::process::id());
    let (kernel, initrd) = guest();
    let image = dir.path().join("base.raw");
    write_image(&image, "seed-of-the-disk-test");
    let spec = VmSpec {
        name: name.clone(),
        kernel: Some(kernel),
        initrd: Some(initrd),
        append: "console=ttyS0 nokaslr mitigations=off panic=-1 quiet wave_region=512 wave_pages=16 wave_sleep_us=2000 wave_disk=1".into(),
        mem_mib: 128,
        vcpus: 1,
        disk: Some(image.display().to_string()),
    };
    let (acc, why) = accel::probe();
    eprintln!("accelerator: {acc:?} ({why})");
    let mut paths = InstancePaths::new(shm.path(), dir.path(), &name, "g1");
    let disk = InstancePaths::disk_file(shm.path(), &name, "g1");
    let size = vm_disk::prepare(
        &DiskSource::Local(image.clone()),
        &disk,
        vm_disk::tmpfs_budget(shm.path(), spec.mem_bytes()),
        &dir.path().join("no-chunkstore.sock"),
    )
    .await
    .expect("disk prepared");
    assert_eq!(size, 1 << 20);
    paths.disk = Some(disk.clone());
    let q = QemuProcess::start(Launch {
        spec: spec.clone(),
        accel: acc,
        paths,
        incoming: false,
        owns_ram: true,
    })
    .await
    .expect("start QEMU");
    let serial = q.launch.paths.serial.clone();
    // TCG on a loaded machine boots the Debian kernel in 30-90 s.
    wait_disk_counter(&serial, 0, Duration::from_secs(240)).await;
    let log = std::fs::read_to_string(&serial).unwrap();
    assert!(
        log.contains("wave disk seed=seed-of-the-disk-test"),
        "the guest did not boot with the image: {log}"
    );
    let mut primary = Primary::new(q, 1, dir.path().join("g1.device"))
        .await
        .expect("primary");
    assert_eq!(primary.disk_bytes(), 1 << 20);
    let mut store = ReplicaStore::open(
        &name,
        &dir.path().join("replica"),
        &shm.path().join("replica.ram"),
    )
    .unwrap();

    // Epochs: each committed replica's disk goes with its RAM.
    let epochs = 40;
    let (mut checked, mut disk_pages, mut counter) = (0, 0, 0);
    for epoch in 1..=epochs {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let cp = primary.checkpoint(&name, epoch).await.expect("checkpoint");
        if epoch > 1 {
            disk_pages += cp.disk_pages;
        }
        let mut asm = Assembler::new(&name, store.committed());
        let mut complete = None;
        for p in &cp.parts {
            complete = asm.push(p).expect("epoch part");
        }
        store
            .commit(complete.expect("epoch complete"))
            .expect("commit");
        let ram = guest_check::check(store.ram().expect("replica RAM")).expect("consistent RAM");
        let on_disk = guest_check::check_disk(store.disk().expect("replica disk"), ram.counter)
            .unwrap_or_else(|e| panic!("epoch {epoch}: disk and RAM torn apart: {e}"));
        assert!(ram.counter >= counter, "the replica went back");
        counter = ram.counter;
        checked += 1;
        if epoch == epochs {
            eprintln!("epoch {epoch}: RAM counter {counter}, disk counter {on_disk:?}");
        }
    }
    assert_eq!(checked, epochs);
    assert!(
        disk_pages > 0,
        "the epochs after the base carried none of the guest's disk writes"
    );
    // The base epoch carried the image (the seed block) too.
    let seed = &store.disk().unwrap()[16 * 4096..16 * 4096 + 21];
    assert_eq!(seed, b"seed-of-the-disk-test");

    // kill -9 of the primary's QEMU, resume on the replica's RAM and disk.
    let pid = primary.qemu.pid().expect("pid");
    // SAFETY: a signal to the QEMU child this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    drop(primary);
    assert!(!disk.exists(), "the primary's disk file leaked");
    let mut paths = InstancePaths::new(shm.path(), dir.path(), &name, "g2");
    paths.ram = store.ram_path().to_path_buf();
    paths.disk = Some(store.disk_path().to_path_buf());
    let device = store.device_path();
    let q = restore::resume(
        Launch {
            spec,
            accel: acc,
            paths,
            incoming: true,
            owns_ram: false,
        },
        &device,
    )
    .await
    .expect("resume from the replica");
    let serial = q.launch.paths.serial.clone();
    let lines = wait_disk_counter(&serial, counter + 200, Duration::from_secs(120)).await;
    eprintln!("after resume (committed counter {counter}): {lines:?}");
    assert!(
        lines.iter().all(|&(c, m)| c >= counter && m == 0),
        "after resume: {lines:?}, committed counter {counter}"
    );
    q.shutdown().await;
    store.destroy().unwrap();
    let left: Vec<_> = std::fs::read_dir(shm.path()).unwrap().collect();
    assert!(left.is_empty(), "files left in /dev/shm: {left:?}");
}

#[tokio::test]
async fn bad_disks_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let dest = InstancePaths::disk_file(shm.path(), "bad", "g1");
    let sock = dir.path().join("no-chunkstore.sock");
    let refuse = |source: DiskSource, budget: u64| {
        let (dest, sock) = (dest.clone(), sock.clone());
        async move {
            vm_disk::prepare(&source, &dest, budget, &sock)
                .await
                .unwrap_err()
        }
    };
    // Missing.
    let err = refuse(DiskSource::Local(dir.path().join("none.raw")), 1 << 30).await;
    assert!(matches!(err, DiskError::Missing(_)), "{err}");
    assert!(err.to_string().contains("none.raw: not found"), "{err}");
    // qcow2 (made by qemu-img, as a user would).
    let qcow = dir.path().join("img.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&qcow)
        .arg("1M")
        .status()
        .expect("qemu-img");
    assert!(made.success());
    let err = refuse(DiskSource::Local(qcow), 1 << 30).await;
    assert!(
        matches!(
            err,
            DiskError::NotRaw {
                format: "qcow2",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("qemu-img convert"), "{err}");
    // Larger than the budget.
    let big = dir.path().join("big.raw");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let err = refuse(DiskSource::Local(big.clone()), 16 << 20).await;
    assert!(matches!(err, DiskError::TooBig { .. }), "{err}");
    // Not whole pages.
    let odd = dir.path().join("odd.raw");
    std::fs::write(&odd, vec![0u8; 5000]).unwrap();
    let err = refuse(DiskSource::Local(odd), 1 << 30).await;
    assert!(matches!(err, DiskError::Size { .. }), "{err}");
    // A mesh image with no chunkstore to ask.
    let err = refuse(DiskSource::Mesh("/img.raw".into()), 1 << 30).await;
    assert!(matches!(err, DiskError::Store { .. }), "{err}");
    // A spec naming a relative disk path is refused by validation.
    let (kernel, initrd) = guest();
    let spec = VmSpec {
        name: "bad".into(),
        kernel: Some(kernel),
        initrd: Some(initrd),
        append: "console=ttyS0".into(),
        mem_mib: 64,
        vcpus: 1,
        disk: Some("disk.raw".into()),
    };
    let err = spec.validate(1024).unwrap_err();
    assert!(
        err.to_string().contains("absolute path or mesh:/PATH"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(shm.path()).unwrap().collect();
    assert!(left.is_empty(), "files left in /dev/shm: {left:?}");
}
