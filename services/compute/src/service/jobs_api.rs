//! The jobs routes of `compute.sock`: `POST /jobs` (submit), `GET /jobs` (list),
//! `GET /jobs/{id}` (status). The CLI (`hyphae job`) and the gateway call these.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::json;

use super::job::{submit, JobEnv, SubmitError};
use super::tables::{JobRequest, JOBS};

/// The jobs routes.
pub fn router(env: JobEnv) -> axum::Router {
    axum::Router::new()
        .route("/jobs", get(list).post(post_job))
        .route("/jobs/{id}", get(get_job))
        .with_state(env)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn post_job(State(env): State<JobEnv>, body: axum::body::Bytes) -> Response {
    let req: JobRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad job request: {e}")),
    };
    match submit(env, req).await {
        Ok(id) => (StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response(),
        Err(e @ SubmitError::Invalid(_)) => error(StatusCode::BAD_REQUEST, e),
        Err(e @ SubmitError::Unavailable(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn get_job(State(env): State<JobEnv>, Path(id): Path<String>) -> Response {
    // This node's applied state may not hold a job just submitted elsewhere (or just
    // submitted here, on a follower): ask the queen before saying there is no such job.
    let found = match env.coord.get(JOBS, &id, false).await {
        Ok(None) => env.coord.get(JOBS, &id, true).await,
        other => other,
    };
    match found {
        Ok(Some((text, _))) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => Json(v).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn list(State(env): State<JobEnv>) -> Response {
    match env.coord.scan(JOBS, "").await {
        Ok(entries) => {
            let jobs: Vec<serde_json::Value> = entries
                .iter()
                .filter_map(|e| serde_json::from_str(&e.value).ok())
                .collect();
            Json(json!({ "jobs": jobs })).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}
