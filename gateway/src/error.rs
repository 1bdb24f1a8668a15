//! The API's errors: an HTTP status, a stable snake_case code and a human message, always
//! answered as `{"error": {"code", "message"}}` so clients branch on the code, never the text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One API error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code (`unauthenticated`, `not_found`, `bad_request`, …).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no valid session cookie or API token.
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "log in (POST /api/v1/login) or send Authorization: Bearer <api token>",
        )
    }

    /// 404: nothing at this path.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 502: a local service did not answer.
    pub fn unavailable(service: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "service_unavailable",
            format!("the {service} service did not answer: {message}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// A local service's error body (`{"error": {"code","message"}}` or the coordinator's
/// `{"error": "text"}`) turned into an API error with the same status.
pub fn from_service(status: StatusCode, body: &[u8]) -> ApiError {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let (code, message) = match &parsed["error"] {
        serde_json::Value::Object(o) => (
            o.get("code").and_then(|c| c.as_str()).map(str::to_string),
            o.get("message")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string(),
        ),
        serde_json::Value::String(s) => (None, s.clone()),
        _ => (None, String::from_utf8_lossy(body).into_owned()),
    };
    let code = match (code.as_deref(), status.as_u16()) {
        (_, 404) => "not_found",
        (_, 409) => "conflict",
        (_, 400) => "bad_request",
        (_, 416) => "range_not_satisfiable",
        (_, 503) => "unavailable",
        (_, 504) => "timeout",
        _ => "service_error",
    };
    ApiError::new(status, code, message)
}
