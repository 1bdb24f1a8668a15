//! Split manifests: a file whose chunk list does not fit one coordinator value.
//!
//! The coordinator's local API takes request bodies of up to 2 MiB, and a chunk entry costs
//! about 1.2 KiB at 4+2, so one Manifest v2 holds about 1,500 chunks (≈ 6 GiB with 4 MiB
//! chunks). A larger file gets a **root** in `files/<path>` (version 3: the file's figures and
//! a list of segment references) and its chunk entries in **segments**, each its own value in
//! the `file_segments` table under `<put id>/<index>` (a random id per put, so that replacing a
//! file never overwrites the segments the old version's readers still use). Segments are
//! written before the root is committed, so a committed root always points at complete
//! segments. This module is pure: cutting entries into segments, the JSON forms, and joining
//! the segments back into a [`Manifest`] with every check a v2 manifest gets.

use serde::{Deserialize, Serialize};

use crate::manifest::{ChunkEntry, Manifest, ManifestError, MANIFEST_VERSION};

/// The version of a split manifest's root.
pub const SPLIT_MANIFEST_VERSION: u32 = 3;
/// The version of a manifest segment.
pub const SEGMENT_VERSION: u32 = 1;

/// Where one segment is and what it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    /// Its key in the `file_segments` table.
    pub key: String,
    /// Offset of its first chunk in the file.
    pub offset: u64,
    /// Plaintext bytes its chunks cover.
    pub size: u64,
    /// Number of chunk entries in it.
    pub chunks: u64,
}

/// The value of `files/<path>` for a split manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRoot {
    /// Format version (3).
    pub version: u32,
    /// The file's path in the mesh.
    pub path: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// When the write was committed.
    pub created_unix: u64,
    /// The chunk size used to cut the file.
    pub chunk_size: u64,
    /// BLAKE3 of the whole plaintext, hex.
    pub blake3: String,
    /// Total chunk entries over all segments.
    pub chunk_count: u64,
    /// The segments in file order.
    pub segments: Vec<SegmentRef>,
}

/// The value of one `file_segments` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSegment {
    /// Format version (1).
    pub version: u32,
    /// The file it belongs to (checked when joining).
    pub path: String,
    /// Its position among the file's segments.
    pub index: u32,
    /// Its chunk entries, in file order.
    pub chunks: Vec<ChunkEntry>,
}

/// What `files/<path>` holds: a whole manifest, or the root of a split one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredManifest {
    /// Manifest v2, every chunk inline.
    Inline(Manifest),
    /// A split manifest's root; its segments are in `file_segments`.
    Split(ManifestRoot),
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

