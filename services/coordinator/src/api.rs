//! The local API on `coordinator.sock` (HTTP JSON): what the CLI and the gateway use.
//!
//! | Route | What |
//! |---|---|
//! | `GET /status` | mesh id, queen, term, indexes, this node's role, lag |
//! | `GET /nodes` | the directory with roles |
//! | `POST /tokens` `{"ttl": "1h", "uses": 1}` | a join token |
//! | `POST /admit` `{"node": ID}` | admit a pending node |
//! | `POST /revoke` `{"node": ID, "reason": ".."}` | revoke a node |
//! | `POST /leave` | this node leaves the mesh |
//! | `GET /kv/{table}/{key}[?linearizable=true]`, `PUT /kv/{table}/{key}` `{"value": "..", "expect_version": N}` | the key space |
//! | `GET /events` | committed liveness and admission events |
//! | `PUT /hardware` `{"hardware": {..}}` | this node's hardware profile (from the beacon) |
//! | `POST /gateway-cert` `{"csr_pem": ".."}` | this node's gateway certificate, signed by the queen's web CA: `{"chain_pem"}` (leaf, then CA) |
//! | `GET /kv/{table}?prefix=P` | every key of a table starting with `P`, in key order |
//! | `DELETE /kv/{table}/{key}` | removes a key (idempotent) |

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use hyphae_core::metrics::MetricsRegistry;
use hyphae_core::NodeId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::command::{read_all, Command, Kv};
use crate::directory::{table, Event};
use crate::error::CoordinatorError;
use crate::methods::Admit;
use crate::service::{Coordinator, Role};

type Shared = State<Arc<Coordinator>>;

fn error_response(e: CoordinatorError) -> Response {
    let code = match &e {
        CoordinatorError::Refused(_) => StatusCode::CONFLICT,
        CoordinatorError::BadRequest(_) => StatusCode::BAD_REQUEST,
        CoordinatorError::NoQueen(_) => StatusCode::SERVICE_UNAVAILABLE,
        CoordinatorError::Unknown(_) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, Json(json!({ "error": e.to_string() }))).into_response()
}

fn parse_node(text: &str) -> Result<NodeId, CoordinatorError> {
    text.parse()
        .map_err(|e| CoordinatorError::BadRequest(format!("{text:?} is not a node id: {e}")))
}

/// The coordinator's local API router (plus `/metrics`).
pub fn router(coord: Arc<Coordinator>, metrics: MetricsRegistry) -> axum::Router {
    let status_coord = coord.clone();
    let base = hyphae_core::ipc::base_router(move || status_json(&status_coord), metrics);
    let api = axum::Router::new()
        .route("/nodes", get(nodes))
        .route("/events", get(events))
        .route("/tokens", post(create_token))
        .route("/admit", post(admit))
        .route("/revoke", post(revoke))
        .route("/leave", post(leave))
        .route("/hardware", axum::routing::put(put_hardware))
        .route("/gateway-cert", post(gateway_cert))
        .route(
            "/kv/{table}/{key}",
            get(kv_get).put(kv_put).delete(kv_delete),
        )
        .route("/kv/{table}", get(kv_scan))
        .with_state(coord);
    base.merge(api)
}

/// `/status`: this node's view of the coordinator.
pub fn status_json(coord: &Coordinator) -> Value {
    let m = coord.raft.metrics().borrow().clone();
    let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    let last_log = m.last_log_index.unwrap_or(0);
    let lag = match &m.replication {
        Some(r) => r
            .values()
            .map(|matched| last_log.saturating_sub(matched.map(|l| l.index).unwrap_or(0)))
            .max()
            .unwrap_or(0),
        None => last_log.saturating_sub(applied),
    };
    let queen = coord.queen();
    let (voters, learners) = coord.raft_members();
    json!({
        "ready": true,
        "service": "coordinator",
        "node_id": coord.id.to_string(),
        "name": coord.name,
        "mesh_id": coord.membership.secrets.mesh_id.to_string(),
        "queen": queen.as_ref().map(|(q, _)| q.to_string()),
        "queen_addr": queen.map(|(_, a)| a),
        "role": coord.role_of(&coord.id),
        "term": m.current_term,
        "commit_index": applied,
        "last_log_index": last_log,
        "lag": lag,
        "snapshot_index": m.snapshot.map(|l| l.index),
        "purged_index": m.purged.map(|l| l.index),
        "voters": voters.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        "learners": learners.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        "addr": coord.addr,
        "uptime_s": coord.started.elapsed().as_secs(),
    })
}

