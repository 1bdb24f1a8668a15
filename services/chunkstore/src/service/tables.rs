//! The chunkstore's tables in the coordinator's key space, and the storage nodes as placement
//! sees them (the directory's status joined with what each chunkstore publishes).

use std::net::{IpAddr, SocketAddr};

use hyphae_core::NodeId;
use serde::{Deserialize, Serialize};

use crate::coordinator_client::{CoordError, CoordinatorClient};
use crate::placement::Candidate;

/// `files`: path → Manifest v2 (JSON).
pub const FILES: &str = "files";
/// `chunks`: chunk id → [`crate::manifest::ChunkRecord`] (current placement + refcount). It is
/// also the shard index: healing finds a dead node's shards by scanning it.
pub const CHUNKS: &str = "chunks";
/// `file_segments`: `<put id>/<index>` → [`crate::manifest_split::ManifestSegment`], the chunk
/// entries of a split manifest (its root is in `files`).
pub const FILE_SEGMENTS: &str = "file_segments";
/// `storage_nodes`: node id → [`StorageNodeRecord`], refreshed by each chunkstore.
pub const STORAGE_NODES: &str = "storage_nodes";

/// What a chunkstore publishes about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageNodeRecord {
    /// Its chunkstore UDP port.
    pub port: u16,
    /// Bytes the store may use in all.
    pub capacity_bytes: u64,
    /// Bytes still free for shards.
    pub free_bytes: u64,
    /// `[storage] share`.
    pub share: f64,
    /// `[storage] domain`.
    pub domain: Option<String>,
    /// When this was published (unix seconds).
    pub updated_unix: u64,
}

/// One storage node, joined from the directory and `storage_nodes`.
#[derive(Debug, Clone)]
pub struct StorageNode {
    /// Its id.
    pub node: NodeId,
    /// Its chunkstore endpoint, when known.
    pub addr: Option<SocketAddr>,
    /// `up`, `suspect`, `down`, ...
    pub status: String,
    /// What it published.
    pub record: StorageNodeRecord,
}

impl StorageNode {
    /// Whether it is up.
    pub fn is_up(&self) -> bool {
        self.status == "up"
    }
}

/// The storage nodes of the mesh at one moment.
#[derive(Debug, Clone, Default)]
pub struct MeshView {
    /// Every node that published a storage record and is in the directory.
    pub nodes: Vec<StorageNode>,
}

impl MeshView {
    /// Reads the directory and `storage_nodes`.
    pub async fn load(coord: &CoordinatorClient) -> Result<MeshView, CoordError> {
        let directory = coord.nodes().await?;
        let records = coord.scan(STORAGE_NODES, "").await?;
        let mut nodes = Vec::new();
        for entry in records {
            let Ok(node) = entry.key.parse::<NodeId>() else {
                continue;
            };
            let Ok(record) = serde_json::from_str::<StorageNodeRecord>(&entry.value) else {
                continue;
            };
            let Some(d) = directory.iter().find(|d| d.id == node) else {
                continue;
            };
            let addr = d
                .addresses
                .iter()
                .find_map(|a| a.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, record.port));
            nodes.push(StorageNode {
                node,
                addr,
                status: d.status.clone(),
                record,
            });
        }
        nodes.sort_by_key(|n| n.node);
        Ok(MeshView { nodes })
    }

    /// A node by id.
    pub fn get(&self, node: &NodeId) -> Option<&StorageNode> {
        self.nodes.iter().find(|n| n.node == *node)
    }

    /// Whether `node` is up.
    pub fn is_up(&self, node: &NodeId) -> bool {
        self.get(node).map(|n| n.is_up()).unwrap_or(false)
    }

    /// Nodes that can take new shards, as placement candidates (only those up get weight).
    pub fn candidates(&self) -> Vec<Candidate> {
        self.nodes
            .iter()
            .filter(|n| n.addr.is_some())
            .map(|n| Candidate {
                node: n.node,
                free_bytes: n.record.free_bytes,
                share: n.record.share,
                health: match n.status.as_str() {
                    "up" => 1.0,
                    _ => 0.0,
                },
                domain: n.record.domain.clone(),
            })
            .collect()
    }

    /// Whether some node is suspect (missed heartbeats, not yet declared down).
    pub fn has_suspects(&self) -> bool {
        self.nodes.iter().any(|n| n.status == "suspect")
    }

    /// Number of nodes that can take shards now (up, with room and a share).
    pub fn usable(&self) -> usize {
        self.candidates()
            .iter()
            .filter(|c| c.health > 0.0 && c.share > 0.0 && c.free_bytes > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u8, status: &str) -> StorageNode {
        StorageNode {
            node: NodeId::from_public_key(&[i]),
            addr: Some(SocketAddr::from(([10, 0, 0, i], 7000))),
            status: status.into(),
            record: StorageNodeRecord {
                port: 7000,
                capacity_bytes: 1 << 30,
                free_bytes: 1 << 30,
                share: 1.0,
                domain: None,
                updated_unix: 0,
            },
        }
    }

    #[test]
    fn only_up_nodes_take_shards_and_suspects_are_noticed() {
        let view = MeshView {
            nodes: vec![node(1, "up"), node(2, "suspect"), node(3, "down")],
        };
        assert_eq!(view.usable(), 1);
        assert!(view.has_suspects());
        let weights: Vec<f64> = view.candidates().iter().map(|c| c.health).collect();
        assert_eq!(weights, [1.0, 0.0, 0.0]);
        let calm = MeshView {
            nodes: vec![node(1, "up"), node(3, "down")],
        };
        assert!(!calm.has_suspects());
    }
}
