//! Fuzzes what the chunkstore parses from outside: HTTP `Range` headers and file paths (local
//! API, proxied from the gateway), manifests (whole, split roots and segments) read back from the coordinator, and the shard
//! RPC request bodies, shared-asset queries and table entries. Each must parse or fail cleanly,
//! never panic; what parses must be sane.
#![no_main]

use hyphae_chunkstore::asset_rpc::AssetRef;
use hyphae_chunkstore::assets::{split_key, AssetQuery};
use hyphae_chunkstore::manifest::Manifest;
use hyphae_chunkstore::manifest_split::{ManifestSegment, StoredManifest};
use hyphae_chunkstore::service::errors::normalize_path;
use hyphae_chunkstore::service::files_api::parse_range;
use hyphae_chunkstore::shard_rpc::{ShardPutRequest, ShardRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let size = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    let rest = &data[8..];
    if let Ok(text) = std::str::from_utf8(rest) {
        if let Ok((start, end)) = parse_range(text, size) {
            assert!(start < end && end <= size);
        }
        if let Ok(p) = normalize_path(text) {
            assert!(!p.is_empty() && p.len() <= 255 && !p.contains("//"));
        }
        if let Ok(m) = Manifest::from_json(text) {
            assert!(m.check().is_ok());
        }
        if let Ok(StoredManifest::Split(root)) = StoredManifest::from_json(text) {
            assert!(root.check().is_ok());
            if let Ok(seg) = ManifestSegment::from_json(text) {
                let _ = root.join(vec![seg]);
            }
        }
        let (a, b) = if text.is_char_boundary(text.len() / 2) {
            text.split_at(text.len() / 2)
        } else {
            (text, "")
        };
        if let Ok(AssetQuery::Hash(h)) = AssetQuery::from_params(None, Some(a)) {
            assert_eq!(h.len(), 64);
        }
        if let Ok(q) = AssetQuery::from_params(Some(a), Some(b)) {
            let _ = q.prefix();
        }
        if let Some((hash, node)) = split_key(text) {
            assert!(hash.len() == 64 && !node.is_empty());
        }
    }
    let _ = postcard::from_bytes::<ShardPutRequest>(rest);
    let _ = postcard::from_bytes::<ShardRef>(rest);
    let _ = postcard::from_bytes::<AssetRef>(rest);
});
