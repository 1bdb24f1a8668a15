//! Admission: pending nodes, admit, revoke, join tokens (all through the coordinator, which
//! forwards to the queen).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::Method;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::ApiJson;
use crate::error::ApiError;
use crate::state::GatewayState;

/// `GET /api/v1/admission/pending`.
pub async fn pending(State(state): State<Arc<GatewayState>>) -> Result<Json<Value>, ApiError> {
    let v = super::status::nodes_value(&state).await?;
    let list: Vec<Value> = v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["status"] == "pending")
        .cloned()
        .collect();
    Ok(Json(json!({"nodes": list})))
}

/// `POST /api/v1/admission/{id}/admit`.
pub async fn admit(
    State(state): State<Arc<GatewayState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .local
        .call(
            "coordinator",
            Method::POST,
            "/admit",
            Some(&json!({"node": id})),
        )
        .await
        .map(Json)
}

/// The revoke body.
#[derive(Debug, Deserialize, Default)]
pub struct RevokeBody {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/v1/nodes/{id}/revoke {"reason"}`.
pub async fn revoke(
    State(state): State<Arc<GatewayState>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RevokeBody>,
) -> Result<Json<Value>, ApiError> {
    state
        .local
        .call(
            "coordinator",
            Method::POST,
            "/revoke",
            Some(&json!({"node": id, "reason": body.reason})),
        )
        .await
        .map(Json)
}

/// The token body.
#[derive(Debug, Deserialize)]
pub struct TokenBody {
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    uses: Option<u32>,
}

/// `POST /api/v1/tokens {"ttl":"1h","uses":1}` → `{"token","id","ttl_s","uses"}`.
pub async fn create_token(
    State(state): State<Arc<GatewayState>>,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<Json<Value>, ApiError> {
    let ttl = body.ttl.unwrap_or_else(|| "1h".into());
    humantime::parse_duration(&ttl)
        .map_err(|e| ApiError::bad_request(format!("ttl {ttl:?}: {e}")))?;
    state
        .local
        .call(
            "coordinator",
            Method::POST,
            "/tokens",
            Some(&json!({"ttl": ttl, "uses": body.uses.unwrap_or(1)})),
        )
        .await
        .map(Json)
}