async fn nodes(State(coord): Shared) -> Json<Value> {
    // Princes are the voters; the queen is the prince that currently leads, so she counts too.
    let (voters, _) = coord.raft_members();
    let list: Vec<Value> = coord
        .nodes()
        .into_iter()
        .map(|n| {
            let role = if n.status.is_member() {
                coord.role_of(&n.id)
            } else {
                Role::None
            };
            json!({
                "id": n.id.to_string(),
                "name": n.name,
                "addresses": n.addresses,
                "coordinator_addr": n.coordinator_addr,
                "role": role,
                "voter": voters.contains(&n.id),
                "status": n.status,
                "admitted_unix": n.admitted_unix,
                "last_seen_unix": n.last_seen_unix,
                "uptime_s": n.uptime_s,
                "jitter_ms": n.jitter_ms,
                "hardware": n.hardware,
            })
        })
        .collect();
    Json(json!({ "nodes": list }))
}

async fn events(State(coord): Shared) -> Json<Value> {
    let list: Vec<Event> = read_all(&coord.view, table::EVENTS);
    Json(json!({ "events": list }))
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default = "default_ttl", with = "humantime_serde")]
    ttl: Duration,
    #[serde(default = "default_uses")]
    uses: u32,
}

fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}

fn default_uses() -> u32 {
    1
}

async fn create_token(State(coord): Shared, Json(body): Json<TokenBody>) -> Response {
    match coord.create_token(body.ttl, body.uses).await {
        Ok(t) => Json(json!({
            "token": t.to_string(),
            "id": t.id,
            "ttl_s": body.ttl.as_secs(),
            "uses": body.uses,
        }))
        .into_response(),
        Err(e) => error_response(e),
    }
}

#[derive(Deserialize)]
struct NodeBody {
    node: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn admit(State(coord): Shared, Json(body): Json<NodeBody>) -> Response {
    let node = match parse_node(&body.node) {
        Ok(n) => n,
        Err(e) => return error_response(e),
    };
    let result = if coord.is_queen() {
        coord.admit_as_queen(node).await
    } else {
        match coord.queen() {
            Some((q, addr)) => coord
                .peers
                .call::<Admit>(q, &addr, &node, None)
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r),
            None => Err("no queen right now".to_string()),
        }
    };
    match result {
        Ok(()) => Json(json!({ "admitted": node.to_string() })).into_response(),
        Err(e) => error_response(CoordinatorError::Refused(e)),
    }
}

async fn revoke(State(coord): Shared, Json(body): Json<NodeBody>) -> Response {
    let node = match parse_node(&body.node) {
        Ok(n) => n,
        Err(e) => return error_response(e),
    };
    if node == coord.id {
        return error_response(CoordinatorError::BadRequest(
            "a node cannot revoke itself; run this on another member".into(),
        ));
    }
    let command = Command::Revoke {
        node,
        reason: body
            .reason
            .unwrap_or_else(|| "revoked by an administrator".into()),
        now_unix: crate::service::now_unix(),
    };
    match coord.propose_ok(command).await {
        Ok(version) => {
            Json(json!({ "revoked": node.to_string(), "version": version })).into_response()
        }
        Err(e) => error_response(e),
    }
}

async fn leave(State(coord): Shared) -> Response {
    let command = Command::Leave {
        node: coord.id,
        now_unix: crate::service::now_unix(),
    };
    match coord.propose_ok(command).await {
        Ok(version) => {
            Json(json!({ "left": coord.id.to_string(), "version": version })).into_response()
        }
        Err(e) => error_response(e),
    }
}

#[derive(Deserialize)]
struct HardwareBody {
    hardware: Value,
}

