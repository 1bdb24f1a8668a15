//! Everything that is not an API route: the dashboard's embedded files for GETs (the single-page
//! app's own paths get `index.html`), JSON 404s under `/api/`.

use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;

/// The fallback handler.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path == "/api" || method != Method::GET {
        return ApiError::not_found(format!("no route {method} {path}")).into_response();
    }
    let asset_path = path.trim_start_matches('/');
    match hyphae_dashboard::asset_or_index(asset_path) {
        Some(asset) => {
            if headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == asset.etag)
            {
                return StatusCode::NOT_MODIFIED.into_response();
            }
            (
                [
                    (header::CONTENT_TYPE, asset.content_type),
                    (header::ETAG, asset.etag),
                ],
                asset.bytes,
            )
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Html(
                "<!doctype html><title>Hyphae</title><h1>Hyphae</h1>\
                 <p>The dashboard is not built into this binary. The API is at /api/v1/.</p>",
            ),
        )
            .into_response(),
    }
}
