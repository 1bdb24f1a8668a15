//! Compute jobs and inference, proxied to the node's compute service (`compute.sock`):
//! `POST /api/v1/jobs` (submit a GEMM of two stored matrices; the queen runs it),
//! `GET /api/v1/jobs`, `GET /api/v1/jobs/{id}` (records from the replicated key space), and
//! `POST /api/v1/inference/request` (an MLP stored in the mesh on an input, answered inline).
//! See docs/compute.md.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Response};

use crate::error::ApiError;
use crate::local::encode;
use crate::state::GatewayState;

/// `POST /api/v1/jobs`: `{"a", "b", "out", "tile"?, "verify"?}` → `202 {"id"}`.
#[tracing::instrument(level = "debug", skip(state, headers, body))]
pub async fn submit(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    state
        .local
        .proxy("compute", Method::POST, "/jobs", &headers, body)
        .await
}

/// `GET /api/v1/jobs`: every job's record.
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn list(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    state
        .local
        .proxy("compute", Method::GET, "/jobs", &headers, Body::empty())
        .await
}

/// `GET /api/v1/jobs/{id}`: one job's record (state, tiles, workers).
#[tracing::instrument(level = "debug", skip(state, headers))]
pub async fn get_job(
    State(state): State<Arc<GatewayState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response<Body>, ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::bad_request("a job id is 1 to 64 characters"));
    }
    let uri = format!("/jobs/{}", encode(&id));
    state
        .local
        .proxy("compute", Method::GET, &uri, &headers, Body::empty())
        .await
}

/// `POST /api/v1/inference/request`: `{"model", "input" | "x", "out"?}` → the output rows.
#[tracing::instrument(level = "debug", skip(state, headers, body))]
pub async fn inference(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    state
        .local
        .proxy("compute", Method::POST, "/inference", &headers, body)
        .await
}
