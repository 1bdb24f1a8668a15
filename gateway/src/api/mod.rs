//! The REST API under `/api/v1/` (contract B in the project's briefs; docs/api.md), the health
//! check, the aggregated metrics and the dashboard's files, as one axum router that both the
//! HTTPS (h1, h2) and the HTTP/3 servers serve.

pub mod admission;
pub mod assets;
pub mod body;
pub mod dashboard;
pub mod files;
pub mod jobs;
pub mod login;
pub mod metrics_merge;
pub mod names;
pub mod node_load;
pub mod openapi;
pub mod status;
pub mod stream;
pub mod vms;

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;

use crate::auth::middleware::require_auth;
use crate::error::ApiError;
use crate::state::GatewayState;

/// Every route the API serves, as `(method, path)` in axum's syntax: the OpenAPI document is
/// checked against this list by a test, and the router is built from the same table.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/login"),
    ("post", "/api/v1/logout"),
    ("get", "/api/v1/session"),
    ("get", "/api/v1/status"),
    ("get", "/api/v1/nodes"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/stream"),
    ("get", "/api/v1/storage"),
    ("get", "/api/v1/admission/pending"),
    ("post", "/api/v1/admission/{id}/admit"),
    ("post", "/api/v1/nodes/{id}/revoke"),
    ("post", "/api/v1/tokens"),
    ("get", "/api/v1/files"),
    ("get", "/api/v1/files/{*path}"),
    ("put", "/api/v1/files/{*path}"),
    ("delete", "/api/v1/files/{*path}"),
    ("get", "/api/v1/stat/{*path}"),
    ("get", "/api/v1/names"),
    ("put", "/api/v1/names/{name}"),
    ("delete", "/api/v1/names/{name}"),
    ("get", "/api/v1/resolve/{name}"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/api/v1/query/asset"),
    ("post", "/api/v1/manifest/refresh"),
    ("get", "/api/v1/assets/{hash}"),
    ("get", "/api/v1/vms"),
    ("post", "/api/v1/vms"),
    ("get", "/api/v1/vms/{name}"),
    ("delete", "/api/v1/vms/{name}"),
    ("get", "/api/v1/vms/{name}/console"),
    ("post", "/api/v1/vms/{name}/stop"),
    ("post", "/api/v1/jobs"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"),
    ("post", "/api/v1/inference/request"),
];

/// The gateway's router over `state`.
pub fn router(state: Arc<GatewayState>) -> Router {
    let api = Router::new()
        .route("/api/v1/login", post(login::login))
        .route("/api/v1/logout", post(login::logout))
        .route("/api/v1/session", get(login::session))
        .route("/api/v1/status", get(status::status))
        .route("/api/v1/nodes", get(status::nodes))
        .route("/api/v1/events", get(status::events))
        .route("/api/v1/stream", get(stream::stream))
        .route("/api/v1/storage", get(status::storage))
        .route("/api/v1/admission/pending", get(admission::pending))
        .route("/api/v1/admission/{id}/admit", post(admission::admit))
        .route("/api/v1/nodes/{id}/revoke", post(admission::revoke))
        .route("/api/v1/tokens", post(admission::create_token))
        .route("/api/v1/files", get(files::list))
        .route(
            "/api/v1/files/{*path}",
            get(files::get_file)
                .put(files::put_file)
                .delete(files::delete_file),
        )
        .route("/api/v1/stat/{*path}", get(files::stat))
        .route("/api/v1/names", get(names::list))
        .route(
            "/api/v1/names/{name}",
            put(names::set).delete(names::remove),
        )
        .route("/api/v1/resolve/{name}", get(names::resolve))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/metrics", get(status::metrics))
        .route("/healthz", get(status::healthz))
        .route("/api/v1/query/asset", get(assets::query))
        .route("/api/v1/manifest/refresh", post(assets::refresh))
        .route("/api/v1/assets/{hash}", get(assets::content))
        .route("/api/v1/vms", get(vms::list).post(vms::create))
        .route("/api/v1/vms/{name}", get(vms::status).delete(vms::delete))
        .route("/api/v1/vms/{name}/console", get(vms::console))
        .route("/api/v1/vms/{name}/stop", post(vms::stop))
        .route("/api/v1/jobs", get(jobs::list).post(jobs::submit))
        .route("/api/v1/jobs/{id}", get(jobs::get_job))
        .route("/api/v1/inference/request", post(jobs::inference))
        .fallback(dashboard::fallback)
        .method_not_allowed_fallback(method_not_allowed);
    api.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        require_auth,
    ))
    .with_state(state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not answer that method",
    )
}
