//! Raft over the mesh transport: one cached mutual-TLS QUIC connection per peer, each Raft RPC
//! a unary call on its own stream. A failed call drops the cached connection, so the next one
//! reconnects.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyphae_core::rpc::{self, Limits, Method, RpcError};
use hyphae_core::transport::{MeshEndpoint, PeerConnection};
use hyphae_core::NodeId;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::methods::{RaftAppend, RaftSnapshot, RaftVote};
use crate::types::{RaftPeer, TypeConfig};

/// Why a call to a member failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The member could not be reached (address, handshake, timeout).
    #[error("cannot reach {node} at {addr}: {reason}")]
    Unreachable {
        node: NodeId,
        addr: String,
        reason: String,
    },
    /// The call failed once connected.
    #[error("call to {node} failed: {source}")]
    Call {
        node: NodeId,
        #[source]
        source: RpcError,
    },
}

/// The coordinator's connections to other members, shared by Raft and the member RPCs.
#[derive(Debug, Clone)]
pub struct Peers {
    endpoint: MeshEndpoint,
    limits: Limits,
    conns: Arc<Mutex<HashMap<NodeId, PeerConnection>>>,
}

impl Peers {
    /// Over the coordinator's endpoint (it dials as well as listens).
    pub fn new(endpoint: MeshEndpoint, limits: Limits) -> Peers {
        Peers {
            endpoint,
            limits,
            conns: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn cached(&self, node: NodeId) -> Option<PeerConnection> {
        let conns = self.conns.lock().ok()?;
        conns
            .get(&node)
            .filter(|c| c.conn.close_reason().is_none())
            .cloned()
    }

    /// Forgets the connection to `node` (after a failure, or when it is revoked).
    pub fn drop_connection(&self, node: NodeId) {
        if let Ok(mut conns) = self.conns.lock() {
            if let Some(c) = conns.remove(&node) {
                c.conn.close(quinn::VarInt::from_u32(0), b"dropped");
            }
        }
    }

    async fn connection(
        &self,
        node: NodeId,
        addr: &str,
        timeout: Duration,
    ) -> Result<PeerConnection, PeerError> {
        if let Some(c) = self.cached(node) {
            return Ok(c);
        }
        let unreachable = |reason: String| PeerError::Unreachable {
            node,
            addr: addr.to_string(),
            reason,
        };
        let sock: SocketAddr = addr
            .parse()
            .map_err(|e| unreachable(format!("bad address: {e}")))?;
        let conn = tokio::time::timeout(timeout, self.endpoint.connect(sock, Some(node)))
            .await
            .map_err(|_| unreachable(format!("no handshake within {timeout:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(node, conn.clone());
        }
        Ok(conn)
    }

    /// Calls `M` on member `node` at `addr`, within `timeout` (or the configured request
    /// timeout when `None`).
    pub async fn call<M: Method>(
        &self,
        node: NodeId,
        addr: &str,
        request: &M::Request,
        timeout: Option<Duration>,
    ) -> Result<M::Response, PeerError> {
        let mut limits = self.limits;
        if let Some(t) = timeout {
            limits.request_timeout = t;
        }
        let conn = self.connection(node, addr, limits.request_timeout).await?;
        match rpc::call::<M>(&conn, request, &limits).await {
            Ok(r) => Ok(r),
            Err(source) => {
                if !matches!(source, RpcError::Remote(_)) {
                    self.drop_connection(node);
                }
                Err(PeerError::Call { node, source })
            }
        }
    }
}

/// openraft's network factory over [`Peers`].
#[derive(Debug, Clone)]
pub struct Network {
    peers: Peers,
}

impl Network {
    /// A factory sharing `peers`.
    pub fn new(peers: Peers) -> Network {
        Network { peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &RaftPeer) -> PeerClient {
        PeerClient {
            peers: self.peers.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

/// The Raft client of one member.
#[derive(Debug)]
pub struct PeerClient {
    peers: Peers,
    target: NodeId,
    addr: String,
}

impl PeerClient {
    async fn send<M, T, E>(
        &self,
        request: &M::Request,
        option: &RPCOption,
    ) -> Result<T, RPCError<NodeId, RaftPeer, RaftError<NodeId, E>>>
    where
        M: Method<Response = Result<T, RaftError<NodeId, E>>>,
        E: std::error::Error,
    {
        match self
            .peers
            .call::<M>(self.target, &self.addr, request, Some(option.hard_ttl()))
            .await
        {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(e @ PeerError::Unreachable { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, RaftPeer, RaftError<NodeId>>> {
        self.send::<RaftAppend, _, _>(&rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, RaftPeer, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.send::<RaftSnapshot, _, _>(&rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, RaftPeer, RaftError<NodeId>>> {
        self.send::<RaftVote, _, _>(&rpc, &option).await
    }
}
