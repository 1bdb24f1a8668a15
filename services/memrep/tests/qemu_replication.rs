//! memrep against a real QEMU (TCG here, KVM where it works) running the project's test guest:
//! epochs from a primary to two replicas, every committed replica checked for consistency, then
//! a chain of failovers (kill -9 of the primary's QEMU, resume on a backup) where the guest's
//! counter must continue from at least the last acknowledged value.
//!
//! Needs root (for /dev/shm and QEMU), qemu-system-x86_64, gcc, cpio (scripts/deps.sh).

mod support;
use support::guest;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyphae_memrep::accel;
use hyphae_memrep::checkpoint::Primary;
use hyphae_memrep::epoch::assembler::Assembler;
use hyphae_memrep::epoch::scheduler::{Decision, Scheduler, SchedulerConfig};
use hyphae_memrep::guest_check;
use hyphae_memrep::qemu::{InstancePaths, Launch, QemuProcess, VmSpec};
use hyphae_memrep::replica_store::ReplicaStore;
use hyphae_memrep::restore;

fn spec(name: &str) -> VmSpec {
    let (kernel, initrd) = guest();
    VmSpec {
        name: name.into(),
        kernel: Some(kernel),
        initrd: Some(initrd),
        append: "console=ttyS0 nokaslr mitigations=off panic=-1 quiet wave_region=2048 wave_pages=32 wave_sleep_us=2000".into(),
        mem_mib: 256,
        vcpus: 1,
        disk: None,
    }
}

/// The highest `wave counter=N` on a serial log.
fn serial_counter(path: &Path) -> Option<u64> {
    let log = std::fs::read_to_string(path).ok()?;
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("wave counter="))
        .filter_map(|n| n.trim().parse().ok())
        .max()
}

