//! `POST /inference` on `compute.sock` (the gateway's `POST /api/v1/inference/request`): runs
//! an MLP stored in the mesh (`HYMW` weights file) on an input (a stored `HYMX` matrix or rows
//! given inline) on this node's backends, answers the output and optionally stores it.
//!
//! A request is one batch through a small dense network: it runs where it is received, not
//! split into tiles (a layer of such a model is far smaller than one tile's RPC overhead).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::backends::Backends;
use super::files::{FileError, MeshFiles};
use crate::mlp::Mlp;
use crate::{matrix_file, Matrix};

/// Most input elements accepted inline.
pub const MAX_INLINE: usize = 1 << 20;

/// `POST /inference`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceRequest {
    /// Mesh path of the model (`HYMW`, docs/compute.md).
    pub model: String,
    /// Mesh path of the input batch (`HYMX`, one sample per row).
    #[serde(default)]
    pub input: Option<String>,
    /// The input batch inline, one sample per row.
    #[serde(default)]
    pub x: Option<Vec<Vec<f32>>>,
    /// Mesh path the output batch is also written to.
    #[serde(default)]
    pub out: Option<String>,
}

#[derive(Clone)]
struct InferenceEnv {
    files: MeshFiles,
    backends: Arc<Backends>,
}

/// The inference route.
pub fn router(files: MeshFiles, backends: Arc<Backends>) -> axum::Router {
    axum::Router::new()
        .route("/inference", axum::routing::post(infer))
        .with_state(InferenceEnv { files, backends })
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

fn file_error(e: FileError) -> Response {
    match e {
        FileError::Missing(_) => error(StatusCode::BAD_REQUEST, e),
        FileError::Store(_) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// The inline rows as a matrix: every row the same length, not empty, not absurdly large.
fn inline_matrix(rows: Vec<Vec<f32>>) -> Result<Matrix, String> {
    let cols = rows.first().map_or(0, Vec::len);
    if rows.is_empty() || cols == 0 {
        return Err("x: at least one non-empty row is required".into());
    }
    if rows.iter().any(|r| r.len() != cols) {
        return Err("x: every row must have the same length".into());
    }
    if rows.len().saturating_mul(cols) > MAX_INLINE {
        return Err(format!(
            "x: more than {MAX_INLINE} elements inline; store the input as a matrix file"
        ));
    }
    let n = rows.len();
    Matrix::from_vec(n, cols, rows.into_iter().flatten().collect()).map_err(|e| e.to_string())
}

async fn infer(State(env): State<InferenceEnv>, body: axum::body::Bytes) -> Response {
    tracing::Instrument::instrument(run(env, body), tracing::info_span!("inference")).await
}

async fn run(env: InferenceEnv, body: axum::body::Bytes) -> Response {
    let req: InferenceRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad inference request: {e}"),
            )
        }
    };
    let model = match env.files.get(&req.model).await {
        Ok(bytes) => match Mlp::decode(&bytes) {
            Ok(m) => m,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("{}: {e}", req.model)),
        },
        Err(e) => return file_error(e),
    };
    let x = match (req.input.as_deref(), req.x) {
        (Some(path), None) => match env.files.get(path).await {
            Ok(bytes) => match matrix_file::decode(&bytes) {
                Ok(m) => m,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("{path}: {e}")),
            },
            Err(e) => return file_error(e),
        },
        (None, Some(rows)) => match inline_matrix(rows) {
            Ok(m) => m,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give the input as exactly one of `input` (a mesh path) or `x` (rows)",
            )
        }
    };
    if let Err(e) = model.check_input(&x) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let backends = env.backends.clone();
    let ran = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let mut backend = String::from("cpu");
        let y = model.forward_with(&x, |a, b| {
            backends.gemm(a, b).map(|(c, name)| {
                backend = name;
                c
            })
        });
        y.map(|y| (y, backend, t.elapsed()))
    })
    .await;
    let (y, backend, took) = match ran {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("inference task: {e}"),
            )
        }
    };
    if let Some(out) = &req.out {
        if let Err(e) = env.files.put(out, matrix_file::encode(&y)).await {
            return file_error(e);
        }
    }
    let output: Vec<&[f32]> = (0..y.rows()).map(|i| y.row(i)).collect();
    tracing::info!(rows = y.rows(), cols = y.cols(), %backend, "inference done");
    Json(json!({
        "rows": y.rows(),
        "cols": y.cols(),
        "output": output,
        "backend": backend,
        "micros": took.as_micros() as u64,
        "out": req.out,
    }))
    .into_response()
}
