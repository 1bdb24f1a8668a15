//! Typed RPC methods, and the one every service answers: `core.ping`.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::identity::NodeId;

/// A named RPC with typed request and response. Implement it on a unit struct per method; the
/// name is the wire identity, so never reuse a name with different types (bump `/2` instead).
pub trait Method: Send + Sync + 'static {
    /// The method's wire name, `service.verb`.
    const NAME: &'static str;
    /// What the caller sends.
    type Request: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What a unary call returns (for streaming methods: the item type, by convention).
    type Response: Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// Liveness and identity check, answered by every RPC server.
#[derive(Debug, Clone, Copy)]
pub struct Ping;

/// The ping request: an opaque value echoed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingRequest {
    /// Echoed back in the pong, so a caller can match answers.
    pub nonce: u64,
}

/// The ping answer: who answered, and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The request's nonce.
    pub nonce: u64,
    /// The answering node.
    pub node: NodeId,
    /// The answering service's name.
    pub service: String,
    /// The answering node's software version.
    pub version: String,
}

impl Method for Ping {
    const NAME: &'static str = "core.ping";
    type Request = PingRequest;
    type Response = Pong;
}
