//! The calling side of the shard RPCs: one cached mutual-TLS QUIC connection per peer
//! chunkstore; a failed call drops it so the next one redials.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hyphae_core::rpc::{self, ErrorCode, Limits, RpcError};
use hyphae_core::transport::{MeshEndpoint, PeerConnection};
use hyphae_core::NodeId;

use crate::asset_rpc::{AssetGet, AssetHeader, AssetRef};
use crate::ids::ShardHash;
use crate::shard_rpc::{
    ShardAck, ShardDelete, ShardGet, ShardHeader, ShardPut, ShardPutRequest, ShardRef, ShardVerify,
};

/// Why a shard call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No connection.
    #[error("node {node} unreachable: {reason}")]
    Unreachable { node: NodeId, reason: String },
    /// The peer does not have the shard.
    #[error("node {node} does not have shard {id}")]
    NotFound { node: NodeId, id: ShardHash },
    /// The call failed.
    #[error("node {node}: {reason}")]
    Failed { node: NodeId, reason: String },
    /// The peer's store has no room for the shard (retrying there is pointless).
    #[error("node {node} is full: {reason}")]
    Full { node: NodeId, reason: String },
}

/// Connections to the other chunkstores.
#[derive(Debug, Clone)]
pub struct ShardPeers {
    endpoint: MeshEndpoint,
    limits: Limits,
    conns: Arc<Mutex<HashMap<NodeId, PeerConnection>>>,
    /// Smoothed round-trip time per node, for "fastest peers first".
    rtt: Arc<Mutex<HashMap<NodeId, Duration>>>,
}

impl ShardPeers {
    /// Over a dial-capable endpoint of the chunkstore service.
    pub fn new(endpoint: MeshEndpoint, limits: Limits) -> ShardPeers {
        ShardPeers {
            endpoint,
            limits,
            conns: Arc::default(),
            rtt: Arc::default(),
        }
    }

    /// The measured latency of `node` (unknown nodes sort after known ones).
    pub fn latency(&self, node: &NodeId) -> Duration {
        self.rtt
            .lock()
            .ok()
            .and_then(|m| m.get(node).copied())
            .unwrap_or(Duration::from_secs(1))
    }

    fn note_rtt(&self, node: NodeId, took: Duration) {
        if let Ok(mut m) = self.rtt.lock() {
            let e = m.entry(node).or_insert(took);
            *e = (*e * 7 + took) / 8;
        }
    }

