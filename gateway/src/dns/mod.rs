//! Mesh names: the `hyphae.internal.` zone, answered over DNS (hickory-server) and by
//! `GET /api/v1/resolve/NAME`, both from [`resolve::resolve`] on a [`snapshot::MeshSnapshot`].

pub mod name;
pub mod resolve;
pub mod server;
pub mod snapshot;

/// The zone, without the trailing dot.
pub const ZONE: &str = "hyphae.internal";
/// The key-space table of user names: name → target (an IP address or another mesh name).
pub const NAMES_TABLE: &str = "names";
/// The key-space table of each node's running services: node id → `[{"name","port"}]`.
pub const SERVICES_TABLE: &str = "node_services";
