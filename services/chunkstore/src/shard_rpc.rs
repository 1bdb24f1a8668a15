//! The chunkstore's node-to-node methods (ALPN `hyphae-chunkstore/1`): shard put, get, delete
//! and verify. Shard bytes travel raw on the call's QUIC stream after a small framed header,
//! so they are never copied through an RPC frame.

use hyphae_core::rpc::Method;
use serde::{Deserialize, Serialize};

use crate::ids::ShardHash;

/// Store a shard: the request, then `len` raw bytes; answered by one [`ShardAck`] item once
/// the shard is durable on the receiver.
#[derive(Debug, Clone, Copy)]
pub struct ShardPut;

/// Header of a shard put.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPutRequest {
    /// BLAKE3 of the bytes that follow; the receiver checks it before storing.
    pub id: ShardHash,
    /// Number of raw bytes that follow.
    pub len: u64,
}

/// The receiver's answer to a put.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardAck {
    /// True when the shard was already there (dedup).
    pub existed: bool,
}

impl Method for ShardPut {
    const NAME: &'static str = "chunkstore.shard_put";
    type Request = ShardPutRequest;
    type Response = ShardAck;
}

/// Fetch a shard: answered by one [`ShardHeader`] item then `len` raw bytes.
#[derive(Debug, Clone, Copy)]
pub struct ShardGet;

/// Which shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRef {
    /// Its id.
    pub id: ShardHash,
}

/// What precedes the raw bytes of a fetched shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHeader {
    /// Number of raw bytes that follow.
    pub len: u64,
}

impl Method for ShardGet {
    const NAME: &'static str = "chunkstore.shard_get";
    type Request = ShardRef;
    type Response = ShardHeader;
}

/// Delete a shard (garbage collection, moves); answers whether it was there.
#[derive(Debug, Clone, Copy)]
pub struct ShardDelete;

impl Method for ShardDelete {
    const NAME: &'static str = "chunkstore.shard_delete";
    type Request = ShardRef;
    type Response = bool;
}

/// Re-read and verify a shard on its holder (stat's `present`, scrub checks from afar).
#[derive(Debug, Clone, Copy)]
pub struct ShardVerify;

impl Method for ShardVerify {
    const NAME: &'static str = "chunkstore.shard_verify";
    type Request = ShardRef;
    type Response = bool;
}
