//! The memrep service (`hyphae memrep`, also a task of `hyphae node`): the QUIC endpoint that
//! receives epochs into this node's replicas (udp/7444, ALPN `hyphae-memrep/1`), and the local
//! API on `<run>/memrep.sock` that starts VMs as primaries on this node and resumes a replica
//! (failover, migration target).
//!
//! Local API: `GET /status`, `GET /metrics`, `GET /vms`, `POST /vms` (start a VM here, with
//! its backups), `DELETE /vms/{name}`, `POST /vms/{name}/stop`, `GET /vms/{name}/console`
//! (serial log), `GET /replicas`,
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
use hyphae_core::rpc::{self, Limits, RpcMetrics};
use hyphae_core::transport::{MeshEndpoint, MeshTls, TransportError};
use hyphae_core::{ipc, notify, NodeContext};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use hyphae_core::NodeId;

use crate::accel::{self, Accel};
use crate::backup_choice;
use crate::checkpoint::Primary;
use crate::epoch::scheduler::{Mode, SchedulerConfig};
use crate::epoch_rpc::{self, Replicas, MEMREP};
use crate::qemu::{InstancePaths, Launch, QemuProcess, VmSpec};
use crate::tables::{now_unix_ms, TableError, Tables, VmRecord, VmState};
use crate::takeover::{self, ApiError, ResumeParams};
use crate::vm_runner::{self, BackupLink, VmStats};
use crate::vm_throttle::{ThrottleEnv, ThrottleMetrics};
use crate::{dirty, migrate, supervisor};

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
    /// Backups, by node name, node id or address (`IP[:PORT]`); resolved through the
    /// directory. Missing ones (up to `replicas`) are chosen by memrep among live nodes.
    #[serde(default)]
    pub backups: Vec<String>,
    /// How many backups the VM keeps (default: as many as named, at least 2 when none
    /// are named; failover restores this count).
    #[serde(default)]
    pub replicas: Option<usize>,
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

pub(crate) struct RunningVm {
    pub(crate) stats: Arc<Mutex<VmStats>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) serial: PathBuf,
    pub(crate) task: tokio::task::JoinHandle<()>,
    /// Orders for the VM's runner (migration).
    pub(crate) control: tokio::sync::mpsc::UnboundedSender<vm_runner::RunnerCommand>,
}

pub(crate) struct MemrepState {
    pub(crate) node: NodeId,
    pub(crate) accel: Accel,
    pub(crate) accel_reason: &'static str,
    pub(crate) soft_dirty: Result<(), String>,
    pub(crate) endpoint: MeshEndpoint,
    pub(crate) limits: Limits,
    pub(crate) replicas: Arc<Replicas>,
    pub(crate) vms: Mutex<HashMap<String, RunningVm>>,
    pub(crate) run_dir: PathBuf,
    pub(crate) shm_dir: PathBuf,
    pub(crate) max_mem_mib: u64,
    pub(crate) shutdown: CancellationToken,
    /// The VM and replica tables (coordinator key space).
    pub(crate) tables: Tables,
    /// The memrep port of every node (the mesh uses one port per service).
    pub(crate) port: u16,
    /// This node's coordinator socket (queen checks).
    pub(crate) coordinator_socket: PathBuf,
    /// Where VM cgroups go (the CPU throttle).
    pub(crate) throttle: ThrottleEnv,
    /// This node's chunkstore socket (disk images from the mesh store).
    pub(crate) chunkstore_socket: PathBuf,
}

pub(crate) type Shared = Arc<MemrepState>;

/// Half of the host's available memory, the most one VM may ask for.
fn max_vm_mem_mib() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb / 1024 / 2)
        .unwrap_or(512)
}

