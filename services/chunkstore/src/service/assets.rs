//! Shared assets on this node: the shelf (what `[share] dirs` held at the last scan), its
//! publication into the coordinator's `assets` table, the periodic and on-demand rescans, the
//! local API (`GET /assets?name=|hash=`, `POST /assets/refresh`, `GET /assets/{hash}`), and the
//! serving side of `chunkstore.asset_get` for peers.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::errors::FilesError;
use super::refs::now_unix;
use super::state::Shared;
use super::tables::MeshView;
use crate::asset_scan::scan;
use crate::assets::{
    answer, is_hash, plan_publish, split_key, AssetQuery, AssetRecord, ScannedAsset, ASSETS,
};

/// How often the shared directories are rescanned without being asked.
const RESCAN_EVERY: Duration = Duration::from_secs(600);
/// Bytes per read when streaming an asset.
const PIECE: usize = 1 << 20;

/// This node's shared assets.
#[derive(Debug, Default)]
pub struct AssetShelf {
    /// `[share] dirs`.
    pub dirs: Vec<PathBuf>,
    local: Mutex<HashMap<String, ScannedAsset>>,
    refreshing: tokio::sync::Mutex<()>,
    /// Completed scans.
    pub scans: AtomicU64,
    /// When the last scan finished (unix seconds).
    pub last_unix: AtomicU64,
}

impl AssetShelf {
    /// A shelf over `dirs`, empty until the first scan.
    pub fn new(dirs: Vec<PathBuf>) -> AssetShelf {
        AssetShelf {
            dirs,
            ..AssetShelf::default()
        }
    }

    /// Where the file with this hash is on this node, if shared here.
    pub fn path_of(&self, hash: &str) -> Option<PathBuf> {
        self.local
            .lock()
            .ok()
            .and_then(|m| m.get(hash).map(|a| a.path.clone()))
    }

