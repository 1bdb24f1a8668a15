//! Taking a VM over on this node from the replica held here: operator resume, automatic
//! failover (`memrep.takeover` from the failover actor) and phase 2 of a migration all come
//! here. The order is what makes it safe:
//!
//! 1. the VM record is rewritten naming this node as primary under the new generation, on
//!    the condition that it is still at the version the caller read (compare and set in
//!    Raft): of two concurrent takeovers only one gets past this step;
//! 2. the local replica is fenced to the new generation (epochs of the old primary are
//!    refused from then on);
//! 3. QEMU resumes on the replica (`-incoming`, committed device state, `cont`);
//! 4. the record says `running`, with the backups that could be reached.

use std::sync::Arc;

use axum::http::StatusCode;
use hyphae_core::rpc::{ErrorCode, Router, RpcFault};
use hyphae_core::NodeId;

use crate::control_rpc::{ReplicaState, Takeover, TakeoverAnswer, TakeoverRequest};
use crate::qemu::{InstancePaths, Launch};
use crate::restore;
use crate::service::{self, Shared};
use crate::tables::{now_unix_ms, FailoverTiming, VmRecord, VmState};

/// An error for the local API (status code) and, mapped, for the RPC caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub code: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// An error with a status code.
    pub fn new(code: StatusCode, message: impl std::fmt::Display) -> ApiError {
        ApiError {
            code,
            message: message.to_string(),
        }
    }

    fn to_fault(&self) -> RpcFault {
        let code = match self.code {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::BadRequest,
            StatusCode::CONFLICT => ErrorCode::Unavailable,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            _ => ErrorCode::Internal,
        };
        RpcFault::new(code, self.message.clone())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// What a takeover needs.
#[derive(Debug, Clone)]
pub struct ResumeParams {
    /// The VM record as read (spec, mode, replicas, generation).
    pub record: VmRecord,
    /// Its version (0: no record yet); the takeover's write is conditional on it.
    pub expect_version: u64,
    /// The lowest generation to run under.
    pub generation: u64,
    /// The backups of the new primary.
    pub backups: Vec<NodeId>,
    /// Why, for the record's note.
    pub reason: String,
    /// For failovers: when the old primary was seen gone.
    pub detected_unix_ms: Option<u64>,
    /// For migrations: the epoch (of the record's generation) the replica must have.
    pub require_epoch: Option<u64>,
}

/// Resumes the local replica of `p.record`'s VM as its new primary (see the module doc).
#[tracing::instrument(skip_all, fields(vm = %p.record.spec.name, generation = p.generation))]
pub(crate) async fn resume_here(s: &Shared, p: ResumeParams) -> Result<TakeoverAnswer, ApiError> {
    let spec = p.record.spec.clone();
    let vm = spec.name.clone();
    spec.validate(s.max_mem_mib)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    if s.vms.lock().await.contains_key(&vm) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("VM {vm} already runs here"),
        ));
    }
    let store = s
        .replicas
        .get(&vm)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.message))?;
    let (meta, ram, disk, device) = {
        let st = store.lock().await;
        let m = st
            .require_committed()
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
        (
            m,
            st.ram_path().to_path_buf(),
            st.disk_path().to_path_buf(),
            st.device_path(),
        )
    };
    if meta.ram_bytes != spec.mem_bytes() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "memory size differs from the replica's",
        ));
    }
    // The disk comes from the replica (committed with the RAM), never from the image again.
    if spec.disk.is_some() != (meta.disk_bytes > 0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            if meta.disk_bytes > 0 {
                "the replica has a disk the spec does not name"
            } else {
                "the spec names a disk the replica does not have"
            },
        ));
    }
    if let Some(epoch) = p.require_epoch {
        if meta.generation != p.record.generation || meta.epoch < epoch {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "replica at generation {} epoch {}, the handover needs generation {} epoch {epoch}",
                    meta.generation, meta.epoch, p.record.generation
                ),
            ));
        }
    }
    let generation = p
        .generation
        .max(meta.generation + 1)
        .max(p.record.generation + 1);
    let members = service::members(s).await?;
    let mut record = VmRecord {
        primary: s.node,
        backups: p.backups.clone(),
        generation,
        state: VmState::Starting,
        updated_unix_ms: now_unix_ms(),
        note: Some(p.reason.clone()),
        failover: None,
        ..p.record.clone()
    };
    // 1. Claim the VM in Raft (compare and set).
    let version = s
        .tables
        .put_vm(&record, Some(p.expect_version))
        .await
        .map_err(|e| match e {
            crate::tables::TableError::Coordinator(
                hyphae_chunkstore::coordinator_client::CoordError::Conflict,
            ) => ApiError::new(
                StatusCode::CONFLICT,
                format!("VM {vm}: the record changed meanwhile (another takeover won)"),
            ),
            e => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e),
        })?;
    // 2. Fence: from now on this replica refuses the old generations' epochs.
    store
        .lock()
        .await
        .fence(generation)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let (links, connected) = service::connect_backups(s, &members, &p.backups, false).await?;
    // 3. Resume QEMU on the replica.
    let mut paths = InstancePaths::new(&s.shm_dir, &s.run_dir, &vm, &format!("g{generation}"));
    paths.ram = ram;
    paths.disk = (meta.disk_bytes > 0).then_some(disk);
    let launch = Launch {
        spec: spec.clone(),
        accel: s.accel,
        paths,
        incoming: true,
        owns_ram: false,
    };
    let started = async {
        let q = restore::resume(launch, &device)
            .await
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
        let running = now_unix_ms();
        service::start_runner(
            s,
            &vm,
            record.mode,
            record.interval_ms,
            q,
            generation,
            links,
        )
        .await?;
        Ok::<u64, ApiError>(running)
    }
    .await;
    // 4. Record the outcome.
    record.updated_unix_ms = now_unix_ms();
    let result = match started {
        Ok(running) => {
            record.state = VmState::Running;
            record.backups = connected;
            record.failover = p.detected_unix_ms.map(|d| FailoverTiming {
                detected_unix_ms: d,
                running_unix_ms: running,
                detection_to_running_ms: running.saturating_sub(d),
            });
            Ok(TakeoverAnswer {
                generation,
                resumed_from_epoch: meta.epoch,
            })
        }
        Err(e) => {
            record.state = VmState::Failed;
            record.note = Some(format!(
                "{}; resume on {} failed: {}",
                p.reason, s.node, e.message
            ));
            Err(e)
        }
    };
    if let Err(e) = s.tables.put_vm(&record, Some(version)).await {
        tracing::warn!(error = %e, "could not record the takeover's outcome");
    }
    if result.is_ok() {
        tracing::info!(
            vm,
            generation,
            from_epoch = meta.epoch,
            backups = ?record.backups,
            "took the VM over: {}",
            p.reason
        );
    }
    result
}

/// Adds `memrep.replica_state` and `memrep.takeover` to memrep's RPC router.
pub(crate) fn with_control_methods(router: Router, state: Shared) -> Router {
    let s1 = state.clone();
    router
        .unary::<ReplicaState, _, _>(move |_peer, req| {
            let s = s1.clone();
            async move {
                let store = s.replicas.get(&req.vm).await?;
                let meta = store.lock().await.meta();
                Ok(meta)
            }
        })
        .unary::<Takeover, _, _>(move |peer, req: TakeoverRequest| {
            let s: Shared = Arc::clone(&state);
            async move {
                tracing::info!(vm = %req.record.spec.name, from = %peer.node, "takeover asked");
                let params = ResumeParams {
                    record: req.record,
                    expect_version: req.record_version,
                    generation: req.generation,
                    backups: req.backups,
                    reason: req.reason,
                    detected_unix_ms: req.detected_unix_ms,
                    require_epoch: req.require_epoch,
                };
                resume_here(&s, params).await.map_err(|e| e.to_fault())
            }
        })
}
