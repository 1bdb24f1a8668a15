//! The node agent: the part of a node that exists before and beside every other service.
//!
//! It owns the node's own QUIC endpoint (`[ports] node`, ALPN `hyphae-node/1`), which answers
//! `core.ping` so that members can check each other's reachability and identity, and the
//! node's local socket `node.sock` with `/status` and `/metrics`. A node that has not joined a
//! mesh yet has no certificate, so it cannot speak mutual TLS: it serves only its local socket
//! and says so in its status.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::context::NodeContext;
use crate::ipc::{self, IpcError};
use crate::notify;
use crate::pki::Membership;
use crate::rpc::{self, Limits, Router, RpcMetrics};
use crate::transport::{MeshEndpoint, MeshTls, ServiceSpec, TransportError};

/// Why the node agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The QUIC endpoint could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The local socket could not be served.
    #[error(transparent)]
    Ipc(#[from] IpcError),
}

/// What the agent serves once the node is a member (set once, read by `/status`).
#[derive(Debug)]
struct Serving {
    membership: Membership,
    quic: Option<SocketAddr>,
}

/// Runs the node agent until `shutdown` fires. A node that is not a member yet serves its
/// local socket at once and its QUIC endpoint as soon as it joins (its coordinator writes the
/// credentials while this process runs).
pub async fn run(ctx: Arc<NodeContext>, shutdown: CancellationToken) -> Result<(), AgentError> {
    let service = ServiceSpec::NODE;
    let rpc_metrics = RpcMetrics::register(&ctx.metrics);
    let serving: Arc<OnceLock<Serving>> = Arc::new(OnceLock::new());

    let status = {
        let ctx = ctx.clone();
        let rpc_metrics = rpc_metrics.clone();
        let serving = serving.clone();
        move || status_json(&ctx, serving.get(), &rpc_metrics)
    };
    let router = ipc::base_router(status, ctx.metrics.clone());
    let ipc_task = ipc::serve(&ctx.paths.socket(service.name), router, shutdown.clone()).await?;

    if ctx.membership.is_none() {
        let line = format!(
            "node {} waiting to join a mesh (hyphae init, or enrol it)",
            ctx.key.node_id()
        );
        tracing::info!("{line}");
        notify::ready(&line);
    }
    let mut rpc_task = None;
    if let Some(membership) = ctx.wait_membership(&shutdown).await {
        let tls = MeshTls::new(&membership)?;
        let bind = SocketAddr::new(ctx.config.node.listen, ctx.config.ports.node);
        let endpoint = MeshEndpoint::server(bind, &tls, service, &ctx.config.transport)?;
        let quic = endpoint.local_addr().ok();
        let router = Arc::new(Router::new(service, membership.node_id()));
        rpc_task = Some(tokio::spawn(rpc::serve(
            endpoint,
            router,
            Limits::from(&ctx.config.transport),
            rpc_metrics.clone(),
            shutdown.clone(),
        )));
        let line = format!(
            "node {} of mesh {} serving on udp/{}",
            membership.node_id(),
            membership.secrets.mesh_id,
            quic.map(|a| a.port()).unwrap_or(ctx.config.ports.node)
        );
        let _ = serving.set(Serving { membership, quic });
        tracing::info!("{line}");
        notify::ready(&line);
    }

    shutdown.cancelled().await;
    notify::stopping();
    if let Some(task) = rpc_task {
        let _ = task.await;
    }
    let _ = ipc_task.await;
    Ok(())
}

fn status_json(
    ctx: &NodeContext,
    serving: Option<&Serving>,
    rpc: &RpcMetrics,
) -> serde_json::Value {
    let service = ServiceSpec::NODE;
    let membership = serving.map(|s| &s.membership);
    json!({
        "ready": true,
        "service": service.name,
        "node_id": ctx.key.node_id().to_string(),
        "name": ctx.name,
        "version": crate::VERSION,
        "member": membership.is_some(),
        "mesh_id": membership.map(|m| m.secrets.mesh_id.to_string()),
        "quic": serving.and_then(|s| s.quic).map(|a| a.to_string()),
        "uptime_s": ctx.started.elapsed().as_secs(),
        "rpc": {
            "connections": rpc.connections(service),
            "handshakes_refused": rpc.refused(service),
            "bad_frames": rpc.bad_frames(service),
        },
        "revoked_nodes": membership.map(|m| m.revocations.snapshot().revoked.len()).unwrap_or(0),
    })
}
