//! Status, nodes, events, storage, health and the aggregated metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::state::GatewayState;

/// `{"node","mesh_id","queen","role","services":{name: status}}`.
pub async fn status_value(state: &GatewayState) -> Result<Value, ApiError> {
    let coord = state.local.get("coordinator", "/status").await?;
    let mut services = Map::new();
    for name in state.local.services() {
        let s = match state.local.get(&name, "/status").await {
            Ok(v) => v,
            Err(e) => json!({"ready": false, "error": e.message}),
        };
        services.insert(name, s);
    }
    Ok(json!({
        "node": {"id": state.node_id, "name": state.node_name},
        "mesh_id": coord["mesh_id"],
        "queen": coord["queen"],
        "role": coord["role"],
        "services": services,
    }))
}

/// `GET /api/v1/status`.
pub async fn status(State(state): State<Arc<GatewayState>>) -> Result<Json<Value>, ApiError> {
    status_value(&state).await.map(Json)
}

/// The coordinator's `/nodes`, with the fields the dashboard expects: `hardware` (null when
/// the node published none), `load` and `score` computed from it (see [`super::node_load`]).
pub async fn nodes_value(state: &GatewayState) -> Result<Value, ApiError> {
    let mut v = state.local.get("coordinator", "/nodes").await?;
    if let Some(list) = v["nodes"].as_array_mut() {
        for n in list {
            if let Some(o) = n.as_object_mut() {
                let hardware = o.entry("hardware").or_insert(Value::Null).clone();
                let load = super::node_load::NodeLoad::of(&hardware);
                o.insert("score".into(), json!(load.score(&hardware)));
                o.insert("load".into(), load.to_json());
            }
        }
    }
    Ok(v)
}

/// `GET /api/v1/nodes`.
pub async fn nodes(State(state): State<Arc<GatewayState>>) -> Result<Json<Value>, ApiError> {
    nodes_value(&state).await.map(Json)
}

/// `GET /api/v1/events`.
pub async fn events(State(state): State<Arc<GatewayState>>) -> Result<Json<Value>, ApiError> {
    state.local.get("coordinator", "/events").await.map(Json)
}

/// The chunkstore's `storage` object.
pub async fn storage_value(state: &GatewayState) -> Result<Value, ApiError> {
    let s = state.local.get("chunkstore", "/status").await?;
    Ok(s.get("storage").cloned().unwrap_or(Value::Null))
}

/// `GET /api/v1/storage`.
pub async fn storage(State(state): State<Arc<GatewayState>>) -> Result<Json<Value>, ApiError> {
    storage_value(&state).await.map(Json)
}

/// `GET /healthz`: the gateway answers and reaches its coordinator.
pub async fn healthz(State(state): State<Arc<GatewayState>>) -> Response {
    match state.local.get("coordinator", "/status").await {
        Ok(_) => Json(json!({"ok": true})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /metrics`: every local service's metrics, concatenated. In `hyphae node` the services
/// share one registry, so identical documents are given once.
pub async fn metrics(State(state): State<Arc<GatewayState>>) -> Response {
    let mut names = state.local.services();
    names.push("gateway".into());
    // (hash, services that answered it, document): `hyphae node` shares one registry between
    // its services, so equal documents are one, labelled `node`.
    let mut documents: Vec<(blake3::Hash, Vec<String>, String)> = vec![];
    for name in names {
        let Ok((code, body)) =
            hyphae_core::ipc::request(&state.local.socket(&name), Method::GET, "/metrics", None)
                .await
        else {
            continue;
        };
        if !code.is_success() {
            continue;
        }
        let hash = blake3::hash(&body);
        match documents.iter_mut().find(|(h, _, _)| *h == hash) {
            Some((_, services, _)) => services.push(name),
            None => documents.push((
                hash,
                vec![name],
                String::from_utf8_lossy(&body).into_owned(),
            )),
        }
    }
    let labelled: Vec<(String, String)> = documents
        .into_iter()
        .map(|(_, services, text)| {
            let label = match services.as_slice() {
                [one] => one.clone(),
                _ => "node".to_string(),
            };
            (label, text)
        })
        .collect();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        super::metrics_merge::merge(&labelled),
    )
        .into_response()
}
