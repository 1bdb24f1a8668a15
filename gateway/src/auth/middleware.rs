//! The authentication gate in front of every route but the public ones.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api_token::{self, TokenRecord};
use super::session::from_cookie_header;
use super::TOKENS_TABLE;
use crate::error::ApiError;
use crate::state::{now_unix, GatewayState};

/// How a request was authenticated (an extension handlers can read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    /// A session cookie from `POST /api/v1/login`.
    Cookie,
    /// An API token in `Authorization: Bearer`.
    Token,
}

impl AuthVia {
    /// The name the API reports (`cookie` or `token`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthVia::Cookie => "cookie",
            AuthVia::Token => "token",
        }
    }
}

/// Whether a request may be answered without authentication: the health check, the login
/// call, and everything outside `/api/` and `/metrics` (the dashboard's static files and pages,
/// the login page among them).
pub fn is_public(method: &Method, path: &str) -> bool {
    if path == "/healthz" {
        return true;
    }
    if path == "/api/v1/login" {
        return method == Method::POST;
    }
    !(path == "/api" || path.starts_with("/api/") || path == "/metrics")
}

/// The request's authentication, if any.
pub async fn authenticate(
    state: &GatewayState,
    headers: &axum::http::HeaderMap,
) -> Result<Option<AuthVia>, ApiError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let Some(token) = auth.to_str().ok().and_then(|a| a.strip_prefix("Bearer ")) else {
            return Ok(None);
        };
        let Some((id, secret)) = api_token::parse(token.trim()) else {
            return Ok(None);
        };
        let Some(stored) = state.local.kv_get(TOKENS_TABLE, id).await? else {
            return Ok(None);
        };
        let Ok(record) = serde_json::from_str::<TokenRecord>(&stored.value) else {
            return Ok(None);
        };
        return Ok(api_token::matches(&record, secret).then_some(AuthVia::Token));
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(from_cookie_header);
    let Some(cookie) = cookie else {
        return Ok(None);
    };
    let Some(keys) = state.session_keys().await? else {
        return Ok(None);
    };
    Ok(keys.verify(cookie, now_unix()).then_some(AuthVia::Cookie))
}

/// Middleware: public routes pass, the rest need a session cookie or an API token.
pub async fn require_auth(
    State(state): State<Arc<GatewayState>>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    match authenticate(&state, req.headers()).await {
        Ok(Some(via)) => {
            req.extensions_mut().insert(via);
            next.run(req).await
        }
        Ok(None) => ApiError::unauthenticated().into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_routes() {
        assert!(is_public(&Method::GET, "/healthz"));
        assert!(is_public(&Method::GET, "/"));
        assert!(is_public(&Method::GET, "/login"));
        assert!(is_public(&Method::GET, "/assets/app.js"));
        assert!(is_public(&Method::POST, "/api/v1/login"));
        assert!(!is_public(&Method::GET, "/api/v1/login"));
        assert!(!is_public(&Method::GET, "/api/v1/status"));
        assert!(!is_public(&Method::GET, "/api"));
        assert!(!is_public(&Method::GET, "/metrics"));
    }
}