/// Sets this node's hardware profile in the directory (`hyphae nodes --json` shows it).
async fn put_hardware(State(coord): Shared, Json(body): Json<HardwareBody>) -> Response {
    if !body.hardware.is_object() {
        return error_response(CoordinatorError::BadRequest(
            "`hardware` must be a JSON object".into(),
        ));
    }
    let text = body.hardware.to_string();
    if text.len() > 64 * 1024 {
        return error_response(CoordinatorError::BadRequest(
            "the hardware profile is larger than 64 KiB".into(),
        ));
    }
    let command = Command::SetHardware {
        node: coord.id,
        hardware_json: text,
    };
    match coord.propose_ok(command).await {
        Ok(version) => {
            Json(json!({ "node": coord.id.to_string(), "version": version })).into_response()
        }
        Err(e) => error_response(e),
    }
}

#[derive(Deserialize)]
struct ReadQuery {
    #[serde(default)]
    linearizable: bool,
}

fn check_name(what: &str, name: &str) -> Result<(), CoordinatorError> {
    if name.is_empty() || name.len() > 256 || name.contains('\0') {
        return Err(CoordinatorError::BadRequest(format!(
            "{what} must be 1-256 bytes without NUL"
        )));
    }
    Ok(())
}

async fn kv_get(
    State(coord): Shared,
    Path((table, key)): Path<(String, String)>,
    Query(q): Query<ReadQuery>,
) -> Response {
    let value = if q.linearizable {
        match coord.linearizable_get(&table, &key).await {
            Ok(v) => v,
            Err(e) => return error_response(e),
        }
    } else {
        coord.view.get(&table, &key)
    };
    match value {
        Some(v) => Json(json!({
            "value": String::from_utf8_lossy(&v.value),
            "version": v.version,
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such key" })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct PutBody {
    value: String,
    #[serde(default)]
    expect_version: Option<u64>,
}

async fn kv_put(
    State(coord): Shared,
    Path((table, key)): Path<(String, String)>,
    Json(body): Json<PutBody>,
) -> Response {
    if let Err(e) = check_name("table", &table).and_then(|_| check_name("key", &key)) {
        return error_response(e);
    }
    let command = Command::Put {
        table,
        key,
        value: body.value.into_bytes(),
        expect_version: body.expect_version,
    };
    match coord.propose_ok(command).await {
        Ok(version) => Json(json!({ "version": version })).into_response(),
        Err(e) => error_response(e),
    }
}

#[derive(Deserialize)]
struct GatewayCertBody {
    csr_pem: String,
}

async fn gateway_cert(State(coord): Shared, Json(body): Json<GatewayCertBody>) -> Response {
    match coord.gateway_cert(body.csr_pem).await {
        Ok(chain_pem) => Json(json!({ "chain_pem": chain_pem })).into_response(),
        Err(e) => error_response(CoordinatorError::Refused(e)),
    }
}

#[derive(Deserialize)]
struct ScanQuery {
    #[serde(default)]
    prefix: String,
}

/// `GET /kv/{table}?prefix=`: the keys of a table with that prefix, with values and versions
/// (this node's applied state; the chunkstore's listings and repair scans use it).
async fn kv_scan(
    State(coord): Shared,
    Path(table): Path<String>,
    Query(q): Query<ScanQuery>,
) -> Response {
    if let Err(e) = check_name("table", &table) {
        return error_response(e);
    }
    let entries: Vec<Value> = coord
        .view
        .scan(&table)
        .into_iter()
        .filter(|(k, _)| k.starts_with(&q.prefix))
        .map(|(k, v)| {
            json!({
                "key": k,
                "value": String::from_utf8_lossy(&v.value),
                "version": v.version,
            })
        })
        .collect();
    Json(json!({ "entries": entries })).into_response()
}

/// `DELETE /kv/{table}/{key}`: removes a key through Raft.
async fn kv_delete(State(coord): Shared, Path((table, key)): Path<(String, String)>) -> Response {
    if let Err(e) = check_name("table", &table).and_then(|_| check_name("key", &key)) {
        return error_response(e);
    }
    match coord.propose_ok(Command::Delete { table, key }).await {
        Ok(version) => Json(json!({ "version": version })).into_response(),
        Err(e) => error_response(e),
    }
}
