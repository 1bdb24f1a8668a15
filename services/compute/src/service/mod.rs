//! The compute service (`hyphae compute`, also a task of `hyphae node`): the QUIC tile
//! endpoint (udp/7443, ALPN `hyphae-compute/1`), `<run>/compute.sock` (`/status`,
//! `/metrics`, `/devices`, `/jobs`), and the worker advertisement in `compute_workers`.

pub mod backends;
pub mod files;
pub mod inference;
pub mod job;
pub mod jobs_api;
pub mod methods;
pub mod metrics;
mod parity_job;
pub mod tables;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyphae_chunkstore::coordinator_client::CoordinatorClient;
use hyphae_core::rpc::{self, Limits, RpcMetrics};
use hyphae_core::transport::{MeshEndpoint, MeshTls, ServiceSpec, TransportError};
use hyphae_core::{ipc, notify, NodeContext};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use backends::Backends;
use tables::{WorkerRecord, WORKERS};

/// Why the compute service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ComputeServiceError {
    /// The QUIC endpoint could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The local socket could not be served.
    #[error(transparent)]
    Ipc(#[from] ipc::IpcError),
    /// A start-up task failed.
    #[error("{0}")]
    Start(String),
}

/// Runs the compute service until `shutdown` fires.
pub async fn run(
    ctx: Arc<NodeContext>,
    shutdown: CancellationToken,
) -> Result<(), ComputeServiceError> {
    let service = ServiceSpec::COMPUTE;
    // Type=notify: the unit is started while the node waits to become a member.
    notify::ready("compute: waiting for this node to join a mesh");
    let Some(membership) = ctx.wait_membership(&shutdown).await else {
        return Ok(());
    };
    let node = membership.node_id();
    let config = ctx.config.compute.clone();
    let share = ctx.config.share.cpu;
    let backends = tokio::task::spawn_blocking(move || Backends::open(&config, share))
        .await
        .map_err(|e| ComputeServiceError::Start(format!("opening backends: {e}")))?;
    let tls = MeshTls::new(&membership)?;
    let bind = SocketAddr::new(ctx.config.node.listen, ctx.config.ports.compute);
    let endpoint = MeshEndpoint::server(bind, &tls, service, &ctx.config.transport)?;
    let limits = Limits::from(&ctx.config.transport);
    let corrupt = ctx.config.compute.test_corrupt_results;
    if corrupt {
        tracing::warn!("[compute] test_corrupt_results is on: this worker returns WRONG results");
    }
    let cannon = crate::cannon::worker::CannonEdge::new(
        node,
        endpoint.clone(),
        limits,
        backends.clone(),
        ctx.config.ports.compute,
        ctx.config.compute.test_cannon_delay,
        corrupt,
    );
    let router = Arc::new(crate::cannon::worker::routes(
        worker::router(
            node,
            backends.clone(),
            corrupt,
            ctx.config.compute.test_tile_delay,
        ),
        cannon.clone(),
    ));
    let rpc_task = tokio::spawn(rpc::serve(
        endpoint.clone(),
        router,
        limits,
        RpcMetrics::register(&ctx.metrics),
        shutdown.clone(),
    ));
    let coord = CoordinatorClient::new(ctx.paths.socket("coordinator"));
    let record = WorkerRecord {
        port: ctx.config.ports.compute,
        backend: backends
            .vulkan
            .as_ref()
            .filter(|v| !v.device().software)
            .map_or("cpu".into(), |v| format!("vulkan:{}", v.device().name)),
        gflops: backends.gflops,
        cpu_share: share,
        updated_unix: 0,
    };
    let publisher = tokio::spawn(publish(
        coord.clone(),
        node.to_string(),
        record,
        shutdown.clone(),
    ));
    let env = job::JobEnv {
        node,
        endpoint,
        limits,
        coord,
        coord_socket: ctx.paths.socket("coordinator"),
        files: files::MeshFiles::new(&ctx.paths.socket("chunkstore")),
        running: Arc::default(),
        cannon,
        metrics: metrics::JobMetrics::register(&ctx.metrics),
    };
    // On the queen, claims and runs the queued jobs and resumes those of a dead queen.
    let driver = tokio::spawn(job::drive(env.clone(), shutdown.clone()));
    let status = {
        let backends = backends.clone();
        move || {
            json!({
                "ready": true,
                "service": service.name,
                "node_id": node.to_string(),
                "gflops": backends.gflops,
                "vulkan": backends.vulkan.as_ref().map(|v| v.device().clone()),
                "test_corrupt_results": corrupt,
            })
        }
    };
    let devices = {
        let backends = backends.clone();
        axum::Router::new().route(
            "/devices",
            axum::routing::get(move || {
                let backends = backends.clone();
                async move { axum::Json(backends.describe()) }
            }),
        )
    };
    let api = ipc::base_router(status, ctx.metrics.clone())
        .merge(devices)
        .merge(inference::router(env.files.clone(), backends.clone()))
        .merge(jobs_api::router(env));
    let ipc_task = ipc::serve(&ctx.paths.socket(service.name), api, shutdown.clone()).await?;
    let line = format!(
        "compute worker of node {node} on udp/{} ({:.1} GFLOP/s self-benchmark)",
        ctx.config.ports.compute, backends.gflops
    );
    tracing::info!("{line}");
    notify::ready(&line);
    shutdown.cancelled().await;
    let _ = rpc_task.await;
    let _ = ipc_task.await;
    let _ = publisher.await;
    let _ = driver.await;
    Ok(())
}

/// Advertises this worker in `compute_workers` at start and every 30 s.
async fn publish(
    coord: CoordinatorClient,
    node: String,
    mut record: WorkerRecord,
    shutdown: CancellationToken,
) {
    let mut ok = false;
    loop {
        record.updated_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match serde_json::to_string(&record) {
            Ok(text) => match coord.put(WORKERS, &node, &text, None).await {
                Ok(_) => ok = true,
                Err(e) => tracing::debug!(error = %e, "advertising the worker failed; retrying"),
            },
            Err(e) => tracing::warn!(error = %e, "worker record does not encode"),
        }
        let wait = if ok {
            Duration::from_secs(30)
        } else {
            Duration::from_millis(500)
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
