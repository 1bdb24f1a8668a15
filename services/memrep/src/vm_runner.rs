//! The primary's loop for one VM: the scheduler says when, the checkpoint pauses the guest and
//! stages the epoch, and one sender task per backup streams epochs to it in order over QUIC
//! (backups in parallel with each other and with the guest). Acks flow back to the scheduler.
//! In consistent mode past the hard lag limit the guest stays paused until the backups catch
//! up. A backup whose stream fails is dropped from the set (its replica would miss pages).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyphae_core::rpc::Limits;
use hyphae_core::transport::PeerConnection;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Primary;
use crate::epoch::scheduler::{Decision, Scheduler, SchedulerConfig};
use crate::epoch_rpc::send_epoch;
use crate::vm_throttle::{ThrottleEnv, VmThrottle};

/// What status shows about a running VM.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VmStats {
    /// `booting`, `running`, `held` (paused: backups behind), `stopped`, `failed`.
    pub state: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Generation this primary writes.
    pub generation: u64,
    /// Last checkpoint taken.
    pub epoch: u64,
    /// Newest epoch every live backup acknowledged.
    pub acknowledged: u64,
    /// Pause of the last checkpoint, ms.
    pub pause_last_ms: f64,
    /// Median pause over the last 256 checkpoints, ms.
    pub pause_p50_ms: f64,
    /// 99th percentile pause over the last 256 checkpoints, ms.
    pub pause_p99_ms: f64,
    /// Replication lag, ms.
    pub lag_ms: f64,
    /// Current epoch interval, ms.
    pub interval_ms: f64,
    /// CPU percent the scheduler asks the throttle to take.
    pub throttle_pct: u8,
    /// The quota enforced on the vCPU threads now (`None`: throttling unavailable).
    pub cpu_quota: Option<crate::cgroup_throttle::AppliedQuota>,
    /// How the throttle is enforced: `v1 PATH`, `v2 PATH` (cgroup path), or `unavailable: WHY`.
    pub throttle_cgroup: String,
    /// Best-effort replica behind its bound.
    pub stale: bool,
    /// Dirty tracker in use.
    pub tracker: String,
    /// Backups still receiving epochs.
    pub backups: Vec<String>,
    /// Bytes of page data in the last epoch.
    pub last_epoch_bytes: u64,
    /// Size of the VM's disk in bytes (0: no disk); its changed pages go in the same epochs
    /// as the RAM's.
    pub disk_bytes: u64,
    /// Disk pages in the last epoch (of its `last_epoch_bytes`).
    pub last_epoch_disk_pages: u64,
    /// Disk pages sent in all epochs of this generation.
    pub disk_pages_total: u64,
    /// Highest replication lag seen, ms.
    pub lag_max_ms: f64,
    /// Highest lag at the moment a checkpoint let the guest run on, ms: in consistent mode
    /// never above the hard limit (past it the guest is held instead).
    pub lag_at_checkpoint_max_ms: f64,
    /// Times the guest was held paused because the backups were too far behind.
    pub holds: u64,
}

/// Percentile of a sorted slice.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A backup as the runner sees it.
pub struct BackupLink {
    /// Display name (address or node id).
    pub name: String,
    /// The connection to its memrep endpoint.
    pub conn: PeerConnection,
}

enum Report {
    Acked {
        backup: String,
        generation: u64,
        epoch: u64,
    },
    Failed {
        backup: String,
        generation: u64,
        epoch: u64,
        error: String,
    },
}

