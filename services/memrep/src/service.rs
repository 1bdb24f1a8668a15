//! The memrep service (`hyphae memrep`, also a task of `hyphae node`): the QUIC endpoint that
//! receives epochs into this node's replicas (udp/7444, ALPN `hyphae-memrep/1`), and the local
//! API on `<run>/memrep.sock` that starts VMs as primaries on this node and resumes a replica
//! (failover, migration target).
//!
//! Local API: `GET /status`, `GET /metrics`, `GET /vms`, `POST /vms` (start a VM here, with
//! its backups), `DELETE /vms/{name}`, `GET /vms/{name}/console` (serial log), `GET /replicas`,
//! `POST /replicas/{vm}/resume` (resume the replica here as the new primary).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use hyphae_core::pki::Membership;
use hyphae_core::rpc::{self, Limits, RpcMetrics};
use hyphae_core::transport::{MeshEndpoint, MeshTls, TransportError};
use hyphae_core::{ipc, notify, NodeContext};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::accel::{self, Accel};
use crate::checkpoint::Primary;
use crate::epoch::scheduler::{Mode, SchedulerConfig};
use crate::epoch_rpc::{self, Replicas, MEMREP};
use crate::qemu::{InstancePaths, Launch, QemuProcess, VmSpec};
use crate::vm_runner::{self, BackupLink, VmStats};
use crate::{dirty, restore};

/// Why the memrep service stopped.
#[derive(Debug, thiserror::Error)]
pub enum MemrepError {
    /// The QUIC endpoint could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The local socket could not be served.
    #[error(transparent)]
    Ipc(#[from] ipc::IpcError),
    /// A directory could not be made.
    #[error("memrep state: {0}")]
    Io(#[from] std::io::Error),
}

/// The request of `POST /vms` and `POST /replicas/{vm}/resume`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVm {
    /// The VM.
    #[serde(flatten)]
    pub spec: VmSpec,
    /// Backups' memrep endpoints (`IP:PORT`).
    #[serde(default)]
    pub backups: Vec<SocketAddr>,
    /// Emergency policy.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Base epoch interval in ms (default 200).
    #[serde(default)]
    pub interval_ms: Option<u64>,
}

fn default_mode() -> Mode {
    Mode::Consistent
}

struct RunningVm {
    stats: Arc<Mutex<VmStats>>,
    cancel: CancellationToken,
    serial: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

struct MemrepState {
    accel: Accel,
    accel_reason: &'static str,
    soft_dirty: Result<(), String>,
    endpoint: MeshEndpoint,
    limits: Limits,
    replicas: Arc<Replicas>,
    vms: Mutex<HashMap<String, RunningVm>>,
    run_dir: PathBuf,
    shm_dir: PathBuf,
    max_mem_mib: u64,
    shutdown: CancellationToken,
}

type Shared = Arc<MemrepState>;

/// Half of the host's available memory, the most one VM may ask for.
fn max_vm_mem_mib() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb / 1024 / 2)
        .unwrap_or(512)
}