async fn wait_serial_at_least(path: &Path, at_least: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(c) = serial_counter(path) {
            if c >= at_least {
                return c;
            }
        }
        assert!(
            Instant::now() < deadline,
            "guest counter on {} did not reach {at_least} in {limit:?} (last: {:?})",
            path.display(),
            serial_counter(path)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Backup {
    store: ReplicaStore,
}

/// Runs `epochs` checkpoints from `primary` to `backups` under the scheduler, checking every
/// committed replica. Returns the guest counter of the last committed epoch.
async fn replicate(
    name: &str,
    primary: &mut Primary,
    backups: &mut [Backup],
    epochs: u64,
    first_epoch: u64,
) -> u64 {
    let mut sched = Scheduler::new(
        SchedulerConfig {
            base_interval: Duration::from_millis(100),
            ..SchedulerConfig::default()
        },
        backups.len(),
        first_epoch,
    );
    let mut last_counter = 0u64;
    let mut done = 0;
    let mut pauses = Vec::new();
    while done < epochs {
        match sched.poll(Instant::now()) {
            Decision::Wait(d) => tokio::time::sleep(d).await,
            Decision::HoldPaused => panic!("a local replica cannot lag"),
            Decision::Checkpoint { epoch } => {
                let cp = primary.checkpoint(name, epoch).await.expect("checkpoint");
                pauses.push(cp.pause);
                sched.checkpointed(epoch, Instant::now(), cp.bytes);
                for b in backups.iter_mut() {
                    let mut asm = Assembler::new(name, b.store.committed());
                    let mut complete = None;
                    for p in &cp.parts {
                        complete = asm.push(p).expect("epoch part");
                    }
                    let complete = complete.expect("epoch complete after End");
                    let meta = b.store.commit(complete).expect("commit");
                    assert_eq!(meta.epoch, epoch);
                    // Every committed replica is a consistent snapshot of the guest, once the
                    // guest program has started.
                    match guest_check::check(b.store.ram().expect("replica RAM")) {
                        Ok(state) => {
                            assert!(
                                state.counter >= last_counter,
                                "replica went back: {} < {last_counter}",
                                state.counter
                            );
                            last_counter = state.counter;
                        }
                        Err(guest_check::CheckError::NoControlPage) if last_counter == 0 => {}
                        Err(e) => panic!("epoch {epoch}: inconsistent replica: {e}"),
                    }
                    sched.acked(epoch, Instant::now());
                }
                done += 1;
            }
        }
    }
    pauses.sort();
    eprintln!(
        "{epochs} epochs: pause p50 {:?} max {:?}, tracker {:?}, last counter {last_counter}",
        pauses[pauses.len() / 2],
        pauses[pauses.len() - 1],
        primary.tracker()
    );
    last_counter
}

fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Boots the test guest as primary (generation 1) and waits for its program to run.
async fn boot_primary(
    name: &str,
    dir: &Path,
    shm: &Path,
) -> (Primary, VmSpec, PathBuf, hyphae_memrep::accel::Accel) {
    let (acc, why) = accel::probe();
    eprintln!("accelerator: {acc:?} ({why})");
    let spec = spec(name);
    let launch = Launch {
        spec: spec.clone(),
        accel: acc,
        paths: InstancePaths::new(shm, dir, name, "g1"),
        incoming: false,
        owns_ram: true,
    };
    let ram = launch.paths.ram.clone();
    let q = QemuProcess::start(launch).await.expect("start QEMU");
    let serial = q.launch.paths.serial.clone();
    // TCG on a loaded machine boots the Debian kernel in 30-90 s.
    wait_serial_at_least(&serial, 0, Duration::from_secs(240)).await;
    let primary = Primary::new(q, 1, dir.join("g1.device"))
        .await
        .expect("primary");
    (primary, spec, ram, acc)
}

fn backup(name: &str, dir: &Path, shm: &Path, tag: &str) -> Backup {
    Backup {
        store: ReplicaStore::open(
            name,
            &dir.join(format!("replica-{tag}")),
            &shm.join(format!("replica-{tag}.ram")),
        )
        .unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_epochs_are_consistent_on_both_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let name = format!("c{}", std::process::id());
    let (mut primary, _spec, primary_ram, _) = boot_primary(&name, dir.path(), shm.path()).await;
    let mut backups = vec![
        backup(&name, dir.path(), shm.path(), "0"),
        backup(&name, dir.path(), shm.path(), "1"),
    ];
    // ≥ 200 epochs in CI; MEMREP_TEST_EPOCHS shortens it while developing.
    let epochs = env_count("MEMREP_TEST_EPOCHS", 200);
    let counter = replicate(&name, &mut primary, &mut backups, epochs, 1).await;
    assert!(
        counter > 0,
        "the guest made no progress over {epochs} epochs"
    );
    primary.shutdown().await;
    assert!(!primary_ram.exists(), "the primary's RAM file leaked");
    for b in backups {
        b.store.destroy().unwrap();
    }
    let left: Vec<_> = std::fs::read_dir(shm.path()).unwrap().collect();
    assert!(left.is_empty(), "files left in /dev/shm: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_primary_again_and_again_the_guest_continues() {
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let name = format!("k{}", std::process::id());
    let (mut primary, spec, _, acc) = boot_primary(&name, dir.path(), shm.path()).await;
    let mut backups = vec![
        backup(&name, dir.path(), shm.path(), "0"),
        backup(&name, dir.path(), shm.path(), "1"),
    ];
    let mut acked = replicate(&name, &mut primary, &mut backups, 3, 1).await;
    let mut next_epoch = 4;

    // ≥ 20 failovers in CI (MEMREP_TEST_FAILOVERS). Each round: the guest runs a random while
    // after the last acknowledged epoch, on odd rounds an epoch is cut off half-way through
    // its delivery to the backup that takes over (it must not become the replica), then kill
    // -9 of the primary's QEMU; backup 0 resumes as generation+1 and replicates to the other
    // backup and a fresh one.
    let rounds = env_count("MEMREP_TEST_FAILOVERS", 20);
    let mut resume_times = Vec::new();
    for round in 0..rounds {
        let generation = primary.generation + 1;
        let jitter = (u64::from(std::process::id()) * 7919 + round * 104_729) % 300;
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        if round % 2 == 1 {
            let cp = primary
                .checkpoint(&name, next_epoch)
                .await
                .expect("checkpoint");
            let mut asm = Assembler::new(&name, backups[0].store.committed());
            for p in &cp.parts[..cp.parts.len() / 2] {
                assert!(asm.push(p).expect("part").is_none());
            }
            // The stream dies with the primary: the half-received epoch is dropped.
        }
        let pid = primary.qemu.pid().expect("pid");
        nix_kill9(pid);
        drop(primary);
        let b0 = backups.remove(0);
        let meta = b0.store.require_committed().expect("committed replica");
        let ram = b0.store.ram_path().to_path_buf();
        let device = b0.store.device_path();
        let tag = format!("g{generation}");
        let mut paths = InstancePaths::new(shm.path(), dir.path(), &name, &tag);
        paths.ram = ram;
        let started = Instant::now();
        drop(b0.store); // the replica's RAM file becomes the new primary's RAM
        let q = restore::resume(
            Launch {
                spec: spec.clone(),
                accel: acc,
                paths,
                incoming: true,
                owns_ram: true,
            },
            &device,
        )
        .await
        .expect("resume from replica");
        resume_times.push(started.elapsed());
        let serial = q.launch.paths.serial.clone();
        // The counter continues from at least the last acknowledged value (the guest prints
        // every 100 iterations, so wait for a print past it).
        let seen = wait_serial_at_least(&serial, acked + 1, Duration::from_secs(120)).await;
        eprintln!(
            "round {round}: generation {generation} resumed from epoch {} (counter {acked}) in {:?}; console at {seen}",
            meta.epoch,
            started.elapsed()
        );
        primary = Primary::new(q, generation, dir.path().join(format!("{tag}.device")))
            .await
            .expect("new primary");
        for b in backups.iter_mut() {
            b.store.fence(generation).unwrap();
        }
        backups.push(backup(&name, dir.path(), shm.path(), &format!("r{round}")));
        let c = replicate(&name, &mut primary, &mut backups, 2, 1).await;
        assert!(
            c >= acked,
            "counter went back after failover: {c} < {acked}"
        );
        acked = c;
        next_epoch = 3;
    }
    resume_times.sort();
    if !resume_times.is_empty() {
        eprintln!(
            "{rounds} failovers: resume p50 {:?} max {:?}",
            resume_times[resume_times.len() / 2],
            resume_times[resume_times.len() - 1]
        );
    }
    primary.shutdown().await;
    for b in backups {
        b.store.destroy().unwrap();
    }
    let left: Vec<_> = std::fs::read_dir(shm.path()).unwrap().collect();
    assert!(left.is_empty(), "files left in /dev/shm: {left:?}");
}

fn nix_kill9(pid: u32) {
    // SAFETY: sending a signal to the QEMU child this test started.
    let r = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(r, 0, "kill -9 {pid}");
}
