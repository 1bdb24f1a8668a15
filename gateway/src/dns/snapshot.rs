//! The facts names are answered from: nodes (with addresses and status), which services each
//! node runs, and the user names. Read from the local coordinator and cached briefly.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{NAMES_TABLE, SERVICES_TABLE};
use crate::error::ApiError;
use crate::local::LocalServices;

/// One node as names see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// Node id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Whether it is up (the only nodes names point at).
    pub up: bool,
}

/// A service a node runs, as its gateway registers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// Service name (`coordinator`, `chunkstore`, `gateway`, …).
    pub name: String,
    /// Its port (UDP for QUIC services, TCP+UDP for the gateway).
    pub port: u16,
}

/// Everything resolution needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshSnapshot {
    /// Nodes by id.
    pub nodes: Vec<NodeEntry>,
    /// Node id → the healthy services it runs.
    pub services: BTreeMap<String, Vec<ServiceEntry>>,
    /// User name → target.
    pub names: BTreeMap<String, String>,
}

impl MeshSnapshot {
    /// Reads the snapshot from the local coordinator.
    pub async fn load(local: &LocalServices) -> Result<MeshSnapshot, ApiError> {
        let nodes = local.get("coordinator", "/nodes").await?;
        let nodes = nodes["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| NodeEntry {
                id: n["id"].as_str().unwrap_or_default().to_ascii_lowercase(),
                name: n["name"].as_str().unwrap_or_default().to_ascii_lowercase(),
                addresses: n["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str()?.parse().ok())
                    .collect(),
                up: n["status"] == "up",
            })
            .collect();
        let services = local
            .kv_list(SERVICES_TABLE)
            .await?
            .into_iter()
            .filter_map(|(node, v)| Some((node, serde_json::from_str(&v.value).ok()?)))
            .collect();
        let names = local
            .kv_list(NAMES_TABLE)
            .await?
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect();
        Ok(MeshSnapshot {
            nodes,
            services,
            names,
        })
    }
}