/// RAM and disk files of primaries that were running when this node died (kill -9, power loss
/// of the process) are garbage: the VM has failed over or will be resumed from a replica.
/// Replica files are kept.
fn remove_stale_primaries(shm_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(shm_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let primary_ram = name.ends_with(".ram") && !name.ends_with("-replica.ram");
        let primary_disk = name.ends_with(".disk") && !name.ends_with("-replica.disk");
        if primary_ram || primary_disk {
            tracing::info!(file = %name, "removing a stale primary RAM or disk file");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Runs memrep until `shutdown` fires.
pub async fn run(ctx: Arc<NodeContext>, shutdown: CancellationToken) -> Result<(), MemrepError> {
    // Type=notify: the unit is started while the node waits to become a member.
    notify::ready("memrep: waiting for this node to join a mesh");
    let Some(membership) = ctx.wait_membership(&shutdown).await else {
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
    let throttle_root =
        crate::cgroup_throttle::probe(&node_hex[..node_hex.len().min(16)], &state_dir)
            .map(Arc::new)
            .map_err(|e| e.to_string());
    if let Err(why) = &throttle_root {
        tracing::warn!(why, "VM CPU throttling unavailable");
    }
    let throttle = ThrottleEnv {
        metrics: ThrottleMetrics::register(
            &ctx.metrics,
            throttle_root.as_ref().map_or(0, |r| match r.version {
                crate::cgroup_throttle::CgroupVersion::V1 => 1,
                crate::cgroup_throttle::CgroupVersion::V2 => 2,
            }),
        ),
        root: throttle_root,
    };

    let tls = MeshTls::new(&membership)?;
    let bind = SocketAddr::new(ctx.config.node.listen, ctx.config.ports.memrep);
    let endpoint = MeshEndpoint::server(bind, &tls, MEMREP, &ctx.config.transport)?;
    let limits = Limits::from(&ctx.config.transport);
    let coordinator_socket = ctx.paths.socket("coordinator");
    let state: Shared = Arc::new(MemrepState {
        node,
        tables: Tables::new(coordinator_socket.clone()),
        port: ctx.config.ports.memrep,
        coordinator_socket,
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
        throttle,
        chunkstore_socket: ctx.paths.socket("chunkstore"),
    });
    let rpc_task = tokio::spawn(rpc::serve(
        state.endpoint.clone(),
        Arc::new(takeover::with_control_methods(
            epoch_rpc::router(node, state.replicas.clone()),
            state.clone(),
        )),
        limits,
        RpcMetrics::register(&ctx.metrics),
        shutdown.clone(),
    ));
    let supervisor_task = tokio::spawn(supervisor::run(state.clone()));
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
                "cpu_throttle": match &s.throttle.root {
                    Ok(r) => json!({
                        "available": true,
                        "cgroup": r.version.as_str(),
                        "dir": r.dir.display().to_string(),
                        "hierarchy_path": r.hierarchy_path,
                        "own_mount": r.own_mount.as_ref().map(|m| m.display().to_string()),
                        "delegated": r.delegated,
                    }),
                    Err(why) => json!({ "available": false, "reason": why }),
                },
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
    if let Ok(root) = &state.throttle.root {
        root.remove();
    }
    let _ = supervisor_task.await;
    Ok(())
}

fn api_router(state: Shared) -> axum::Router {
    axum::Router::new()
        .route("/vms", get(list_vms).post(create_vm))
        .route("/vms/{name}", get(vm_status).delete(delete_vm))
        .route("/vms/{name}/console", get(console))
        .route("/vms/{name}/stop", post(stop_vm))
        .route("/vms/{name}/migrate", post(migrate::migrate_vm))
        .route("/replicas", get(list_replicas))
        .route("/replicas/{vm}/resume", post(resume_replica))
        .with_state(state)
}

pub(crate) fn error(code: StatusCode, message: impl std::fmt::Display) -> Response {
    (code, Json(json!({ "error": message.to_string() }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.code, self.message)
    }
}

/// `GET /vms`: every VM the mesh knows (the VM table), with live figures for those running
/// here; VMs running here without a record (coordinator unreachable at create) too.
async fn list_vms(State(s): State<Shared>) -> Response {
    let mut local = HashMap::new();
    for (name, v) in s.vms.lock().await.iter() {
        local.insert(name.clone(), v.stats.lock().await.clone());
    }
    let (records, table_error) = match s.tables.vms().await {
        Ok(r) => (r, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let mut out = Vec::new();
    for (record, version) in records {
        let stats = local.remove(&record.spec.name);
        out.push(json!({
            "name": record.spec.name,
            "record": record,
            "version": version,
            "here": record.primary == s.node,
            "stats": stats,
        }));
    }
    for (name, stats) in local {
        out.push(json!({ "name": name, "record": null, "here": true, "stats": stats }));
    }
    Json(json!({ "vms": out, "tables_error": table_error })).into_response()
}

/// `GET /vms/{name}`: the VM's record, its replicas' committed state (the replica table)
/// and, on its primary, the live figures.
async fn vm_status(State(s): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let stats = match s.vms.lock().await.get(&name) {
        Some(v) => Some(v.stats.lock().await.clone()),
        None => None,
    };
    let record = match s.tables.vm(&name).await {
        Ok(r) => r,
        Err(e) if stats.is_some() => {
            tracing::warn!(error = %e, "VM table unreadable");
            None
        }
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    if record.is_none() && stats.is_none() {
        return error(StatusCode::NOT_FOUND, format!("no VM {name} in the mesh"));
    }
    let replicas: Vec<_> = s
        .tables
        .replicas(&name)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(node, row)| json!({ "node": node.to_string(), "committed": row }))
        .collect();
    let (record, version) = match record {
        Some((r, v)) => (Some(r), Some(v)),
        None => (None, None),
    };
    Json(json!({
        "name": name,
        "record": record,
        "version": version,
        "replicas": replicas,
        "stats": stats,
    }))
    .into_response()
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

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    /// Also forget the VM: its record and replica rows (`hyphae vm delete`).
    #[serde(default)]
    forget: bool,
}

/// Stops a VM running here and returns whether it did.
pub(crate) async fn stop_local(s: &MemrepState, name: &str) -> bool {
    let Some(v) = s.vms.lock().await.remove(name) else {
        return false;
    };
    v.cancel.cancel();
    let _ = v.task.await;
    true
}

/// `DELETE /vms/{name}[?forget=true]`: stops the VM (on its primary); the record says
/// `stopped` (replicas are kept, nothing fails over), or with `forget` is removed with the
/// replica rows.
async fn delete_vm(
    State(s): State<Shared>,
    UrlPath(name): UrlPath<String>,
    axum::extract::Query(q): axum::extract::Query<DeleteQuery>,
) -> Response {
    let record = match s.tables.vm(&name).await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let running_here = s.vms.lock().await.contains_key(&name);
    if let Some((r, _)) = &record {
        let active = matches!(r.state, VmState::Running | VmState::Starting);
        if !running_here && active && r.primary != s.node {
            return error(
                StatusCode::CONFLICT,
                format!(
                    "VM {name} runs on node {}: stop or delete it there",
                    r.primary
                ),
            );
        }
    } else if !running_here {
        return error(StatusCode::NOT_FOUND, format!("no VM {name} in the mesh"));
    }
    // The record first: once it says stopped, failover leaves the VM alone.
    let result = match (&record, q.forget) {
        (Some(_), true) => s.tables.delete_vm(&name).await,
        (Some((r, version)), false) => {
            let mut r = r.clone();
            r.state = VmState::Stopped;
            r.updated_unix_ms = now_unix_ms();
            r.note = Some("stopped by a user".into());
            s.tables.put_vm(&r, Some(*version)).await.map(|_| ())
        }
        (None, _) => Ok(()),
    };
    if let Err(e) = result {
        return error(StatusCode::SERVICE_UNAVAILABLE, e);
    }
    stop_local(&s, &name).await;
    let what = if q.forget { "deleted" } else { "stopped" };
    Json(json!({ what: name })).into_response()
}

/// `POST /vms/{name}/stop`: QEMU quits and the VM's cgroup and RAM file go; the VM stays
/// listed (state `stopped`, console readable) until `DELETE`.
async fn stop_vm(State(s): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let cancel = match s.vms.lock().await.get(&name) {
        Some(v) => v.cancel.clone(),
        None => return error(StatusCode::NOT_FOUND, format!("no VM {name} on this node")),
    };
    // The record first: once it says stopped, failover leaves the VM alone.
    if let Ok(Some((mut r, version))) = s.tables.vm(&name).await {
        if r.primary == s.node {
            r.state = VmState::Stopped;
            r.updated_unix_ms = now_unix_ms();
            r.note = Some("stopped by a user".into());
            if let Err(e) = s.tables.put_vm(&r, Some(version)).await {
                return error(StatusCode::SERVICE_UNAVAILABLE, e);
            }
        }
    }
    cancel.cancel();
    // The runner stops QEMU and cleans up; wait for it without taking its join handle
    // (DELETE awaits that).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let finished = match s.vms.lock().await.get(&name) {
            Some(v) => v.task.is_finished(),
            None => true,
        };
        if finished {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return error(StatusCode::GATEWAY_TIMEOUT, "VM still stopping");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Json(json!({ "stopped": name })).into_response()
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

/// The directory as backup choice sees it.
pub(crate) async fn members(s: &MemrepState) -> Result<Vec<backup_choice::Member>, ApiError> {
    let nodes = s
        .tables
        .directory()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    Ok(nodes
        .iter()
        .map(backup_choice::Member::from_directory)
        .collect())
}

/// Where `node`'s memrep listens.
pub(crate) fn memrep_addr(
    s: &MemrepState,
    members: &[backup_choice::Member],
    node: NodeId,
) -> Option<SocketAddr> {
    members
        .iter()
        .find(|m| m.id == node)
        .and_then(|m| m.addr)
        .map(|ip| SocketAddr::new(ip, s.port))
}

/// Connects to the backups' memrep endpoints. `strict`: any failure fails the whole (a user's
/// create); otherwise unreachable backups are left out (a takeover must not fail because one
/// backup is gone) and the ids returned are those connected.
pub(crate) async fn connect_backups(
    s: &MemrepState,
    members: &[backup_choice::Member],
    ids: &[NodeId],
    strict: bool,
) -> Result<(Vec<BackupLink>, Vec<NodeId>), ApiError> {
    let mut links = Vec::new();
    let mut connected = Vec::new();
    for id in ids {
        let result = match memrep_addr(s, members, *id) {
            Some(addr) => s
                .endpoint
                .connect(addr, Some(*id))
                .await
                .map_err(|e| format!("backup {id} ({addr}): {e}")),
            None => Err(format!("backup {id} has no address in the directory")),
        };
        match result {
            Ok(conn) => {
                links.push(BackupLink {
                    name: id.to_string(),
                    conn,
                });
                connected.push(*id);
            }
            Err(e) if strict => return Err(ApiError::new(StatusCode::BAD_GATEWAY, e)),
            Err(e) => tracing::warn!(error = %e, "leaving out an unreachable backup"),
        }
    }
    Ok((links, connected))
}

fn scheduler_config(mode: Mode, interval_ms: Option<u64>) -> SchedulerConfig {
    let mut cfg = SchedulerConfig {
        mode,
        ..SchedulerConfig::default()
    };
    if let Some(ms) = interval_ms {
        cfg.base_interval = Duration::from_millis(ms.clamp(10, 60_000));
    }
    cfg
}

/// How many backups a request asks for.
fn wanted_replicas(req: &CreateVm) -> usize {
    req.replicas.unwrap_or(if req.backups.is_empty() {
        2
    } else {
        req.backups.len()
    })
}

fn table_error(e: TableError) -> ApiError {
    match e {
        TableError::Coordinator(hyphae_chunkstore::coordinator_client::CoordError::Conflict) => {
            ApiError::new(
                StatusCode::CONFLICT,
                "the VM record changed meanwhile (another node took the VM over)",
            )
        }
        e => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

#[tracing::instrument(skip_all, fields(vm = %req.spec.name))]
async fn create_vm(State(s): State<Shared>, Json(req): Json<CreateVm>) -> Response {
    match create(&s, req).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn create(s: &Shared, req: CreateVm) -> Result<serde_json::Value, ApiError> {
    req.spec
        .validate(s.max_mem_mib)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let name = req.spec.name.clone();
    if s.vms.lock().await.contains_key(&name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("VM {name} already runs here"),
        ));
    }
    let members = members(s).await?;
    let existing = s.tables.vm(&name).await.map_err(table_error)?;
    // A stopped VM may be created again; its replicas hold an older generation, which the
    // new base epoch replaces.
    let (generation, expect) = match &existing {
        Some((r, _)) if matches!(r.state, VmState::Running | VmState::Starting) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("VM {name} already runs on node {}", r.primary),
            ))
        }
        Some((r, v)) => (r.generation + 1, *v),
        None => (1, 0),
    };
    let wanted = wanted_replicas(&req);
    let ids = backup_choice::choose(&name, &members, s.node, &req.backups, wanted)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let (backups, ids) = connect_backups(s, &members, &ids, true).await?;
    let mut record = VmRecord {
        spec: req.spec.clone(),
        mode: req.mode,
        interval_ms: req.interval_ms,
        replicas: wanted,
        primary: s.node,
        backups: ids,
        generation,
        state: VmState::Starting,
        updated_unix_ms: now_unix_ms(),
        note: Some("created".into()),
        failover: None,
    };
    let version = s
        .tables
        .put_vm(&record, Some(expect))
        .await
        .map_err(table_error)?;
    let started = async {
        std::fs::create_dir_all(&s.shm_dir)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        let tag = format!("g{generation}");
        let mut paths = InstancePaths::new(&s.shm_dir, &s.run_dir, &name, &tag);
        if let Some(d) = &req.spec.disk {
            paths.disk = Some(prepare_disk(s, d, &req.spec, &tag).await?);
        }
        let disk = paths.disk.clone();
        let launch = Launch {
            spec: req.spec.clone(),
            accel: s.accel,
            paths,
            incoming: false,
            owns_ram: true,
        };
        let q = QemuProcess::start(launch).await.map_err(|e| {
            if let Some(d) = &disk {
                let _ = std::fs::remove_file(d);
            }
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e)
        })?;
        start_runner(s, &name, req.mode, req.interval_ms, q, generation, backups).await
    }
    .await;
    record.updated_unix_ms = now_unix_ms();
    match started {
        Ok(()) => record.state = VmState::Running,
        Err(e) => {
            // Nothing runs: the name is free again.
            let _ = s.tables.delete_vm(&name).await;
            return Err(e);
        }
    }
    s.tables
        .put_vm(&record, Some(version))
        .await
        .map_err(table_error)?;
    Ok(json!({ "name": name, "generation": generation, "backups": record.backups }))
}

/// Copies the VM's disk image (local file or `mesh:/PATH`) into its raw disk file beside the
/// RAM file; returns that file. Refusals are the user's (400: missing, not raw, too big).
async fn prepare_disk(
    s: &MemrepState,
    disk: &str,
    spec: &VmSpec,
    tag: &str,
) -> Result<PathBuf, ApiError> {
    use crate::vm_disk::{self, DiskError, DiskSource};
    let code = |e: &DiskError| match e {
        DiskError::Store { .. } => StatusCode::BAD_GATEWAY,
        DiskError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let source = DiskSource::parse(disk).map_err(|e| ApiError::new(code(&e), e))?;
    let dest = InstancePaths::disk_file(&s.shm_dir, &spec.name, tag);
    let budget = vm_disk::tmpfs_budget(&s.shm_dir, spec.mem_bytes());
    let size = vm_disk::prepare(&source, &dest, budget, &s.chunkstore_socket)
        .await
        .map_err(|e| ApiError::new(code(&e), e))?;
    tracing::info!(vm = %spec.name, disk = %source.display(), size, "disk prepared");
    Ok(dest)
}

/// Starts the primary loop of a VM whose QEMU runs here.
pub(crate) async fn start_runner(
    s: &MemrepState,
    name: &str,
    mode: Mode,
    interval_ms: Option<u64>,
    q: QemuProcess,
    generation: u64,
    backups: Vec<BackupLink>,
) -> Result<(), ApiError> {
    let serial = q.launch.paths.serial.clone();
    let device = s.run_dir.join(format!("{name}-g{generation}.device"));
    let primary = Primary::new(q, generation, device)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let stats = Arc::new(Mutex::new(VmStats {
        state: "running".into(),
        generation,
        ..VmStats::default()
    }));
    let cancel = s.shutdown.child_token();
    let (control, commands) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(vm_runner::run(
        name.to_string(),
        primary,
        backups,
        scheduler_config(mode, interval_ms),
        s.limits,
        stats.clone(),
        vm_runner::RunnerControl {
            cancel: cancel.clone(),
            commands,
        },
        s.throttle.clone(),
    ));
    s.vms.lock().await.insert(
        name.to_string(),
        RunningVm {
            stats,
            cancel,
            serial,
            task,
            control,
        },
    );
    Ok(())
}

/// `POST /replicas/{vm}/resume` (`hyphae vm resume`): an operator's takeover of a VM whose
/// primary is gone (or that is stopped or lost), from the replica held here. Refused while
/// the record names a primary that is up.
#[tracing::instrument(skip_all, fields(vm = %vm))]
async fn resume_replica(
    State(s): State<Shared>,
    UrlPath(vm): UrlPath<String>,
    Json(req): Json<CreateVm>,
) -> Response {
    if req.spec.name != vm {
        return error(StatusCode::BAD_REQUEST, "spec name differs from the path");
    }
    let members = match members(&s).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let existing = match s.tables.vm(&vm).await {
        Ok(r) => r,
        Err(e) => return table_error(e).into_response(),
    };
    if let Some((r, _)) = &existing {
        let primary_up = members.iter().any(|m| m.id == r.primary && m.up);
        if r.state == VmState::Running && primary_up && r.primary != s.node {
            return error(
                StatusCode::CONFLICT,
                format!(
                    "VM {vm} runs on node {}, which is up: use `hyphae vm migrate`",
                    r.primary
                ),
            );
        }
    }
    let wanted = wanted_replicas(&req);
    let ids = match backup_choice::choose(&vm, &members, s.node, &req.backups, wanted) {
        Ok(ids) => ids,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (record, expect) = match existing {
        Some((mut r, v)) => {
            // The operator's spec wins (paths may differ on this node).
            r.spec = req.spec.clone();
            r.mode = req.mode;
            r.interval_ms = req.interval_ms.or(r.interval_ms);
            r.replicas = wanted;
            (r, v)
        }
        None => (
            VmRecord {
                spec: req.spec.clone(),
                mode: req.mode,
                interval_ms: req.interval_ms,
                replicas: wanted,
                primary: s.node,
                backups: Vec::new(),
                generation: 0,
                state: VmState::Stopped,
                updated_unix_ms: now_unix_ms(),
                note: None,
                failover: None,
            },
            0,
        ),
    };
    let generation = record.generation + 1;
    let params = ResumeParams {
        record,
        expect_version: expect,
        generation,
        backups: ids,
        reason: "resumed by an operator".into(),
        detected_unix_ms: None,
        require_epoch: None,
    };
    match takeover::resume_here(&s, params).await {
        Ok(a) => (
            StatusCode::CREATED,
            Json(json!({ "name": vm, "generation": a.generation, "resumed_from_epoch": a.resumed_from_epoch })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::CreateVm;

    /// `POST /vms` with a disk may leave out kernel, initrd and append (a disk boot); the
    /// flattened spec still refuses unknown fields.
    #[test]
    fn a_create_request_may_leave_out_the_kernel() {
        let r: CreateVm =
            serde_json::from_str(r#"{"name":"v","disk":"mesh:/vm/b.raw","mem_mib":128,"vcpus":1}"#)
                .unwrap();
        assert_eq!(r.spec.kernel, None);
        assert_eq!(r.spec.initrd, None);
        assert_eq!(r.spec.append, "");
        let r: CreateVm = serde_json::from_str(
            r#"{"name":"v","kernel":"/k","append":"console=ttyS0","mem_mib":128,"vcpus":1}"#,
        )
        .unwrap();
        assert_eq!(r.spec.kernel.as_deref(), Some(std::path::Path::new("/k")));
        assert!(serde_json::from_str::<CreateVm>(
            r#"{"name":"v","disk":"/d","mem_mib":1,"vcpus":1,"kernal":"/k"}"#
        )
        .is_err());
    }
}
