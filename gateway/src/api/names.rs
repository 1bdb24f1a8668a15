//! The namespace: user names (`GET/PUT/DELETE /api/v1/names`) and resolution
//! (`GET /api/v1/resolve/{name}`, the same answers as the DNS server).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::ApiJson;
use crate::dns::name::check_user_name;
use crate::dns::resolve::{check_target, resolve as resolve_name, Resolution};
use crate::dns::NAMES_TABLE;
use crate::error::ApiError;
use crate::state::GatewayState;

/// `GET /api/v1/names`.
pub async fn list(State(state): State<Arc<GatewayState>>) -> Result<Json<Value>, ApiError> {
    let names: Vec<Value> = state
        .local
        .kv_list(NAMES_TABLE)
        .await?
        .into_iter()
        .map(|(name, v)| json!({"name": name, "target": v.value}))
        .collect();
    Ok(Json(json!({"names": names})))
}

/// The body of `PUT /api/v1/names/{name}`.
#[derive(Debug, Deserialize)]
pub struct NameBody {
    target: String,
}

/// `PUT /api/v1/names/{name} {"target"}`.
pub async fn set(
    State(state): State<Arc<GatewayState>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<NameBody>,
) -> Result<Json<Value>, ApiError> {
    let name = check_user_name(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let target = body.target.trim().to_string();
    check_target(&target).map_err(|e| ApiError::bad_request(format!("target {target:?}: {e}")))?;
    state
        .local
        .kv_put(NAMES_TABLE, &name, &target, None)
        .await?;
    Ok(Json(json!({"name": name, "target": target})))
}

/// `DELETE /api/v1/names/{name}`.
pub async fn remove(
    State(state): State<Arc<GatewayState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = check_user_name(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if state.local.kv_get(NAMES_TABLE, &name).await?.is_none() {
        return Err(ApiError::not_found(format!("no name {name:?}")));
    }
    state.local.kv_delete(NAMES_TABLE, &name).await?;
    Ok(Json(json!({"deleted": name})))
}

/// `GET /api/v1/resolve/{name}` → `{"name","records":[{"type","value"}]}`; 404 `nxdomain`.
pub async fn resolve(
    State(state): State<Arc<GatewayState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = state.names.get().await?;
    match resolve_name(&snapshot, &name) {
        Resolution::Found(records) => Ok(Json(json!({"name": name, "records": records}))),
        Resolution::NxDomain => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "nxdomain",
            format!("{name} does not exist in hyphae.internal"),
        )),
        Resolution::NotOurs => Err(ApiError::bad_request(format!(
            "{name} is not in the hyphae.internal zone"
        ))),
    }
}
