//! Shared helpers of the local shard store's integration tests: deterministic ids and data,
//! test options, and a temporary directory wrapper.

#![allow(dead_code)]

use bytes::Bytes;
use hyphae_chunkstore::local::{ShardId, StoreError, StoreOptions};

/// The id of test shard `n`.
pub fn id(n: u64) -> ShardId {
    ShardId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// Deterministic bytes for shard `n` (distinct per n and length).
pub fn data(n: u64, len: usize) -> Bytes {
    let mut h = blake3::Hasher::new();
    h.update(&n.to_le_bytes());
    h.update(&(len as u64).to_le_bytes());
    let mut out = vec![0u8; len];
    h.finalize_xof().fill(&mut out);
    Bytes::from(out)
}

/// The length of shard `n` in tests where the length follows from the id.
pub fn len_of(n: u64, max: usize) -> usize {
    let h = blake3::hash(&n.to_be_bytes());
    let v = u64::from_le_bytes(h.as_bytes()[0..8].try_into().unwrap_or_default());
    (v % max as u64) as usize
}

/// Small segments (so that rollover and compaction happen), no reserve.
pub fn options(force_pread: bool, segment_bytes: u64) -> StoreOptions {
    StoreOptions {
        force_pread,
        segment_bytes,
        reserve_bytes: Some(0),
        ..StoreOptions::default()
    }
}

/// A temporary directory, as a `StoreError` on failure.
pub fn tempdir() -> Result<tempfile::TempDir, StoreError> {
    tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))
}

/// Any error as a `StoreError` (for `?` in tests).
pub fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::io("test", std::io::Error::other(e.to_string()))
}

/// Where the live record of `id` is on disk: (segment path, header offset, data length),
/// found by walking the segment files (the last record of `id` wins, as in recovery).
pub fn find_record(
    store_dir: &std::path::Path,
    id: &ShardId,
) -> Option<(std::path::PathBuf, u64, u64)> {
    use hyphae_chunkstore::local::record::{RecordHeader, HEADER_LEN};
    let mut paths: Vec<_> = std::fs::read_dir(store_dir.join("segments"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    paths.sort();
    let mut found = None;
    let mut best_seq = 0;
    for p in paths {
        let bytes = std::fs::read(&p).ok()?;
        let mut pos = 0usize;
        while pos + HEADER_LEN <= bytes.len() {
            let Ok(h) = RecordHeader::decode(&bytes[pos..]) else {
                break;
            };
            if h.id == *id && h.seq >= best_seq {
                best_seq = h.seq;
                found = Some((p.clone(), pos as u64, h.len));
            }
            pos += HEADER_LEN + h.len as usize;
        }
    }
    found
}

/// XORs `mask` into the byte at `offset` of `path`.
pub fn flip(path: &std::path::Path, offset: u64, mask: u8) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset)?;
    b[0] ^= mask;
    f.write_all_at(&b, offset)?;
    f.sync_all()
}
