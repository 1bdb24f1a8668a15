//! `GET /api/v1/stream`: Server-Sent Events for the dashboard. Every second the gateway reads
//! nodes, status, storage and events from the local services and sends what changed; every
//! 5 s it sends nodes, status and storage even if unchanged.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::channel::mpsc;
use futures::{SinkExt, Stream};
use serde_json::Value;

use crate::state::GatewayState;

/// How often the sources are read.
const POLL: Duration = Duration::from_secs(1);
/// Longest time between two full updates.
const REFRESH: Duration = Duration::from_secs(5);

/// The SSE handler.
pub async fn stream(
    State(state): State<Arc<GatewayState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(feed(state, tx));
    Sse::new(rx).keep_alive(KeepAlive::default())
}

async fn feed(state: Arc<GatewayState>, mut tx: mpsc::Sender<Result<Event, Infallible>>) {
    let mut last: [Option<Value>; 3] = [None, None, None];
    let mut last_full = Instant::now() - REFRESH;
    // Events already known when the stream opened are not replayed (GET /api/v1/events).
    let mut events_seen: Option<usize> = None;
    loop {
        let full = last_full.elapsed() >= REFRESH;
        if full {
            last_full = Instant::now();
        }
        let current = [
            super::status::nodes_value(&state).await.ok(),
            super::status::status_value(&state).await.ok(),
            super::status::storage_value(&state).await.ok(),
        ];
        for (i, name) in ["nodes", "status", "storage"].iter().enumerate() {
            let Some(v) = &current[i] else { continue };
            if full || last[i].as_ref() != Some(v) {
                let event = Event::default().event(*name).data(v.to_string());
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
                last[i] = Some(v.clone());
            }
        }
        if let Ok(events) = state.local.get("coordinator", "/events").await {
            let list = events["events"].as_array().cloned().unwrap_or_default();
            let from = events_seen.unwrap_or(list.len()).min(list.len());
            for e in &list[from..] {
                let event = Event::default().event("event").data(e.to_string());
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            events_seen = Some(list.len());
        }
        tokio::time::sleep(POLL).await;
        if tx.is_closed() {
            return;
        }
    }
}