    fn drop_connection(&self, node: NodeId) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&node);
        }
        if let Ok(mut m) = self.rtt.lock() {
            m.insert(node, Duration::from_secs(5));
        }
    }

    async fn connection(
        &self,
        node: NodeId,
        addr: SocketAddr,
    ) -> Result<PeerConnection, PeerError> {
        if let Ok(conns) = self.conns.lock() {
            if let Some(c) = conns.get(&node).filter(|c| c.conn.close_reason().is_none()) {
                return Ok(c.clone());
            }
        }
        let conn =
            self.endpoint
                .connect(addr, Some(node))
                .await
                .map_err(|e| PeerError::Unreachable {
                    node,
                    reason: e.to_string(),
                })?;
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(node, conn.clone());
        }
        Ok(conn)
    }

    fn failed(&self, node: NodeId, e: RpcError) -> PeerError {
        if !matches!(e, RpcError::Remote(_)) {
            self.drop_connection(node);
        }
        PeerError::Failed {
            node,
            reason: e.to_string(),
        }
    }

    /// Stores a shard on `node`; returns once it is durable there.
    pub async fn put(
        &self,
        node: NodeId,
        addr: SocketAddr,
        id: ShardHash,
        data: Bytes,
    ) -> Result<ShardAck, PeerError> {
        let conn = self.connection(node, addr).await?;
        let started = Instant::now();
        let exchange = async {
            let req = ShardPutRequest {
                id,
                len: data.len() as u64,
            };
            let mut ch = rpc::open::<ShardPut>(&conn, &req, &self.limits).await?;
            {
                let (send, _) = ch.raw_mut();
                send.write_chunk(data).await?;
            }
            ch.recv_item::<ShardAck>()
                .await?
                .ok_or_else(|| RpcError::Protocol("no acknowledgement".into()))
        };
        let ack = tokio::time::timeout(self.limits.request_timeout, exchange)
            .await
            .map_err(|_| self.failed(node, RpcError::Timeout(self.limits.request_timeout)))?
            .map_err(|e| match e {
                RpcError::Remote(f) if f.code == ErrorCode::InsufficientStorage => {
                    PeerError::Full {
                        node,
                        reason: f.message,
                    }
                }
                e => self.failed(node, e),
            })?;
        self.note_rtt(node, started.elapsed());
        Ok(ack)
    }

    /// Fetches a shard from `node` and checks it against its id.
    pub async fn get(
        &self,
        node: NodeId,
        addr: SocketAddr,
        id: ShardHash,
    ) -> Result<Bytes, PeerError> {
        let conn = self.connection(node, addr).await?;
        let started = Instant::now();
        let max = u64::from(self.limits.max_frame_bytes).max(256 << 20);
        let exchange = async {
            let mut ch = rpc::open::<ShardGet>(&conn, &ShardRef { id }, &self.limits).await?;
            ch.raw_mut().0.finish()?;
            let header: ShardHeader = ch
                .recv_item()
                .await?
                .ok_or_else(|| RpcError::Protocol("no shard header".into()))?;
            if header.len > max {
                return Err(RpcError::Protocol(format!("shard of {} bytes", header.len)));
            }
            let mut buf = BytesMut::zeroed(header.len as usize);
            ch.raw_mut()
                .1
                .read_exact(&mut buf)
                .await
                .map_err(|e| RpcError::Stream(e.to_string()))?;
            Ok(buf.freeze())
        };
        let result = tokio::time::timeout(self.limits.request_timeout, exchange)
            .await
            .map_err(|_| RpcError::Timeout(self.limits.request_timeout))
            .and_then(|r| r);
        match result {
            Ok(bytes) => {
                self.note_rtt(node, started.elapsed());
                if ShardHash::of(&bytes) != id {
                    return Err(PeerError::Failed {
                        node,
                        reason: format!("shard {id} arrived damaged"),
                    });
                }
                Ok(bytes)
            }
            Err(RpcError::Remote(f)) if f.code == ErrorCode::NotFound => {
                Err(PeerError::NotFound { node, id })
            }
            Err(e) => Err(self.failed(node, e)),
        }
    }

    /// Opens the fetch of a shared asset on `node`: its length and the raw stream its bytes
    /// arrive on (the caller checks their hash).
    pub async fn asset_stream(
        &self,
        node: NodeId,
        addr: SocketAddr,
        hash: &str,
    ) -> Result<(u64, quinn::RecvStream), PeerError> {
        let conn = self.connection(node, addr).await?;
        let req = AssetRef {
            hash: hash.to_string(),
        };
        let exchange = async {
            let mut ch = rpc::open::<AssetGet>(&conn, &req, &self.limits).await?;
            ch.raw_mut().0.finish()?;
            let header: AssetHeader = ch
                .recv_item()
                .await?
                .ok_or_else(|| RpcError::Protocol("no asset header".into()))?;
            Ok((header.len, ch.into_raw().1))
        };
        match tokio::time::timeout(self.limits.request_timeout, exchange)
            .await
            .map_err(|_| RpcError::Timeout(self.limits.request_timeout))
            .and_then(|r| r)
        {
            Ok(v) => Ok(v),
            Err(RpcError::Remote(f)) if f.code == ErrorCode::NotFound => Err(PeerError::Failed {
                node,
                reason: format!("does not share asset {hash}"),
            }),
            Err(e) => Err(self.failed(node, e)),
        }
    }

    /// Deletes a shard on `node`.
    pub async fn delete(
        &self,
        node: NodeId,
        addr: SocketAddr,
        id: ShardHash,
    ) -> Result<bool, PeerError> {
        let conn = self.connection(node, addr).await?;
        rpc::call::<ShardDelete>(&conn, &ShardRef { id }, &self.limits)
            .await
            .map_err(|e| self.failed(node, e))
    }

    /// Asks `node` to verify its copy of a shard (false: missing or corrupt).
    pub async fn verify(
        &self,
        node: NodeId,
        addr: SocketAddr,
        id: ShardHash,
    ) -> Result<bool, PeerError> {
        let conn = self.connection(node, addr).await?;
        let mut limits = self.limits;
        limits.request_timeout = limits.request_timeout.min(Duration::from_secs(10));
        rpc::call::<ShardVerify>(&conn, &ShardRef { id }, &limits)
            .await
            .map_err(|e| self.failed(node, e))
    }
}
