//! Hyphae's gateway: one axum router (the REST API, `/metrics`, the dashboard) served over HTTPS
//! with HTTP/1.1 and HTTP/2 and over HTTP/3 on the same port number, the login and token
//! checks in front of it, and the DNS server of the mesh zone `hyphae.internal.`.
//!
//! The gateway keeps no state of its own but its TLS key: it proxies every call to the node's
//! local services over their Unix sockets (the coordinator forwards writes to the queen, any
//! chunkstore reads any file), so any node's gateway answers for the whole mesh. See
//! `docs/gateway.md` (operators) and `docs/api.md` (the API).

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod dns;
pub mod error;
pub mod local;
pub mod serve;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyphae_core::{ipc, notify, NodeContext};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::local::LocalServices;
use crate::serve::certificate::{self, CertSlot, ServerNames, StoredCert};
use crate::state::GatewayState;

/// How often the certificate and the service registration are checked.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

/// Runs the gateway until `shutdown`: waits for the coordinator, makes sure the mesh has an
/// admin password and session key, obtains the certificate, then serves.
pub async fn run(ctx: Arc<NodeContext>, shutdown: CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context;
    let local = LocalServices::new(&ctx.paths.socket("coordinator"));
    let node_id = ctx.key.node_id().to_string();
    let config = ctx.config.gateway.clone();
    let mut state = GatewayState::new(
        local.clone(),
        config.clone(),
        node_id.clone(),
        ctx.name.clone(),
    );
    let ports = &ctx.config.ports;
    state.service_ports = vec![
        ("node".into(), ports.node),
        ("coordinator".into(), ports.coordinator),
        ("admission".into(), ports.admission),
        ("chunkstore".into(), ports.chunkstore),
    ];
    let state = Arc::new(state);
    let serving = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The local socket first, so `hyphae status` sees the gateway while it waits.
    let status = {
        let serving = serving.clone();
        let port = config.port;
        let dns_port = config.dns_port;
        move || {
            json!({
                "ready": true,
                "service": "gateway",
                "serving": serving.load(std::sync::atomic::Ordering::Relaxed),
                "port": port,
                "dns_port": dns_port,
            })
        }
    };
    let ipc_task = ipc::serve(
        &ctx.paths.socket("gateway"),
        ipc::base_router(status, ctx.metrics.clone()),
        shutdown.clone(),
    )
    .await?;

    // Type=notify: started (its local socket answers) while it waits for the mesh.
    notify::ready("gateway: waiting for the coordinator to join a mesh");
    if !bootstrap::wait_for_mesh(&local, &shutdown).await {
        let _ = ipc_task.await;
        return Ok(());
    }
    bootstrap::ensure_secrets(&local, &shutdown).await;

    let dir = ctx.paths.service_state("gateway");
    let names = bootstrap::my_names(&local, &node_id, &ctx.name).await;
    let stored = loop {
        if let Some(s) = StoredCert::load(&dir).filter(|s| s.is_fresh_for(&names)) {
            break s;
        }
        match certificate::obtain(&local, &dir, &names).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "no gateway certificate yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => { let _ = ipc_task.await; return Ok(()) }
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    let slot = CertSlot::new(stored.certified_key()?);

    let router = with_alt_svc(api::router(state.clone()), config.port);
    let bind = SocketAddr::new(ctx.config.node.listen, config.port);
    let tcp_tls = certificate::server_config(slot.clone(), &[b"h2", b"http/1.1"], false)?;
    let quic_tls = certificate::server_config(slot.clone(), &[b"h3"], true)?;
    let listener = serve::https::bind(bind)
        .await
        .with_context(|| format!("binding tcp/{}", config.port))?;
    let endpoint = serve::h3::bind(bind, quic_tls)?;
    let https_task = tokio::spawn(serve::https::serve(
        listener,
        Arc::new(tcp_tls),
        router.clone(),
        shutdown.clone(),
    ));
    let h3_task = tokio::spawn(serve::h3::serve(endpoint, router, shutdown.clone()));
    let dns_task = {
        let handler = dns::server::MeshDns::new(state.names.clone());
        let mut server = hickory_server::Server::new(handler);
        let dns_bind = SocketAddr::new(ctx.config.node.listen, config.dns_port);
        let udp = match tokio::net::UdpSocket::bind(dns_bind).await {
            Ok(s) => s,
            Err(e) => match serve::fallback_v4(dns_bind) {
                Some(v4) => tokio::net::UdpSocket::bind(v4).await?,
                None => return Err(e).context("binding the DNS port"),
            },
        };
        let tcp = serve::https::bind(dns_bind)
            .await
            .context("binding the DNS port (tcp)")?;
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            if let Err(e) = server.shutdown_gracefully().await {
                tracing::debug!(error = %e, "DNS server stopped with an error");
            }
        })
    };
    serving.store(true, std::sync::atomic::Ordering::Relaxed);
    let line = format!(
        "gateway on https://{}:{} (tcp h1/h2, udp h3), DNS on port {}",
        ctx.name, config.port, config.dns_port
    );
    tracing::info!("{line}");
    notify::ready(&line);

    // Maintenance: keep the service registration and the certificate current.
    loop {
        bootstrap::register_services(&state).await;
        let names = bootstrap::my_names(&local, &node_id, &ctx.name).await;
        let fresh = StoredCert::load(&dir).is_some_and(|s| s.is_fresh_for(&names));
        if !fresh {
            match certificate::obtain(&local, &dir, &names).await {
                Ok(s) => match s.certified_key() {
                    Ok(k) => {
                        slot.replace(k);
                        tracing::info!("gateway certificate renewed");
                    }
                    Err(e) => tracing::warn!(error = %e, "renewed certificate unusable"),
                },
                Err(e) => tracing::warn!(error = %e, "gateway certificate renewal failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(MAINTENANCE_EVERY) => {}
        }
    }
    let _ = https_task.await;
    let _ = h3_task.await;
    let _ = dns_task.await;
    let _ = ipc_task.await;
    Ok(())
}

/// Adds `Alt-Svc: h3=":PORT"` to every answer so browsers move to HTTP/3.
fn with_alt_svc(router: axum::Router, port: u16) -> axum::Router {
    let value = format!("h3=\":{port}\"; ma=86400");
    router.layer(axum::middleware::map_response(
        move |mut resp: axum::response::Response| {
            let value = value.clone();
            async move {
                if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                    resp.headers_mut().insert(axum::http::header::ALT_SVC, v);
                }
                resp
            }
        },
    ))
}

/// The names of a node's certificate, for tests and tools.
pub fn certificate_names(name: &str, id: &str, addresses: &[std::net::IpAddr]) -> ServerNames {
    ServerNames::for_node(name, id, addresses)
}