/// Orders for a running primary (a migration, from the local API).
#[derive(Debug)]
pub enum RunnerCommand {
    /// Adds a backup. The primary moves to `generation` with a fresh dirty tracker, so its
    /// next epoch is a base for every backup (the new one needs a whole replica).
    AddBackup {
        /// The new backup.
        link: BackupLink,
        /// The generation to write under from now on.
        generation: u64,
        /// Answered once the runner writes under `generation`.
        done: oneshot::Sender<()>,
    },
    /// Hands the VM over: pause the guest, take the final epoch, wait until `target`
    /// acknowledged it, answer, then stop (`resume` gets `false`: the target runs the guest)
    /// or continue here (`true`, or dropped: the handover failed).
    Handover {
        /// The backup taking over (its link name).
        target: String,
        /// The final epoch, or why there is none (the guest then runs on here).
        done: oneshot::Sender<Result<HandoverPoint, String>>,
        /// Whether to resume here.
        resume: oneshot::Receiver<bool>,
    },
}

impl std::fmt::Debug for BackupLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupLink({})", self.name)
    }
}

/// How the service steers a runner: stop it, or give it orders.
#[derive(Debug)]
pub struct RunnerControl {
    /// Fired to stop the VM.
    pub cancel: CancellationToken,
    /// Orders (migration).
    pub commands: mpsc::UnboundedReceiver<RunnerCommand>,
}

/// Where a handover left the VM: the final epoch, acknowledged by the target.
#[derive(Debug, Clone, Copy)]
pub struct HandoverPoint {
    /// The generation of the final epoch.
    pub generation: u64,
    /// The final epoch.
    pub epoch: u64,
    /// When the guest was paused for it.
    pub paused_at: Instant,
}

type EpochItem = (u64, u64, Arc<Vec<Vec<u8>>>);

/// One sender task per backup: epochs in order; after a failure it reports every later
/// epoch as failed (the replica would have holes).
fn spawn_sender(
    b: BackupLink,
    vm: String,
    limits: Limits,
    report: mpsc::UnboundedSender<Report>,
) -> mpsc::UnboundedSender<EpochItem> {
    let (tx, mut rx) = mpsc::unbounded_channel::<EpochItem>();
    tokio::spawn(async move {
        while let Some((generation, epoch, parts)) = rx.recv().await {
            match send_epoch(&b.conn, &vm, &parts, &limits).await {
                Ok(_) => {
                    let _ = report.send(Report::Acked {
                        backup: b.name.clone(),
                        generation,
                        epoch,
                    });
                }
                Err(e) => {
                    let _ = report.send(Report::Failed {
                        backup: b.name.clone(),
                        generation,
                        epoch,
                        error: e.to_string(),
                    });
                    // Later epochs would leave this replica with holes: stop here.
                    while let Some((generation, epoch, _)) = rx.recv().await {
                        let _ = report.send(Report::Failed {
                            backup: b.name.clone(),
                            generation,
                            epoch,
                            error: "backup dropped".into(),
                        });
                    }
                    return;
                }
            }
        }
    });
    tx
}

/// Takes one report into account (reports of older generations are ignored).
async fn note_report(
    r: Report,
    generation: u64,
    sched: &mut Scheduler,
    vm: &str,
    stats: &Mutex<VmStats>,
) {
    match r {
        Report::Acked {
            generation: g,
            epoch,
            ..
        } if g == generation => sched.acked(epoch, Instant::now()),
        Report::Failed {
            backup,
            generation: g,
            epoch,
            error,
        } if g == generation => {
            tracing::warn!(vm, backup, epoch, error, "backup failed; dropped");
            sched.backup_failed(epoch, Instant::now());
            let mut s = stats.lock().await;
            s.backups.retain(|b| b != &backup);
        }
        _ => {}
    }
}

/// Waits (up to 60 s) until `target` acknowledged `epoch` of `generation`, keeping the
/// scheduler up to date with every other report.
async fn wait_for_ack(
    reports: &mut mpsc::UnboundedReceiver<Report>,
    target: &str,
    generation: u64,
    epoch: u64,
    sched: &mut Scheduler,
    vm: &str,
    stats: &Mutex<VmStats>,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err("no backup left".into()),
            Err(_) => {
                return Err(format!(
                    "{target} did not acknowledge the final epoch in time"
                ))
            }
        };
        let verdict = match &r {
            Report::Acked {
                backup,
                generation: g,
                epoch: e,
            } if backup == target && *g == generation && *e == epoch => Some(Ok(())),
            Report::Failed {
                backup,
                generation: g,
                error,
                ..
            } if backup == target && *g == generation => Some(Err(format!("{target}: {error}"))),
            _ => None,
        };
        note_report(r, generation, sched, vm, stats).await;
        if let Some(v) = verdict {
            return v;
        }
    }
}

