//! The node-to-node method that serves shared assets (on the chunkstore's ALPN): the caller
//! names a BLAKE3 hash, the holder answers an [`AssetHeader`] then the file's raw bytes; the
//! caller checks the hash of what arrives.

use hyphae_core::rpc::Method;
use serde::{Deserialize, Serialize};

/// Fetch a shared asset by hash.
#[derive(Debug, Clone, Copy)]
pub struct AssetGet;

/// Which asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRef {
    /// BLAKE3 of its bytes (64 lowercase hex digits).
    pub hash: String,
}

/// What precedes the raw bytes of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetHeader {
    /// Number of raw bytes that follow.
    pub len: u64,
}

impl Method for AssetGet {
    const NAME: &'static str = "chunkstore.asset_get";
    type Request = AssetRef;
    type Response = AssetHeader;
}
