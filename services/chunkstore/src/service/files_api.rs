//! Contract A: the chunkstore's local API on `<run>/chunkstore.sock` (files, stat, listing,
//! delete, scrub, status). Bodies stream both ways; errors are `{"error":{"code","message"}}`.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{normalize_path, FilesError};
use super::read_path::{current_layout, load_manifest, read_range};
use super::state::Shared;
use super::tables::{MeshView, FILES};
use super::write_path::{put_file, release_all};
use crate::ids::ChunkId;
use crate::manifest::Manifest;

/// The `storage` object of `/status` (also served to the gateway).
pub fn storage_json(store: &Shared) -> Value {
    let s = store.local.stats();
    let free = s.fs_available_bytes.saturating_sub(s.reserve_bytes);
    json!({
        "capacity_bytes": s.live_bytes + free,
        "used_bytes": s.live_bytes,
        "shards": s.shards,
        "under_replicated_chunks": store.heal.under_replicated.load(Ordering::Relaxed),
        "healing": {
            "active": store.heal.active.load(Ordering::Relaxed),
            "done": store.heal.done.load(Ordering::Relaxed),
            "total": store.heal.total.load(Ordering::Relaxed),
            "failed": store.heal.failed.load(Ordering::Relaxed),
        },
        "scrub": {
            "running": store.scrub.running.load(Ordering::Relaxed) > 0,
            "runs": store.scrub.runs.load(Ordering::Relaxed),
            "verified": store.scrub.verified.load(Ordering::Relaxed),
            "corrupt_found": store.scrub.corrupt_found.load(Ordering::Relaxed),
            "repaired": store.scrub.repaired.load(Ordering::Relaxed),
            "last_unix": store.scrub.last_unix.load(Ordering::Relaxed),
        },
        "rebalance": {
            "active": store.rebalance.active.load(Ordering::Relaxed),
            "moved": store.rebalance.moved.load(Ordering::Relaxed),
            "pending": store.rebalance.pending.load(Ordering::Relaxed),
            "failed": store.rebalance.failed.load(Ordering::Relaxed),
        },
        "backend": s.backend.as_str(),
        "backend_fallback_reason": s.backend_fallback_reason,
    })
}

/// The routes of contract A (without `/status` and `/metrics`, which the caller merges).
pub fn router(store: Shared) -> axum::Router {
    axum::Router::new()
        .route("/files/{*path}", get(get_file).put(put).delete(delete))
        .route("/files", get(list))
        .route("/stat/{*path}", get(stat))
        .route("/scrub", post(scrub))
        .route("/check", post(check))
        .with_state(store)
}

#[derive(Deserialize)]
struct PutQuery {
    k: Option<u32>,
    m: Option<u32>,
}

async fn put(
    State(store): State<Shared>,
    Path(path): Path<String>,
    Query(q): Query<PutQuery>,
    body: Body,
) -> Response {
    let path = match normalize_path(&path) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match put_file(store, path, body.into_data_stream(), q.k, q.m).await {
        Ok(outcome) => (StatusCode::CREATED, Json(outcome)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Parses one `bytes=a-b` / `bytes=a-` / `bytes=-n` range against `size` → `[start, end)`.
pub fn parse_range(value: &str, size: u64) -> Result<(u64, u64), FilesError> {
    let bad = || FilesError::Range(format!("malformed range {value:?} (expected bytes=a-b)"));
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(FilesError::Range(
            "multiple ranges are not supported".into(),
        ));
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end_incl) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(FilesError::Range("suffix range of 0 bytes".into()));
        }
        (size.saturating_sub(n), size.saturating_sub(1))
    } else {
        let start: u64 = a.parse().map_err(|_| bad())?;
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            let e: u64 = b.parse().map_err(|_| bad())?;
            if e < start {
                return Err(bad());
            }
            e.min(size.saturating_sub(1))
        };
        (start, end)
    };
    if size == 0 || start >= size {
        return Err(FilesError::Range(format!(
            "range starts at {start}, the file has {size} bytes"
        )));
    }
    Ok((start, end_incl + 1))
}

async fn get_file(
    State(store): State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let path = normalize_path(&path)?;
        let (manifest, _) = load_manifest(&store, &path).await?;
        let size = manifest.size;
        let range = match headers.get(header::RANGE) {
            Some(v) => {
                let text = v
                    .to_str()
                    .map_err(|_| FilesError::Range("range header is not text".into()))?;
                Some(parse_range(text, size)?)
            }
            None => None,
        };
        let (start, end) = range.unwrap_or((0, size));
        let stream = read_range(store.clone(), manifest, start, end).await?;
        let mut resp = Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, end - start)
            .header(header::ACCEPT_RANGES, "bytes");
        resp = match range {
            Some(_) => resp.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{size}", end - 1),
            ),
            None => resp.status(StatusCode::OK),
        };
        resp.body(Body::from_stream(stream))
            .map_err(|e| FilesError::Internal(e.to_string()))
    };
    match result.await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn delete(State(store): State<Shared>, Path(path): Path<String>) -> Response {
    let result = async {
        let path = normalize_path(&path)?;
        let loaded = super::manifest_store::load(&store, &path).await?;
        store.coord.delete(FILES, &path).await?;
        let ids: Vec<ChunkId> = loaded.manifest.chunks.iter().map(|c| c.id).collect();
        release_all(&store, &ids).await;
        super::manifest_store::delete_segments(&store, &loaded.segment_keys).await;
        tracing::info!(path, "file deleted");
        Ok::<_, FilesError>(Json(json!({ "deleted": path })).into_response())
    };
    match result.await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
}

