//! Resuming a VM from a replica (failover, or the target of a migration): QEMU starts with
//! `-incoming defer` on the replica's RAM file, `x-ignore-shared` on, the committed device
//! state is fed with `migrate-incoming`, and the guest continues exactly where the committed
//! epoch left it.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::qemu::{Launch, LaunchError, QemuProcess};
use crate::qmp::QmpError;

/// Starts QEMU on a replica and resumes the guest. `launch.incoming` must be set and
/// `launch.paths.ram` must be the replica's RAM file.
pub async fn resume(launch: Launch, device_state: &Path) -> Result<QemuProcess, LaunchError> {
    if !launch.incoming {
        return Err(LaunchError::Invalid(
            "restore needs an incoming launch".into(),
        ));
    }
    if !device_state.is_file() {
        return Err(LaunchError::MissingFile {
            what: "device state",
            path: device_state.display().to_string(),
        });
    }
    let mut q = QemuProcess::start(launch).await?;
    match incoming(&mut q, device_state).await {
        Ok(()) => Ok(q),
        Err(e) => {
            // QEMU exits when an incoming migration fails; its stderr says why.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let why = q.stderr_tail();
            let exit = q
                .exited()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "still running".into());
            Err(LaunchError::Process(format!(
                "resume failed: {e}; QEMU ({exit}) said: {why}"
            )))
        }
    }
}

async fn incoming(q: &mut QemuProcess, device_state: &Path) -> Result<(), LaunchError> {
    q.qmp.set_capability("x-ignore-shared", true).await?;
    q.qmp
        .migrate_incoming(&format!("exec:cat {}", device_state.display()))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = q.qmp.status().await?;
        match status.as_str() {
            "running" => return Ok(()),
            "paused" | "postmigrate" => {
                q.qmp.cont().await?;
            }
            "inmigrate" | "prelaunch" | "restore-vm" => {}
            other => {
                return Err(LaunchError::Qmp(QmpError::Unexpected(format!(
                    "guest state {other} after incoming migration"
                ))))
            }
        }
        if Instant::now() >= deadline {
            return Err(LaunchError::Qmp(QmpError::Timeout(
                "migrate-incoming".into(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