impl StoredManifest {
    /// Decodes a `files` value of either form (a v2 manifest is fully checked here).
    pub fn from_json(text: &str) -> Result<StoredManifest, ManifestError> {
        let v: VersionOnly = serde_json::from_str(text)?;
        match v.version {
            MANIFEST_VERSION => Ok(StoredManifest::Inline(Manifest::from_json(text)?)),
            SPLIT_MANIFEST_VERSION => {
                let root: ManifestRoot = serde_json::from_str(text)?;
                root.check()?;
                Ok(StoredManifest::Split(root))
            }
            other => Err(ManifestError::Version(other)),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &str {
        match self {
            StoredManifest::Inline(m) => &m.path,
            StoredManifest::Split(r) => &r.path,
        }
    }

    /// The segment keys to read (none for an inline manifest).
    pub fn segment_keys(&self) -> Vec<String> {
        match self {
            StoredManifest::Inline(_) => Vec::new(),
            StoredManifest::Split(r) => r.segments.iter().map(|s| s.key.clone()).collect(),
        }
    }
}

impl ManifestRoot {
    /// Encodes for the coordinator.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Segments tile `[0, size)` in order and their counts add up.
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.version != SPLIT_MANIFEST_VERSION {
            return Err(ManifestError::Version(self.version));
        }
        let mut at = 0u64;
        let mut chunks = 0u64;
        for (i, s) in self.segments.iter().enumerate() {
            if s.offset != at {
                return Err(ManifestError::Inconsistent(format!(
                    "segment {i} starts at {} instead of {at}",
                    s.offset
                )));
            }
            at = at.saturating_add(s.size);
            chunks = chunks.saturating_add(s.chunks);
        }
        if at != self.size || chunks != self.chunk_count {
            return Err(ManifestError::Inconsistent(format!(
                "segments cover {at} bytes in {chunks} chunks of {} bytes in {}",
                self.size, self.chunk_count
            )));
        }
        Ok(())
    }

    /// Joins the segments (in order, as read from `file_segments`) into the whole manifest,
    /// checking that each is the one the root names and that the result tiles the file.
    pub fn join(&self, segments: Vec<ManifestSegment>) -> Result<Manifest, ManifestError> {
        if segments.len() != self.segments.len() {
            return Err(ManifestError::Inconsistent(format!(
                "{} segments for a root naming {}",
                segments.len(),
                self.segments.len()
            )));
        }
        let mut chunks = Vec::with_capacity(usize::try_from(self.chunk_count).unwrap_or(0));
        for (i, (seg, r)) in segments.into_iter().zip(&self.segments).enumerate() {
            if seg.version != SEGMENT_VERSION {
                return Err(ManifestError::Version(seg.version));
            }
            if seg.path != self.path || seg.index as usize != i {
                return Err(ManifestError::Inconsistent(format!(
                    "segment {} names {}#{} instead of {}#{i}",
                    r.key, seg.path, seg.index, self.path
                )));
            }
            if seg.chunks.len() as u64 != r.chunks
                || seg.chunks.first().map(|c| c.offset).unwrap_or(r.offset) != r.offset
            {
                return Err(ManifestError::Inconsistent(format!(
                    "segment {} does not hold what the root says",
                    r.key
                )));
            }
            chunks.extend(seg.chunks);
        }
        let m = Manifest {
            version: MANIFEST_VERSION,
            path: self.path.clone(),
            size: self.size,
            created_unix: self.created_unix,
            chunk_size: self.chunk_size,
            blake3: self.blake3.clone(),
            chunks,
        };
        m.check()?;
        Ok(m)
    }
}

impl ManifestSegment {
    /// Encodes for the coordinator.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes a stored segment (checked against its root by [`ManifestRoot::join`]).
    pub fn from_json(text: &str) -> Result<ManifestSegment, ManifestError> {
        Ok(serde_json::from_str(text)?)
    }
}

/// What an entry costs in a coordinator request: its JSON, escaped inside the request's JSON
/// string (every `"` and `\` doubles), plus the separating comma.
pub fn entry_cost(entry: &ChunkEntry) -> usize {
    serde_json::to_string(entry)
        .map(|s| s.len() + s.bytes().filter(|b| *b == b'"' || *b == b'\\').count() + 1)
        .unwrap_or(usize::MAX / 2)
}

/// Bytes a manifest (or segment) costs besides its entries: the path (escaped, up to 255
/// bytes, possibly twice as long) and the fixed fields.
pub const MANIFEST_OVERHEAD: usize = 1024;

/// Whether `manifest` must be split to keep every value under `max_value_bytes`.
pub fn needs_split(manifest: &Manifest, max_value_bytes: usize) -> bool {
    manifest
        .chunks
        .iter()
        .map(entry_cost)
        .fold(MANIFEST_OVERHEAD, usize::saturating_add)
        > max_value_bytes
}

/// Cuts `manifest` into a root and segments of at most `max_value_bytes` each (a segment
/// holds at least one entry), keyed `<put_id>/<index>`.
pub fn split(
    manifest: &Manifest,
    put_id: &str,
    max_value_bytes: usize,
) -> (ManifestRoot, Vec<ManifestSegment>) {
    let mut segments: Vec<ManifestSegment> = Vec::new();
    let mut refs: Vec<SegmentRef> = Vec::new();
    let mut cost = usize::MAX;
    for entry in &manifest.chunks {
        let c = entry_cost(entry);
        if cost.saturating_add(c) > max_value_bytes {
            let index = segments.len() as u32;
            segments.push(ManifestSegment {
                version: SEGMENT_VERSION,
                path: manifest.path.clone(),
                index,
                chunks: Vec::new(),
            });
            refs.push(SegmentRef {
                key: format!("{put_id}/{index:06}"),
                offset: entry.offset,
                size: 0,
                chunks: 0,
            });
            cost = MANIFEST_OVERHEAD;
        }
        cost = cost.saturating_add(c);
        if let (Some(seg), Some(r)) = (segments.last_mut(), refs.last_mut()) {
            seg.chunks.push(entry.clone());
            r.size += entry.size;
            r.chunks += 1;
        }
    }
    let root = ManifestRoot {
        version: SPLIT_MANIFEST_VERSION,
        path: manifest.path.clone(),
        size: manifest.size,
        created_unix: manifest.created_unix,
        chunk_size: manifest.chunk_size,
        blake3: manifest.blake3.clone(),
        chunk_count: manifest.chunks.len() as u64,
        segments: refs,
    };
    (root, segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ChunkId, ShardHash};
    use crate::manifest::{ChunkLayout, ShardPlacement};
    use crate::redundancy::Redundancy;
    use hyphae_core::NodeId;
    use proptest::prelude::*;

    fn manifest(chunks: usize, chunk_size: u64, last: u64) -> Manifest {
        let node = NodeId::default();
        let entries: Vec<ChunkEntry> = (0..chunks)
            .map(|i| ChunkEntry {
                id: ChunkId::of(&(i as u64).to_le_bytes()),
                offset: chunk_size * i as u64,
                size: if i + 1 == chunks { last } else { chunk_size },
                wrapped_key: "ab".repeat(60),
                layout: ChunkLayout {
                    redundancy: Redundancy { k: 4, m: 2 },
                    ct_len: chunk_size + 16,
                    shard_len: chunk_size / 4 + 4,
                    shards: (0..6)
                        .map(|j| ShardPlacement {
                            index: j,
                            id: ShardHash::of(&[i as u8, j]),
                            node,
                        })
                        .collect(),
                },
            })
            .collect();
        let size = entries.iter().map(|c| c.size).sum();
        Manifest {
            version: MANIFEST_VERSION,
            path: "big/\"file\".bin".into(),
            size,
            created_unix: 7,
            chunk_size,
            blake3: "00".repeat(32),
            chunks: entries,
        }
    }

    proptest! {
        /// Splitting then joining gives the manifest back; every value stays under the limit.
        #[test]
        fn split_then_join_is_identity(chunks in 1usize..300, max in 4096usize..40_000) {
            let m = manifest(chunks, 65536, 1000);
            let (root, segments) = split(&m, "put1", max);
            prop_assert_eq!(root.chunk_count as usize, chunks);
            for s in &segments {
                let cost = s.chunks.iter().map(entry_cost).sum::<usize>() + MANIFEST_OVERHEAD;
                prop_assert!(s.chunks.len() == 1 || cost <= max, "segment of {cost} bytes");
            }
            let stored = StoredManifest::from_json(&root.to_json()).unwrap();
            let StoredManifest::Split(root) = stored else { panic!("not split") };
            let back: Vec<ManifestSegment> = segments
                .iter()
                .map(|s| ManifestSegment::from_json(&s.to_json()).unwrap())
                .collect();
            prop_assert_eq!(root.join(back).unwrap(), m);
        }
    }

    #[test]
    fn a_large_file_needs_a_split_and_a_small_one_does_not() {
        // 2,000 chunks at 4+2: about 2.4 MB of entries, over the coordinator's 2 MiB.
        assert!(needs_split(&manifest(2000, 4 << 20, 5), 2 << 20));
        assert!(!needs_split(&manifest(100, 4 << 20, 5), 2 << 20));
        let m = manifest(2000, 4 << 20, 5);
        let (root, segments) = split(&m, "p", (2 << 20) - (64 << 10));
        assert!(segments.len() >= 2);
        assert!(root.to_json().len() < 4096);
        let keys = StoredManifest::Split(root).segment_keys();
        assert_eq!(keys[0], "p/000000");
    }

    #[test]
    fn a_join_refuses_wrong_or_missing_segments() {
        let m = manifest(50, 65536, 1);
        let (root, segments) = split(&m, "p", 8192);
        assert!(segments.len() > 2);
        let mut missing = segments.clone();
        missing.pop();
        assert!(root.join(missing).is_err());
        let mut swapped = segments.clone();
        swapped.swap(0, 1);
        assert!(root.join(swapped).is_err());
        let mut other = segments.clone();
        other[1].path = "elsewhere".into();
        assert!(root.join(other).is_err());
        let mut bad = root.clone();
        bad.size += 1;
        assert!(StoredManifest::from_json(&bad.to_json()).is_err());
        assert!(matches!(
            StoredManifest::from_json("{\"version\":9}"),
            Err(ManifestError::Version(9))
        ));
        assert!(root.join(segments).is_ok());
    }
}