    /// Number of distinct assets shared here.
    pub fn count(&self) -> usize {
        self.local.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// What a rescan did.
#[derive(Debug, serde::Serialize)]
pub struct RefreshOutcome {
    /// Files found.
    pub files: usize,
    /// Entries written.
    pub published: usize,
    /// Entries removed.
    pub withdrawn: usize,
}

/// Rescans the shared directories and brings this node's entries in `assets` up to date.
#[tracing::instrument(skip(store), fields(node = %store.node))]
pub async fn refresh(store: &Shared) -> Result<RefreshOutcome, FilesError> {
    let _one_at_a_time = store.assets.refreshing.lock().await;
    let dirs = store.assets.dirs.clone();
    let scanned = tokio::task::spawn_blocking(move || scan(&dirs))
        .await
        .map_err(|e| FilesError::Internal(format!("asset scan task: {e}")))?;
    let me = store.node.to_string();
    let mut published = BTreeMap::new();
    for entry in store.coord.scan(ASSETS, "").await? {
        if split_key(&entry.key).is_some_and(|(_, node)| node == me) {
            if let Ok(record) = serde_json::from_str::<AssetRecord>(&entry.value) {
                published.insert(entry.key, record);
            }
        }
    }
    let plan = plan_publish(&me, &published, &scanned);
    for (key, record) in &plan.put {
        let value =
            serde_json::to_string(record).map_err(|e| FilesError::Internal(e.to_string()))?;
        store.coord.put(ASSETS, key, &value, None).await?;
    }
    for key in &plan.delete {
        store.coord.delete(ASSETS, key).await?;
    }
    let outcome = RefreshOutcome {
        files: scanned.len(),
        published: plan.put.len(),
        withdrawn: plan.delete.len(),
    };
    let mut map = HashMap::new();
    for a in scanned {
        map.entry(a.hash.clone()).or_insert(a);
    }
    if let Ok(mut local) = store.assets.local.lock() {
        *local = map;
    }
    store.assets.scans.fetch_add(1, Ordering::Relaxed);
    store.assets.last_unix.store(now_unix(), Ordering::Relaxed);
    tracing::info!(
        files = outcome.files,
        published = outcome.published,
        withdrawn = outcome.withdrawn,
        "shared assets scanned"
    );
    Ok(outcome)
}

/// Scans at start (retrying until the coordinator answers), then every [`RESCAN_EVERY`].
pub async fn run(store: Shared, shutdown: CancellationToken) {
    loop {
        let wait = match refresh(&store).await {
            Ok(_) => RESCAN_EVERY,
            Err(e) => {
                tracing::debug!(error = %e, "asset scan failed; retrying");
                Duration::from_secs(2)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The `assets` object of `/status`.
pub fn assets_json(store: &Shared) -> serde_json::Value {
    json!({
        "dirs": store.assets.dirs,
        "shared": store.assets.count(),
        "scans": store.assets.scans.load(Ordering::Relaxed),
        "last_scan_unix": store.assets.last_unix.load(Ordering::Relaxed),
    })
}

/// The local API's asset routes.
pub fn router(store: Shared) -> axum::Router {
    axum::Router::new()
        .route("/assets", get(query))
        .route("/assets/refresh", post(refresh_now))
        .route("/assets/{hash}", get(content))
        .with_state(store)
}

#[derive(Deserialize)]
struct QueryParams {
    name: Option<String>,
    hash: Option<String>,
}

async fn query(State(store): State<Shared>, Query(q): Query<QueryParams>) -> Response {
    let query = match AssetQuery::from_params(q.name.as_deref(), q.hash.as_deref()) {
        Ok(q) => q,
        Err(e) => return FilesError::BadRequest(e.to_string()).into_response(),
    };
    let entries = match store.coord.scan(ASSETS, &query.prefix()).await {
        Ok(e) => e,
        Err(e) => return FilesError::from(e).into_response(),
    };
    let entries: Vec<(String, AssetRecord)> = entries
        .into_iter()
        .filter_map(|e| Some((e.key, serde_json::from_str(&e.value).ok()?)))
        .collect();
    Json(json!({ "assets": answer(&query, &entries) })).into_response()
}

async fn refresh_now(State(store): State<Shared>) -> Response {
    match refresh(&store).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => e.into_response(),
    }
}

/// One source of asset bytes.
enum Source {
    File(tokio::fs::File),
    Peer(quinn::RecvStream),
}

impl Source {
    async fn next(&mut self, max: usize) -> std::io::Result<Option<Bytes>> {
        match self {
            Source::File(f) => {
                let mut buf = vec![0u8; max];
                let n = f.read(&mut buf).await?;
                buf.truncate(n);
                Ok((n > 0).then(|| Bytes::from(buf)))
            }
            Source::Peer(r) => r
                .read_chunk(max, true)
                .await
                .map(|c| c.map(|c| c.bytes))
                .map_err(std::io::Error::other),
        }
    }
}

struct Streaming {
    source: Source,
    hasher: blake3::Hasher,
    left: u64,
    hash: String,
    done: bool,
}

/// Streams `len` bytes from `source`, hashing them; the stream ends in an error (cutting the
/// body) when the bytes are not the asset asked for, so nothing unverified ends cleanly.
fn stream_body(source: Source, len: u64, hash: String) -> Body {
    let state = Streaming {
        source,
        hasher: blake3::Hasher::new(),
        left: len,
        hash,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        if s.left == 0 {
            s.done = true;
            let got = s.hasher.finalize().to_hex().to_string();
            if got == s.hash {
                return None;
            }
            tracing::warn!(want = %s.hash, %got, "asset bytes do not match their hash");
            return Some((
                Err(std::io::Error::other("asset does not match its hash")),
                s,
            ));
        }
        let want = (s.left as usize).min(PIECE);
        match s.source.next(want).await {
            Ok(Some(bytes)) => {
                let bytes = bytes.slice(..bytes.len().min(want));
                s.left -= bytes.len() as u64;
                s.hasher.update(&bytes);
                Some((Ok(bytes), s))
            }
            Ok(None) => {
                s.done = true;
                Some((Err(std::io::Error::other("asset ended early")), s))
            }
            Err(e) => {
                s.done = true;
                Some((Err(e), s))
            }
        }
    });
    Body::from_stream(stream)
}

async fn content(State(store): State<Shared>, Path(hash): Path<String>) -> Response {
    let hash = hash.to_ascii_lowercase();
    if !is_hash(&hash) {
        return FilesError::BadRequest("hash is not a BLAKE3 hash (64 hex digits)".into())
            .into_response();
    }
    let headers = |len: u64| {
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ]
    };
    if let Some(path) = store.assets.path_of(&hash) {
        if let Ok(file) = tokio::fs::File::open(&path).await {
            if let Ok(meta) = file.metadata().await {
                let len = meta.len();
                return (
                    StatusCode::OK,
                    headers(len),
                    stream_body(Source::File(file), len, hash),
                )
                    .into_response();
            }
        }
    }
    let holders = match store.coord.scan(ASSETS, &format!("{hash}/")).await {
        Ok(e) => e,
        Err(e) => return FilesError::from(e).into_response(),
    };
    if holders.is_empty() {
        return FilesError::NotFound(format!("asset {hash}")).into_response();
    }
    let view = match MeshView::load(&store.coord).await {
        Ok(v) => v,
        Err(e) => return FilesError::from(e).into_response(),
    };
    let mut nodes: Vec<_> = holders
        .iter()
        .filter_map(|e| split_key(&e.key)?.1.parse::<hyphae_core::NodeId>().ok())
        .filter(|n| *n != store.node && view.is_up(n))
        .collect();
    nodes.sort_by_key(|n| store.peers.latency(n));
    let mut last = String::from("no holder is up");
    for node in nodes {
        let Some(addr) = view.get(&node).and_then(|n| n.addr) else {
            continue;
        };
        match store.peers.asset_stream(node, addr, &hash).await {
            Ok((len, recv)) => {
                return (
                    StatusCode::OK,
                    headers(len),
                    stream_body(Source::Peer(recv), len, hash),
                )
                    .into_response()
            }
            Err(e) => last = e.to_string(),
        }
    }
    FilesError::Unavailable(format!("asset {hash}: {last}")).into_response()
}

/// Serves `chunkstore.asset_get` for a peer: the header, then the file's bytes, checked
/// against the hash as they go (a file changed since the scan ends in a reset stream, never a
/// clean end).
pub async fn serve_asset(
    shelf: &AssetShelf,
    hash: &str,
    ch: &mut hyphae_core::rpc::RpcChannel,
) -> Result<(), hyphae_core::rpc::RpcFault> {
    use hyphae_core::rpc::{ErrorCode, RpcFault};
    let path = shelf
        .path_of(hash)
        .ok_or_else(|| RpcFault::new(ErrorCode::NotFound, format!("asset {hash} not shared")))?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| RpcFault::new(ErrorCode::NotFound, format!("asset {hash}: {e}")))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| RpcFault::new(ErrorCode::Internal, e.to_string()))?
        .len();
    let stream_err = |e: &dyn std::fmt::Display| RpcFault::new(ErrorCode::Internal, e.to_string());
    ch.send_item(&crate::asset_rpc::AssetHeader { len })
        .await
        .map_err(|e| stream_err(&e))?;
    let (send, _) = ch.raw_mut();
    let mut hasher = blake3::Hasher::new();
    let mut left = len;
    let mut buf = vec![0u8; PIECE];
    while left > 0 {
        let want = (left as usize).min(PIECE);
        let n = file
            .read(&mut buf[..want])
            .await
            .map_err(|e| stream_err(&e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        send.write_all(&buf[..n])
            .await
            .map_err(|e| stream_err(&e))?;
        left -= n as u64;
    }
    if left > 0 || hasher.finalize().to_hex().as_str() != hash {
        let _ = send.reset(quinn::VarInt::from_u32(1));
        return Err(RpcFault::new(
            ErrorCode::Internal,
            format!("asset {hash} changed since it was scanned"),
        ));
    }
    send.finish().map_err(|e| stream_err(&e))?;
    Ok(())
}
