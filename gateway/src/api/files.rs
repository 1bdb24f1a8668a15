//! Files: proxied to the node's chunkstore, bodies streaming both ways (any chunkstore reads
//! and writes for the whole mesh), `Range` passing through.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, Response};

use crate::error::ApiError;
use crate::local::encode_path;
use crate::state::GatewayState;

fn target(prefix: &str, path: &str, query: Option<String>) -> Result<String, ApiError> {
    if path.is_empty() || path.split('/').any(|s| s == ".." || s == ".") {
        return Err(ApiError::bad_request(
            "a file path has no empty, . or .. part",
        ));
    }
    let mut uri = format!("{prefix}/{}", encode_path(path));
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(&q);
    }
    Ok(uri)
}

async fn forward(
    state: &GatewayState,
    method: Method,
    uri: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    state
        .local
        .proxy("chunkstore", method, uri, headers, body)
        .await
}

/// `GET /api/v1/files?prefix=`.
pub async fn list(
    State(state): State<Arc<GatewayState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let uri = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("/files?{q}"),
        None => "/files".to_string(),
    };
    forward(&state, Method::GET, &uri, &headers, Body::empty()).await
}

/// `GET /api/v1/files/{*path}` (streamed; `Range` honoured by the chunkstore).
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn get_file(
    State(state): State<Arc<GatewayState>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let uri = target("/files", &path, query)?;
    forward(&state, Method::GET, &uri, &headers, Body::empty()).await
}

/// `PUT /api/v1/files/{*path}` (the request body streams to the chunkstore).
#[tracing::instrument(level = "debug", skip(state, headers, body))]
pub async fn put_file(
    State(state): State<Arc<GatewayState>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    let uri = target("/files", &path, query)?;
    forward(&state, Method::PUT, &uri, &headers, body).await
}

/// `DELETE /api/v1/files/{*path}`.
pub async fn delete_file(
    State(state): State<Arc<GatewayState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let uri = target("/files", &path, None)?;
    forward(&state, Method::DELETE, &uri, &headers, Body::empty()).await
}

/// `GET /api/v1/stat/{*path}`.
pub async fn stat(
    State(state): State<Arc<GatewayState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let uri = target("/stat", &path, None)?;
    forward(&state, Method::GET, &uri, &headers, Body::empty()).await
}
