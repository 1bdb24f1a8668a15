//! What the gateway makes sure of before and while serving: the node is in a mesh, the mesh has
//! a session key and an admin password (generated and printed once if none), and this node's
//! services are registered for `<service>.services.hyphae.internal`.

use std::net::IpAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::password::{generate_password, hash_password};
use crate::auth::session::generate_session_key;
use crate::auth::{AUTH_TABLE, PASSWORD_KEY, SESSION_KEY};
use crate::dns::snapshot::ServiceEntry;
use crate::dns::SERVICES_TABLE;
use crate::local::LocalServices;
use crate::serve::certificate::ServerNames;
use crate::state::GatewayState;

/// Waits until the local coordinator reports a mesh and a queen; false if shut down first.
pub async fn wait_for_mesh(local: &LocalServices, shutdown: &CancellationToken) -> bool {
    loop {
        if let Ok(s) = local.get("coordinator", "/status").await {
            if s["mesh_id"].is_string() && s["queen"].is_string() {
                return true;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Sets the session key and the admin password if the mesh has none (first start of the first
/// gateway); retries until the key space accepts the writes.
pub async fn ensure_secrets(local: &LocalServices, shutdown: &CancellationToken) {
    loop {
        match ensure_once(local).await {
            Ok(()) => return,
            Err(e) => tracing::info!(error = %e, "gateway secrets not settled yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn ensure_once(local: &LocalServices) -> Result<(), crate::error::ApiError> {
    if local.kv_get(AUTH_TABLE, SESSION_KEY).await?.is_none() {
        // Expect version 0: if another gateway won the race, its key stands.
        let _ = local
            .kv_put(AUTH_TABLE, SESSION_KEY, &generate_session_key(), Some(0))
            .await;
    }
    if local.kv_get(AUTH_TABLE, PASSWORD_KEY).await?.is_none() {
        let password = generate_password();
        // argon2 on a blocking thread: seconds of CPU on a slow node must not stall the
        // runtime (and its watchdog pings).
        let for_hash = password.clone();
        let hash = tokio::task::spawn_blocking(move || hash_password(&for_hash))
            .await
            .map_err(|e| crate::error::ApiError::bad_request(e.to_string()))?
            .map_err(|e| crate::error::ApiError::bad_request(e.to_string()))?;
        if local
            .kv_put(AUTH_TABLE, PASSWORD_KEY, &hash, Some(0))
            .await
            .is_ok()
        {
            tracing::warn!(
                "no admin password was set: generated one, shown only now: {password} \
                 (change it with `hyphae passwd`)"
            );
            eprintln!("hyphae gateway: admin password (shown once): {password}");
        }
    }
    if local.kv_get(AUTH_TABLE, SESSION_KEY).await?.is_none()
        || local.kv_get(AUTH_TABLE, PASSWORD_KEY).await?.is_none()
    {
        return Err(crate::error::ApiError::bad_request(
            "writes not visible yet",
        ));
    }
    Ok(())
}

/// The names this node's certificate should carry, from its directory record.
pub async fn my_names(local: &LocalServices, id: &str, name: &str) -> ServerNames {
    let mut addresses: Vec<IpAddr> = vec![];
    let mut record_name = name.to_string();
    if let Ok(nodes) = local.get("coordinator", "/nodes").await {
        if let Some(me) = nodes["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["id"] == id)
        {
            record_name = me["name"].as_str().unwrap_or(name).to_string();
            addresses = me["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str()?.parse().ok())
                .collect();
        }
    }
    ServerNames::for_node(&record_name, id, &addresses)
}

/// Default ports of services whose port is not in this build's configuration.
fn default_port(service: &str) -> Option<u16> {
    match service {
        "compute" => Some(7443),
        "memrep" => Some(7444),
        _ => None,
    }
}

/// Records which services run (and answer ready) on this node, if it changed.
pub async fn register_services(state: &GatewayState) {
    let mut entries = vec![ServiceEntry {
        name: "gateway".into(),
        port: state.config.port,
    }];
    entries.push(ServiceEntry {
        name: "dns".into(),
        port: state.config.dns_port,
    });
    for name in state.local.services() {
        let ready = state
            .local
            .get(&name, "/status")
            .await
            .map(|s| s["ready"] == true)
            .unwrap_or(false);
        if !ready {
            continue;
        }
        let configured = |n: &str| {
            state
                .service_ports
                .iter()
                .find(|(s, _)| s == n)
                .map(|(_, p)| *p)
        };
        let Some(port) = configured(&name).or_else(|| default_port(&name)) else {
            continue;
        };
        entries.push(ServiceEntry {
            name: name.clone(),
            port,
        });
        // The coordinator's socket also stands for its admission endpoint.
        if name == "coordinator" {
            if let Some(port) = configured("admission") {
                entries.push(ServiceEntry {
                    name: "admission".into(),
                    port,
                });
            }
        }
    }
    let Ok(text) = serde_json::to_string(&entries) else {
        return;
    };
    let current = state.local.kv_get(SERVICES_TABLE, &state.node_id).await;
    if matches!(&current, Ok(Some(v)) if v.value == text) {
        return;
    }
    if let Err(e) = state
        .local
        .kv_put(SERVICES_TABLE, &state.node_id, &text, None)
        .await
    {
        tracing::debug!(error = %e, "service registration not written yet");
    }
}