/// Runs the primary loop until `cancel` fires or QEMU fails. Consumes the primary; QEMU is
/// stopped and its files removed when this returns.
// Each argument is a separate concern the service hands over once; a struct bundling them
// would only move the list (kept flat so concurrent changes to this signature merge simply).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    vm: String,
    mut primary: Primary,
    backups: Vec<BackupLink>,
    cfg: SchedulerConfig,
    limits: Limits,
    stats: Arc<Mutex<VmStats>>,
    control: RunnerControl,
    throttle_env: ThrottleEnv,
) {
    let RunnerControl {
        cancel,
        mut commands,
    } = control;
    let mut generation = primary.generation;
    let mut throttle = VmThrottle::start(&throttle_env, &vm, &mut primary.qemu).await;
    let mut sched = Scheduler::new(cfg, backups.len(), 1);
    let (report_tx, mut reports) = mpsc::unbounded_channel::<Report>();
    let mut senders = Vec::new();
    let mut names = Vec::new();
    for b in backups {
        names.push(b.name.clone());
        senders.push(Some(spawn_sender(b, vm.clone(), limits, report_tx.clone())));
    }
    let mut last_epoch = 0;
    {
        let mut s = stats.lock().await;
        s.state = "running".into();
        s.generation = generation;
        s.tracker = format!("{:?}", primary.tracker());
        s.disk_bytes = primary.disk_bytes();
        s.backups = names.clone();
        s.throttle_cgroup = throttle.description.clone();
        s.cpu_quota = throttle.apply(0);
    }
    let mut pauses: Vec<f64> = Vec::new();
    let mut held = false;
    let outcome: Result<(), String> = loop {
        let decision = sched.poll(Instant::now());
        let wait = match decision {
            Decision::Checkpoint { epoch } => {
                let lag_ms = sched.lag().as_secs_f64() * 1000.0;
                {
                    let mut s = stats.lock().await;
                    s.lag_at_checkpoint_max_ms = s.lag_at_checkpoint_max_ms.max(lag_ms);
                }
                match primary.checkpoint(&vm, epoch).await {
                    Ok(cp) => {
                        sched.checkpointed(epoch, Instant::now(), cp.bytes);
                        let parts = Arc::new(cp.parts);
                        last_epoch = epoch;
                        for tx in senders.iter().flatten() {
                            let _ = tx.send((generation, epoch, parts.clone()));
                        }
                        pauses.push(cp.pause.as_secs_f64() * 1000.0);
                        if pauses.len() > 256 {
                            pauses.remove(0);
                        }
                        let mut sorted = pauses.clone();
                        sorted.sort_by(f64::total_cmp);
                        let mut s = stats.lock().await;
                        s.epoch = epoch;
                        s.pause_last_ms = cp.pause.as_secs_f64() * 1000.0;
                        s.pause_p50_ms = percentile(&sorted, 0.5);
                        s.pause_p99_ms = percentile(&sorted, 0.99);
                        s.last_epoch_bytes = cp.bytes;
                        s.last_epoch_disk_pages = cp.disk_pages as u64;
                        s.disk_pages_total += cp.disk_pages as u64;
                    }
                    Err(e) => break Err(format!("checkpoint {epoch}: {e}")),
                }
                Duration::ZERO
            }
            Decision::Wait(d) => {
                if held {
                    if let Err(e) = primary.qemu.qmp.cont().await {
                        break Err(format!("resuming after hold: {e}"));
                    }
                    held = false;
                }
                d
            }
            Decision::HoldPaused => {
                if !held {
                    if let Err(e) = primary.qemu.qmp.stop().await {
                        break Err(format!("holding: {e}"));
                    }
                    held = true;
                    stats.lock().await.holds += 1;
                }
                Duration::from_millis(50)
            }
        };
        {
            let mut s = stats.lock().await;
            s.state = if held { "held" } else { "running" }.into();
            s.acknowledged = sched.acknowledged();
            s.lag_ms = sched.lag().as_secs_f64() * 1000.0;
            s.lag_max_ms = s.lag_max_ms.max(s.lag_ms);
            s.interval_ms = sched.interval().as_secs_f64() * 1000.0;
            s.throttle_pct = sched.throttle();
            s.cpu_quota = throttle.apply(s.throttle_pct);
            s.throttle_cgroup.clone_from(&throttle.description);
            s.stale = sched.stale();
        }
        tokio::select! {
            _ = cancel.cancelled() => break Ok(()),
            _ = tokio::time::sleep(wait) => {}
            Some(r) = reports.recv() => note_report(r, generation, &mut sched, &vm, &stats).await,
            Some(cmd) = commands.recv() => match cmd {
                RunnerCommand::AddBackup { link, generation: g, done } => {
                    tracing::info!(vm, backup = %link.name, generation = g, "adding a backup: new base epoch");
                    primary.rebase(g);
                    generation = g;
                    // Every sender (failed ones too) reports each epoch once.
                    sched = Scheduler::new(cfg, senders.len() + 1, 1);
                    last_epoch = 0;
                    let mut s = stats.lock().await;
                    s.generation = g;
                    s.epoch = 0;
                    s.acknowledged = 0;
                    s.backups.push(link.name.clone());
                    drop(s);
                    senders.push(Some(spawn_sender(link, vm.clone(), limits, report_tx.clone())));
                    let _ = done.send(());
                }
                RunnerCommand::Handover { target, done, resume } => {
                    let epoch = last_epoch + 1;
                    stats.lock().await.state = "handover".into();
                    let paused_at = Instant::now();
                    let final_epoch = match primary.checkpoint_paused(&vm, epoch).await {
                        Ok(cp) => {
                            last_epoch = epoch;
                            sched.checkpointed(epoch, Instant::now(), cp.bytes);
                            let parts = Arc::new(cp.parts);
                            for tx in senders.iter().flatten() {
                                let _ = tx.send((generation, epoch, parts.clone()));
                            }
                            wait_for_ack(&mut reports, &target, generation, epoch, &mut sched, &vm, &stats).await
                        }
                        Err(e) => Err(format!("final checkpoint: {e}")),
                    };
                    let go_on = match final_epoch {
                        Ok(()) => {
                            let _ = done.send(Ok(HandoverPoint { generation, epoch, paused_at }));
                            resume.await.unwrap_or(true)
                        }
                        Err(e) => {
                            tracing::warn!(vm, error = %e, "handover failed; the guest runs on here");
                            let _ = done.send(Err(e));
                            true
                        }
                    };
                    if !go_on {
                        tracing::info!(vm, epoch, "handed over; stopping here");
                        break Ok(());
                    }
                    held = false;
                    if let Err(e) = primary.qemu.qmp.cont().await {
                        break Err(format!("resuming after a failed handover: {e}"));
                    }
                }
            },
        }
        if let Some(status) = primary.qemu.exited() {
            break Err(format!("QEMU exited: {status}"));
        }
    };
    drop(senders);
    let mut s = stats.lock().await;
    match outcome {
        Ok(()) => s.state = "stopped".into(),
        Err(e) => {
            tracing::error!(vm, error = %e, "VM failed");
            s.state = "failed".into();
            s.error = Some(e);
        }
    }
    drop(s);
    primary.shutdown().await;
    // QEMU is gone: its cgroup is empty and can go too.
    throttle.finish().await;
}
