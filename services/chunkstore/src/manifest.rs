//! Manifest v2: what the coordinator's `files` table holds for each file: file → chunks →
//! shard ids → nodes, with each chunk's wrapped key. Versioned: readers refuse a version they
//! do not know rather than misread it.

use hyphae_core::NodeId;
use serde::{Deserialize, Serialize};

use crate::ids::{ChunkId, ShardHash};
use crate::redundancy::Redundancy;

/// The manifest format this code writes.
pub const MANIFEST_VERSION: u32 = 2;

/// One shard of a chunk and the node that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlacement {
    /// Position in the Reed-Solomon layout (0..k data, k..k+m parity).
    pub index: u8,
    /// BLAKE3 of the shard's bytes (its id in the local stores).
    pub id: ShardHash,
    /// Where it lives.
    pub node: NodeId,
}

/// One stored chunk: its layout and where its shards are. Also the value of the `chunks`
/// table (with a reference count), which healing keeps up to date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLayout {
    /// The Reed-Solomon layout.
    pub redundancy: Redundancy,
    /// Ciphertext length (plaintext + GCM tag), before shard padding.
    pub ct_len: u64,
    /// Length of every shard.
    pub shard_len: u64,
    /// The k + m shards, in index order.
    pub shards: Vec<ShardPlacement>,
}

/// One chunk of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// BLAKE3 of the ciphertext.
    pub id: ChunkId,
    /// Offset of the chunk's plaintext in the file.
    pub offset: u64,
    /// Plaintext length.
    pub size: u64,
    /// The chunk key, wrapped under the mesh's wrap key (hex).
    pub wrapped_key: String,
    /// Layout and placement at the time of the write (the `chunks` table has the current one).
    pub layout: ChunkLayout,
}

/// A file's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (2).
    pub version: u32,
    /// The file's path in the mesh.
    pub path: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// When the write was committed.
    pub created_unix: u64,
    /// The chunk size used to cut the file.
    pub chunk_size: u64,
    /// SHA-256 is not computed; BLAKE3 of the whole plaintext, hex (end-to-end check).
    pub blake3: String,
    /// The chunks in file order.
    pub chunks: Vec<ChunkEntry>,
}

/// Why a stored manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("manifest does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    /// Written by a newer (or unknown) format.
    #[error("manifest version {0} is not supported (this build reads version {MANIFEST_VERSION})")]
    Version(u32),
    /// Chunks do not tile the file.
    #[error("manifest is inconsistent: {0}")]
    Inconsistent(String),
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

impl Manifest {
    /// Encodes for the coordinator.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes and checks a stored manifest.
    pub fn from_json(text: &str) -> Result<Manifest, ManifestError> {
        let v: VersionOnly = serde_json::from_str(text)?;
        if v.version != MANIFEST_VERSION {
            return Err(ManifestError::Version(v.version));
        }
        let m: Manifest = serde_json::from_str(text)?;
        m.check()?;
        Ok(m)
    }

    /// Chunks tile `[0, size)` in order and each layout has k + m shards.
    pub fn check(&self) -> Result<(), ManifestError> {
        let mut at = 0u64;
        for (i, c) in self.chunks.iter().enumerate() {
            if c.offset != at {
                return Err(ManifestError::Inconsistent(format!(
                    "chunk {i} starts at {} instead of {at}",
                    c.offset
                )));
            }
            if c.layout.shards.len() != c.layout.redundancy.total() {
                return Err(ManifestError::Inconsistent(format!(
                    "chunk {i} has {} shards for k+m={}",
                    c.layout.shards.len(),
                    c.layout.redundancy.total()
                )));
            }
            at += c.size;
        }
        if at != self.size {
            return Err(ManifestError::Inconsistent(format!(
                "chunks cover {at} bytes of {}",
                self.size
            )));
        }
        Ok(())
    }
}

/// A `chunks` table record: the current layout and how many file references it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Current layout and placement (healing rewrites it).
    pub layout: ChunkLayout,
    /// Number of (file, position) references; 0 means garbage after the grace period.
    pub refs: u64,
    /// When refs last dropped to 0 (for the GC grace period).
    #[serde(default)]
    pub orphaned_unix: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let node: NodeId = NodeId::default();
        Manifest {
            version: MANIFEST_VERSION,
            path: "a/b".into(),
            size: 5,
            created_unix: 1,
            chunk_size: 4,
            blake3: String::new(),
            chunks: (0..2)
                .map(|i| ChunkEntry {
                    id: ChunkId::of(&[i]),
                    offset: 4 * i as u64,
                    size: if i == 0 { 4 } else { 1 },
                    wrapped_key: "00".into(),
                    layout: ChunkLayout {
                        redundancy: Redundancy { k: 1, m: 1 },
                        ct_len: 20,
                        shard_len: 20,
                        shards: (0..2)
                            .map(|j| ShardPlacement {
                                index: j,
                                id: ShardHash::of(&[i, j]),
                                node,
                            })
                            .collect(),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn round_trip_and_version_check() {
        let m = sample();
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        let v3 = m.to_json().replace("\"version\":2", "\"version\":3");
        assert!(matches!(
            Manifest::from_json(&v3),
            Err(ManifestError::Version(3))
        ));
        let mut bad = m.clone();
        bad.size = 9;
        assert!(Manifest::from_json(&bad.to_json()).is_err());
        assert!(Manifest::from_json("{").is_err());
    }
}
