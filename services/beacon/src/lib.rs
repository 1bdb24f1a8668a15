//! Hyphae's discovery service: how a node finds its mesh on a LAN without being told where.
//!
//! The chain, strictly in order: (1) the UDP beacon on `[ports] beacon` (IPv4 broadcast on
//! every up interface, IPv6 link-local multicast ff02::1), (2) mDNS, (3) the candidate
//! addresses of the config or kernel command line. The first step that yields a member of this
//! node's mesh wins, and the beacon keeps listening. The coordinator of a node that is not a
//! member yet asks `GET /peers` on `beacon.sock` for admission endpoints (and, with
//! `auto_init`, whether to found a mesh). See `docs/discovery.md`.

#[cfg(feature = "service")]
pub mod candidates;
pub mod chain;
#[cfg(feature = "service")]
pub mod dashboard_mdns;
pub mod discovery;
pub mod epoch;
#[cfg(feature = "service")]
pub mod hardware;
pub mod interfaces;
#[cfg(feature = "service")]
pub mod mdns;
pub mod metrics;
pub mod packet;
pub mod replay;
#[cfg(feature = "service")]
mod service;
pub mod sockets;
pub mod spike;
#[cfg(feature = "service")]
pub mod vulkan;

#[cfg(feature = "service")]
pub use service::{run, BeaconError};
