//! Planned two-phase migration (`hyphae vm migrate NAME --to NODE`, `POST
//! /vms/{name}/migrate` on the VM's primary):
//!
//! 1. **Converge**: the target becomes a backup if it is not one (the primary moves to a new
//!    generation whose first epoch is a base, so the target gets a whole replica), then
//!    epochs flow as usual until the target has acknowledged recent epochs and the lag is
//!    small.
//! 2. **Switch**, the only pause: the guest is paused, the final epoch taken and sent, and once
//!    the target acknowledged it the target takes the VM over (`memrep.takeover`, requiring
//!    that final epoch: fence, record, QEMU on its replica). The old primary then stops its
//!    QEMU and stays a backup of the new generation if the replica count needs it (otherwise it
//!    is released). If anything in phase 2 fails, the guest
//!    simply continues on the old primary.

use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::backup_choice;
use crate::control_rpc::TakeoverRequest;
use crate::service::{self, Shared};
use crate::supervisor;
use crate::tables::{now_unix_ms, VmState};
use crate::takeover::ApiError;
use crate::vm_runner::RunnerCommand;

/// How long phase 1 may take to converge (a base epoch of a large guest on a slow link).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(300);
/// Phase 2 starts once the replication lag is below this.
const SMALL_LAG_MS: f64 = 500.0;

/// The body of `POST /vms/{name}/migrate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    /// The target node: name, id or address.
    pub to: String,
}

/// `POST /vms/{name}/migrate`.
#[tracing::instrument(skip_all, fields(vm = %name, to = %req.to))]
pub(crate) async fn migrate_vm(
    State(s): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<MigrateRequest>,
) -> Response {
    match migrate(&s, &name, &req.to).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn migrate(s: &Shared, name: &str, to: &str) -> Result<serde_json::Value, ApiError> {
    let (control, stats) = match s.vms.lock().await.get(name) {
        Some(v) => (v.control.clone(), v.stats.clone()),
        None => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("VM {name} does not run on this node: migrate it on its primary"),
            ))
        }
    };
    let members = service::members(s).await?;
    let target = backup_choice::resolve(to, &members)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?
        .clone();
    if target.id == s.node {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the VM already runs on that node",
        ));
    }
    if !target.up {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("node {to} is not up"),
        ));
    }
    let (mut record, mut version) = s
        .tables
        .vm(name)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "the VM has no record"))?;
    if record.primary != s.node || record.state != VmState::Running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("the record says {:?} on {}", record.state, record.primary),
        ));
    }
    let started = Instant::now();

    // Phase 1: the target as a backup, converged.
    let added = !record.backups.contains(&target.id);
    if added {
        let (links, _) = service::connect_backups(s, &members, &[target.id], true).await?;
        let link = links
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "target unreachable"))?;
        let generation = record.generation + 1;
        let (done, added_rx) = oneshot::channel();
        control
            .send(RunnerCommand::AddBackup {
                link,
                generation,
                done,
            })
            .map_err(|_| ApiError::new(StatusCode::CONFLICT, "the VM stopped"))?;
        added_rx
            .await
            .map_err(|_| ApiError::new(StatusCode::CONFLICT, "the VM stopped"))?;
        record.generation = generation;
        record.backups.push(target.id);
        record.updated_unix_ms = now_unix_ms();
        record.note = Some(format!("migration to {}: converging", target.id));
        version = s
            .tables
            .put_vm(&record, Some(version))
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    }
    let target_name = target.id.to_string();
    // Epoch numbers restart at 1 in the new generation when the target was added.
    let first = if added { 0 } else { stats.lock().await.epoch };
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let st = stats.lock().await.clone();
        if st.state == "failed" || st.state == "stopped" {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("the VM {}: {:?}", st.state, st.error),
            ));
        }
        if !st.backups.contains(&target_name) {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "the target stopped receiving epochs",
            ));
        }
        let converged = st.generation == record.generation
            && st.acknowledged >= first + 2
            && st.lag_ms <= SMALL_LAG_MS;
        if converged {
            break;
        }
        if Instant::now() > deadline {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("the target did not converge in {CONVERGE_TIMEOUT:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converged_after = started.elapsed();

    // Phase 2: one pause, the final epoch, the switch.
    let (done, point_rx) = oneshot::channel();
    let (resume, resume_rx) = oneshot::channel();
    control
        .send(RunnerCommand::Handover {
            target: target_name.clone(),
            done,
            resume: resume_rx,
        })
        .map_err(|_| ApiError::new(StatusCode::CONFLICT, "the VM stopped"))?;
    let point = point_rx
        .await
        .map_err(|_| ApiError::new(StatusCode::CONFLICT, "the VM stopped"))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("handover failed, the VM runs on here: {e}"),
            )
        })?;
    let mut backups: Vec<_> = record
        .backups
        .iter()
        .filter(|b| **b != target.id)
        .copied()
        .collect();
    // The old primary stays as a backup of the new generation where the replica count needs
    // it (the target was a backup already); otherwise it is released.
    if backups.len() < record.replicas {
        backups.push(s.node);
    }
    let req = TakeoverRequest {
        record: record.clone(),
        record_version: version,
        generation: record.generation + 1,
        backups,
        reason: format!("migrated from {}", s.node),
        detected_unix_ms: None,
        require_epoch: Some(point.epoch),
    };
    match supervisor::ask_takeover(s, &members, target.id, req).await {
        Ok(answer) => {
            let pause = point.paused_at.elapsed();
            let _ = resume.send(false);
            service::stop_local(s, name).await;
            tracing::info!(vm = name, to = %target.id, pause_ms = pause.as_millis() as u64, "migrated");
            Ok(json!({
                "name": name,
                "from": s.node.to_string(),
                "to": target.id.to_string(),
                "generation": answer.generation,
                "final_epoch": point.epoch,
                "target_added_as_backup": added,
                "converged_ms": converged_after.as_millis() as u64,
                "pause_ms": pause.as_millis() as u64,
            }))
        }
        Err(e) => {
            let _ = resume.send(true);
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the target refused the takeover, the VM runs on here: {e}"),
            ))
        }
    }
}
