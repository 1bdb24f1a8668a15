//! hyphae-core: what every Hyphae service stands on.
//!
//! A node is a set of services (beacon, coordinator, chunkstore, …) that share one identity, one
//! configuration file and one way of talking: mutual-TLS QUIC between nodes ([`transport`],
//! [`rpc`]) and HTTP over a Unix socket on the node ([`ipc`]). This crate holds those shared
//! pieces so that each service crate only contains its own logic.
//!
//! Map of the crate (see `docs/ARCHITECTURE.md` for the whole workspace):
//! - [`paths`]: where state, sockets and the config file live (`--state-dir` rewrites them all).
//! - [`config`]: `hyphae.toml`, every key optional, strict about unknown keys and bad values.
//! - [`identity`]: the node's Ed25519 key and the node id derived from it.
//! - [`pki`]: the mesh CA, node certificates, mesh secrets and the revocation list.
//! - [`transport`]: quinn endpoints whose TLS refuses anyone not certified by this mesh.
//! - [`rpc`]: the versioned, length-prefixed envelope and typed request/response on QUIC streams.
//! - [`ipc`]: the local HTTP/1.1 API on a Unix socket (`/status`, `/metrics`) and its client.
//! - [`metrics`], [`notify`], [`telemetry`]: Prometheus text, sd_notify, tracing/journald.
//! - [`agent`]: the node agent, the one service every node runs before any other exists.

pub mod agent;
pub mod config;
pub mod context;
pub mod early_answer_io;
pub mod identity;
pub mod ipc;
pub mod mesh_path;
pub mod metrics;
pub mod notify;
pub mod paths;
pub mod pki;
#[cfg(all(feature = "rocksdb-compat", system_rocksdb))]
pub mod rocksdb_compat;
pub mod rpc;
pub mod secret_file;
pub mod telemetry;
pub mod transport;

pub use config::Config;
pub use context::NodeContext;
pub use identity::{NodeId, NodeKey};
pub use paths::NodePaths;

/// The version of this build, reported by `hyphae version`, `/status` and the ping RPC.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
