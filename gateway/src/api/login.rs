//! `POST /api/v1/login`, `POST /api/v1/logout`, `GET /api/v1/session`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::body::ApiJson;
use crate::auth::middleware::AuthVia;
use crate::auth::password::verify_password;
use crate::auth::session::{clear_cookie, set_cookie};
use crate::error::ApiError;
use crate::state::{now_unix, GatewayState};

/// The client's address, put on every request by the servers.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The login body.
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    password: String,
}

/// Checks the admin password (rate-limited per client address) and sets the session cookie.
#[tracing::instrument(level = "info", skip_all, fields(client = ?client.as_ref().map(|c| c.0 .0.ip())))]
pub async fn login(
    State(state): State<Arc<GatewayState>>,
    client: Option<Extension<ClientAddr>>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    if let Some(Extension(ClientAddr(addr))) = client {
        let allowed = match state.limiter.lock() {
            Ok(mut l) => l.check(addr.ip().to_canonical(), Instant::now()),
            Err(_) => Ok(()),
        };
        if let Err(wait) = allowed {
            let secs = wait.as_secs().max(1);
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many login attempts; try again in {secs} s"),
            )
            .into_response();
            if let Ok(v) = secs.to_string().parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(resp);
        }
    }
    let Some(phc) = state.password_hash().await? else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_password",
            "no admin password is set yet; run `hyphae passwd` on a node",
        ));
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&body.password, &phc))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    if !ok {
        tracing::warn!("login refused: wrong password");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_password",
            "wrong password",
        ));
    }
    state.forget_keys();
    let keys = state.session_keys().await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_session_key",
            "the mesh has no session key yet; try again shortly",
        )
    })?;
    let ttl = state.config.session_ttl.as_secs();
    let cookie = keys.issue(now_unix() + ttl);
    Ok((
        [(header::SET_COOKIE, set_cookie(&cookie, ttl))],
        Json(json!({"ok": true})),
    )
        .into_response())
}

/// Ends the session in this browser (clears the cookie).
pub async fn logout() -> Response {
    (
        [(header::SET_COOKIE, clear_cookie())],
        Json(json!({"ok": true})),
    )
        .into_response()
}

/// How this request is authenticated.
pub async fn session(via: Option<Extension<AuthVia>>) -> Json<serde_json::Value> {
    Json(json!({
        "authenticated": via.is_some(),
        "via": via.map(|Extension(v)| v.as_str()),
    }))
}