/// Health of a file from the node statuses alone (cheap; `stat` verifies shards).
fn quick_health(manifest: &Manifest, view: &MeshView) -> &'static str {
    let mut worst = "healthy";
    for c in &manifest.chunks {
        let up = c
            .layout
            .shards
            .iter()
            .filter(|s| view.is_up(&s.node))
            .count();
        if up < c.layout.redundancy.k as usize {
            return "lost";
        }
        if up < c.layout.shards.len() {
            worst = "degraded";
        }
    }
    worst
}

async fn list(State(store): State<Shared>, Query(q): Query<ListQuery>) -> Response {
    let result = async {
        let prefix = q.prefix.trim_start_matches('/').to_string();
        let entries = store.coord.scan(FILES, &prefix).await?;
        let view = MeshView::load(&store.coord).await?;
        let mut files: Vec<Value> = Vec::with_capacity(entries.len());
        for e in &entries {
            // A split manifest's segments are read too (one value per ~1,500 chunks).
            let Ok(m) = super::manifest_store::resolve(&store, &e.key, &e.value).await else {
                continue;
            };
            files.push(json!({
                "path": m.path,
                "size": m.size,
                "created_unix": m.created_unix,
                "chunks": m.chunks.len(),
                "health": quick_health(&m, &view),
            }));
        }
        Ok::<_, FilesError>(Json(json!({ "files": files })).into_response())
    };
    match result.await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn stat(State(store): State<Shared>, Path(path): Path<String>) -> Response {
    let result = async {
        let path = normalize_path(&path)?;
        let (manifest, _) = load_manifest(&store, &path).await?;
        let view = MeshView::load(&store.coord).await?;
        let mut chunks = Vec::new();
        let mut health = "healthy";
        for c in &manifest.chunks {
            let layout = current_layout(&store, c).await;
            let mut checks = FuturesUnordered::new();
            for s in &layout.shards {
                let (store, view, s) = (store.clone(), &view, s.clone());
                checks.push(async move {
                    let present = store.verify_shard(view, s.node, s.id).await;
                    (s, present)
                });
            }
            let mut shards = Vec::new();
            while let Some((s, present)) = checks.next().await {
                shards.push((s, present));
            }
            shards.sort_by_key(|(s, _)| s.index);
            let present = shards.iter().filter(|(_, p)| *p).count();
            if present < layout.redundancy.k as usize {
                health = "lost";
            } else if present < shards.len() && health == "healthy" {
                health = "degraded";
            }
            chunks.push(json!({
                "id": c.id,
                "size": c.size,
                "k": layout.redundancy.k,
                "m": layout.redundancy.m,
                "shards": shards.iter().map(|(s, p)| json!({
                    "index": s.index,
                    "id": s.id,
                    "node": s.node.to_string(),
                    "present": p,
                })).collect::<Vec<_>>(),
            }));
        }
        let (k, m) = manifest
            .chunks
            .first()
            .map(|c| (c.layout.redundancy.k, c.layout.redundancy.m))
            .unwrap_or((0, 0));
        Ok::<_, FilesError>(
            Json(json!({
                "path": manifest.path,
                "size": manifest.size,
                "created_unix": manifest.created_unix,
                "blake3": manifest.blake3,
                "k": k,
                "m": m,
                "chunks": chunks,
                "health": health,
            }))
            .into_response(),
        )
    };
    match result.await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// `POST /check`: the local store's full consistency check (every record re-read).
async fn check(State(store): State<Shared>) -> Response {
    match store.local.check().await {
        Ok(r) => Json(json!({
            "consistent": r.is_consistent(),
            "shards": r.shards,
            "verified_bytes": r.verified_bytes,
            "corrupt": r.corrupt.len(),
            "problems": r.problems,
        }))
        .into_response(),
        Err(e) => FilesError::Internal(e.to_string()).into_response(),
    }
}

async fn scrub(State(store): State<Shared>) -> Response {
    store.scrub_now.notify_one();
    (StatusCode::ACCEPTED, Json(json!({ "scrub": "started" }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), (0, 10));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), (90, 100));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), (90, 100));
        assert_eq!(parse_range("bytes=50-500", 100).unwrap(), (50, 100));
        for bad in [
            "bytes=",
            "bytes=a-b",
            "items=0-1",
            "bytes=5-2",
            "bytes=100-",
            "bytes=0-1,3-4",
            "bytes=-0",
        ] {
            assert!(parse_range(bad, 100).is_err(), "{bad}");
        }
        assert!(parse_range("bytes=0-0", 0).is_err());
    }
}
