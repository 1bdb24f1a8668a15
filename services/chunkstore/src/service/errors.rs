//! The errors of the file API, each with a stable code and an HTTP status (contract A).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::coordinator_client::CoordError;

/// Why a file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The path is empty, too long or has forbidden characters.
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// No such file.
    #[error("no file at {0}")]
    NotFound(String),
    /// A query parameter or header is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// The Range header cannot be satisfied or parsed.
    #[error("range not satisfiable: {0}")]
    Range(String),
    /// Not enough storage nodes (or space) for the layout.
    #[error("not enough storage: {0}")]
    InsufficientNodes(String),
    /// A chunk cannot be rebuilt from the shards that are reachable.
    #[error("data unavailable: {0}")]
    Unavailable(String),
    /// The coordinator could not be reached or refused.
    #[error("{0}")]
    Coordinator(#[from] CoordError),
    /// Someone else changed the file at the same time.
    #[error("the file changed during the operation; try again")]
    Conflict,
    /// The client's upload stream broke.
    #[error("upload interrupted: {0}")]
    Upload(String),
    /// The file needs a manifest larger than one coordinator value may be.
    #[error("file too large: {0}")]
    TooLarge(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl FilesError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            FilesError::InvalidPath(_) => "invalid_path",
            FilesError::NotFound(_) => "not_found",
            FilesError::BadRequest(_) => "bad_request",
            FilesError::Range(_) => "range_not_satisfiable",
            FilesError::InsufficientNodes(_) => "insufficient_storage",
            FilesError::Unavailable(_) => "data_unavailable",
            FilesError::Coordinator(_) => "coordinator_unavailable",
            FilesError::Conflict => "conflict",
            FilesError::Upload(_) => "upload_interrupted",
            FilesError::TooLarge(_) => "file_too_large",
            FilesError::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            FilesError::InvalidPath(_) | FilesError::BadRequest(_) | FilesError::Upload(_) => {
                StatusCode::BAD_REQUEST
            }
            FilesError::NotFound(_) => StatusCode::NOT_FOUND,
            FilesError::Range(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            FilesError::InsufficientNodes(_) => StatusCode::INSUFFICIENT_STORAGE,
            FilesError::Unavailable(_) | FilesError::Coordinator(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            FilesError::Conflict => StatusCode::CONFLICT,
            FilesError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            FilesError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for FilesError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        (self.status(), axum::Json(body)).into_response()
    }
}

/// Checks a file path: 1–255 bytes of UTF-8, no NUL or control characters, no empty, `.` or
/// `..` segments; a leading `/` is dropped.
pub fn normalize_path(raw: &str) -> Result<String, FilesError> {
    let p = raw.trim_start_matches('/');
    if p.is_empty() || p.len() > 255 {
        return Err(FilesError::InvalidPath(format!(
            "{raw:?}: a path is 1 to 255 bytes"
        )));
    }
    if p.chars().any(|c| c.is_control()) {
        return Err(FilesError::InvalidPath(format!(
            "{raw:?}: control characters are not allowed"
        )));
    }
    if p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(FilesError::InvalidPath(format!(
            "{raw:?}: empty, `.` and `..` segments are not allowed"
        )));
    }
    Ok(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(normalize_path("/a/b.txt").unwrap(), "a/b.txt");
        for bad in [
            "",
            "/",
            "a//b",
            "a/../b",
            "./a",
            "a/",
            "x\ny",
            &"x".repeat(300),
        ] {
            assert!(normalize_path(bad).is_err(), "{bad:?}");
        }
    }
}
