//! Shared assets: which nodes have one (`GET /api/v1/query/asset?name=|hash=`), a rescan of
//! this node's `[share] dirs` (`POST /api/v1/manifest/refresh`) and an asset's bytes by hash
//! (`GET /api/v1/assets/{hash}`), all proxied to the node's chunkstore (`/assets...`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, Response};

use crate::error::ApiError;
use crate::state::GatewayState;

/// `GET /api/v1/query/asset?name=…|hash=…`.
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn query(
    State(state): State<Arc<GatewayState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let uri = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("/assets?{q}"),
        None => "/assets".to_string(),
    };
    state
        .local
        .proxy("chunkstore", Method::GET, &uri, &headers, Body::empty())
        .await
}

/// `POST /api/v1/manifest/refresh`.
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn refresh(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    state
        .local
        .proxy(
            "chunkstore",
            Method::POST,
            "/assets/refresh",
            &headers,
            Body::empty(),
        )
        .await
}

/// `GET /api/v1/assets/{hash}` (streamed).
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn content(
    State(state): State<Arc<GatewayState>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "an asset is named by its BLAKE3 hash (64 hex digits)",
        ));
    }
    let uri = format!("/assets/{hash}");
    state
        .local
        .proxy("chunkstore", Method::GET, &uri, &headers, Body::empty())
        .await
}