/// RAM files of primaries that were running when this node died (kill -9, power loss of the
/// process) are garbage: the VM has failed over or will be resumed from a replica. Replica
/// RAM files are kept.
fn remove_stale_primaries(shm_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(shm_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".ram") && !name.ends_with("-replica.ram") {
            tracing::info!(file = %name, "removing a stale primary RAM file");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

async fn wait_membership(ctx: &NodeContext, shutdown: &CancellationToken) -> Option<Membership> {
    if let Some(m) = &ctx.membership {
        return Some(m.clone());
    }
    loop {
        if let Ok(Some(m)) = Membership::load(&ctx.paths.identity_dir(), ctx.key.clone()) {
            return Some(m);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Runs memrep until `shutdown` fires.
pub async fn run(ctx: Arc<NodeContext>, shutdown: CancellationToken) -> Result<(), MemrepError> {
    // Type=notify: the unit is started while the node waits to become a member.
    notify::ready("memrep: waiting for this node to join a mesh");
    let Some(membership) = wait_membership(&ctx, &shutdown).await else {
        return Ok(());
    };
    let node = membership.node_id();
    let state_dir = ctx.paths.service_state(MEMREP.name);
    let run_dir = state_dir.join("vms");
    std::fs::create_dir_all(&run_dir)?;
    // Per node, so that several nodes on one host (tests, `make run`) never share a file.
    let node_hex = node.to_string();
    let shm_dir = PathBuf::from("/dev/shm").join(format!(
        "hyphae-memrep-{}",
        &node_hex[..node_hex.len().min(16)]
    ));
    // Created when the first VM or replica needs it (an idle node leaves nothing in /dev/shm).
    remove_stale_primaries(&shm_dir);
    let replicas = Arc::new(Replicas::new(&state_dir.join("replicas"), &shm_dir));
    let (accel, accel_reason) = accel::probe();
    let soft_dirty = dirty::soft_dirty::probe();

    let tls = MeshTls::new(&membership)?;
    let bind = SocketAddr::new(ctx.config.node.listen, ctx.config.ports.memrep);
    let endpoint = MeshEndpoint::server(bind, &tls, MEMREP, &ctx.config.transport)?;
    let limits = Limits::from(&ctx.config.transport);
    let rpc_task = tokio::spawn(rpc::serve(
        endpoint.clone(),
        Arc::new(epoch_rpc::router(node, replicas.clone())),
        limits,
        RpcMetrics::register(&ctx.metrics),
        shutdown.clone(),
    ));
    let state: Shared = Arc::new(MemrepState {
        accel,
        accel_reason,
        soft_dirty,
        endpoint,
        limits,
        replicas,
        vms: Mutex::new(HashMap::new()),
        run_dir,
        shm_dir,
        max_mem_mib: max_vm_mem_mib(),
        shutdown: shutdown.clone(),
    });
    let status = {
        let s = state.clone();
        move || {
            json!({
                "ready": true,
                "service": MEMREP.name,
                "node_id": node.to_string(),
                "accelerator": s.accel,
                "accelerator_reason": s.accel_reason,
                "dirty_tracking": if s.soft_dirty.is_ok() { "soft-dirty" } else { "compare-scan" },
                "soft_dirty_probe": match &s.soft_dirty { Ok(()) => "works".to_string(), Err(e) => e.clone() },
                "max_vm_mem_mib": s.max_mem_mib,
                "shm_dir": s.shm_dir.display().to_string(),
            })
        }
    };
    let api = ipc::base_router(status, ctx.metrics.clone()).merge(api_router(state.clone()));
    let ipc_task = ipc::serve(&ctx.paths.socket(MEMREP.name), api, shutdown.clone()).await?;
    let line = format!(
        "memrep of node {node} on udp/{} ({} guests, {} dirty tracking)",
        ctx.config.ports.memrep,
        accel.as_str(),
        if state.soft_dirty.is_ok() {
            "soft-dirty"
        } else {
            "compare-scan"
        }
    );
    tracing::info!("{line}");
    notify::ready(&line);

    shutdown.cancelled().await;
    let vms: Vec<RunningVm> = state.vms.lock().await.drain().map(|(_, v)| v).collect();
    for v in vms {
        v.cancel.cancel();
        let _ = v.task.await;
    }
    let _ = rpc_task.await;
    let _ = ipc_task.await;
    Ok(())
}

fn api_router(state: Shared) -> axum::Router {
    axum::Router::new()
        .route("/vms", get(list_vms).post(create_vm))
        .route("/vms/{name}", get(vm_status).delete(delete_vm))
        .route("/vms/{name}/console", get(console))
        .route("/replicas", get(list_replicas))
        .route("/replicas/{vm}/resume", post(resume_replica))
        .with_state(state)
}

fn error(code: StatusCode, message: impl std::fmt::Display) -> Response {
    (code, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn list_vms(State(s): State<Shared>) -> Response {
    let vms = s.vms.lock().await;
    let mut out = Vec::new();
    for (name, v) in vms.iter() {
        out.push(json!({ "name": name, "stats": *v.stats.lock().await }));
    }
    Json(json!({ "vms": out })).into_response()
}

async fn vm_status(State(s): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let vms = s.vms.lock().await;
    match vms.get(&name) {
        Some(v) => Json(json!({ "name": name, "stats": *v.stats.lock().await })).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no VM {name} on this node")),
    }
}

async fn console(State(s): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let serial = match s.vms.lock().await.get(&name) {
        Some(v) => v.serial.clone(),
        None => return error(StatusCode::NOT_FOUND, format!("no VM {name} on this node")),
    };
    match tokio::fs::read(&serial).await {
        Ok(b) => {
            let tail = &b[b.len().saturating_sub(64 * 1024)..];
            String::from_utf8_lossy(tail).into_owned().into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn delete_vm(State(s): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(v) = s.vms.lock().await.remove(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no VM {name} on this node"));
    };
    v.cancel.cancel();
    let _ = v.task.await;
    Json(json!({ "deleted": name })).into_response()
}

async fn list_replicas(State(s): State<Shared>) -> Response {
    let list: Vec<_> = s
        .replicas
        .list()
        .await
        .into_iter()
        .map(|(vm, meta)| json!({ "vm": vm, "committed": meta }))
        .collect();
    Json(json!({ "replicas": list })).into_response()
}

async fn connect_backups(s: &MemrepState, addrs: &[SocketAddr]) -> Result<Vec<BackupLink>, String> {
    let mut out = Vec::new();
    for a in addrs {
        let conn = s
            .endpoint
            .connect(*a, None)
            .await
            .map_err(|e| format!("backup {a}: {e}"))?;
        out.push(BackupLink {
            name: a.to_string(),
            conn,
        });
    }
    Ok(out)
}

fn scheduler_config(req: &CreateVm) -> SchedulerConfig {
    let mut cfg = SchedulerConfig {
        mode: req.mode,
        ..SchedulerConfig::default()
    };
    if let Some(ms) = req.interval_ms {
        cfg.base_interval = Duration::from_millis(ms.clamp(10, 60_000));
    }
    cfg
}

#[tracing::instrument(skip_all, fields(vm = %req.spec.name))]
async fn create_vm(State(s): State<Shared>, Json(req): Json<CreateVm>) -> Response {
    if let Err(e) = req.spec.validate(s.max_mem_mib) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    if s.vms.lock().await.contains_key(&req.spec.name) {
        return error(
            StatusCode::CONFLICT,
            format!("VM {} already runs here", req.spec.name),
        );
    }
    let backups = match connect_backups(&s, &req.backups).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_GATEWAY, e),
    };
    let name = req.spec.name.clone();
    if let Err(e) = std::fs::create_dir_all(&s.shm_dir) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
    }
    let launch = Launch {
        spec: req.spec.clone(),
        accel: s.accel,
        paths: InstancePaths::new(&s.shm_dir, &s.run_dir, &name, "g1"),
        incoming: false,
        owns_ram: true,
    };
    let q = match QemuProcess::start(launch).await {
        Ok(q) => q,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    start_runner(&s, &req, q, 1, backups).await
}

async fn start_runner(
    s: &Shared,
    req: &CreateVm,
    q: QemuProcess,
    generation: u64,
    backups: Vec<BackupLink>,
) -> Response {
    let name = req.spec.name.clone();
    let serial = q.launch.paths.serial.clone();
    let device = s.run_dir.join(format!("{name}-g{generation}.device"));
    let primary = match Primary::new(q, generation, device).await {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let stats = Arc::new(Mutex::new(VmStats {
        state: "running".into(),
        generation,
        ..VmStats::default()
    }));
    let cancel = s.shutdown.child_token();
    let task = tokio::spawn(vm_runner::run(
        name.clone(),
        primary,
        backups,
        scheduler_config(req),
        s.limits,
        stats.clone(),
        cancel.clone(),
    ));
    s.vms.lock().await.insert(
        name.clone(),
        RunningVm {
            stats,
            cancel,
            serial,
            task,
        },
    );
    (
        StatusCode::CREATED,
        Json(json!({ "name": name, "generation": generation })),
    )
        .into_response()
}

#[tracing::instrument(skip_all, fields(vm = %vm))]
async fn resume_replica(
    State(s): State<Shared>,
    UrlPath(vm): UrlPath<String>,
    Json(req): Json<CreateVm>,
) -> Response {
    if req.spec.name != vm {
        return error(StatusCode::BAD_REQUEST, "spec name differs from the path");
    }
    if let Err(e) = req.spec.validate(s.max_mem_mib) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let store = match s.replicas.get(&vm).await {
        Ok(st) => st,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (meta, ram, device) = {
        let st = store.lock().await;
        match st.require_committed() {
            Ok(m) => (m, st.ram_path().to_path_buf(), st.device_path()),
            Err(e) => return error(StatusCode::CONFLICT, e),
        }
    };
    if meta.ram_bytes != req.spec.mem_bytes() {
        return error(
            StatusCode::BAD_REQUEST,
            "memory size differs from the replica's",
        );
    }
    let backups = match connect_backups(&s, &req.backups).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_GATEWAY, e),
    };
    let generation = meta.generation + 1;
    // Fence: from now on this replica refuses the old generation's epochs.
    if let Err(e) = store.lock().await.fence(generation) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
    }
    let mut paths = InstancePaths::new(&s.shm_dir, &s.run_dir, &vm, &format!("g{generation}"));
    paths.ram = ram;
    let launch = Launch {
        spec: req.spec.clone(),
        accel: s.accel,
        paths,
        incoming: true,
        owns_ram: false,
    };
    let q = match restore::resume(launch, &device).await {
        Ok(q) => q,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    start_runner(&s, &req, q, generation, backups).await
}
