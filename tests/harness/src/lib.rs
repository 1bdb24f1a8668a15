//! Cluster test harness for Hyphae.
//!
//! A [`Cluster`] runs N `hyphae node` processes, each in its own Linux
//! network namespace joined to a private bridge (`10.213.<slot>.0/24`) that
//! the test process can also reach, with per-node state dirs, readiness
//! checks over the node's Unix socket, and fault injection (kill -9,
//! SIGSTOP/SIGCONT, restart, link down/up, bandwidth limits). Everything is
//! torn down on drop, also when the test panics; then node logs are printed
//! and state dirs kept. Needs root and iproute2; see `README.md`.
//!
//! ```no_run
//! use std::time::Duration;
//! use hyphae_harness::Cluster;
//!
//! # fn main() -> anyhow::Result<()> {
//! let c = Cluster::builder().nodes(2).binary("/path/to/hyphae").start()?;
//! c[1].link_down()?;
//! assert!(!c[0].can_ping(c[1].ip())?);
//! c[1].link_up()?;
//! c[1].kill()?;
//! c[1].restart()?;
//! c[1].wait_ready(Duration::from_secs(10))?;
//! # Ok(())
//! # }
//! ```

mod cluster;
mod cmd;
pub mod coordinator;
mod faults;
mod http_uds;
pub mod linearizability;
mod mesh;
mod net;
mod node;
mod slot;
mod wait;

pub use cluster::{Cluster, ClusterBuilder, KEEP_STATE_ENV, MAX_NODES, PANIC_LOG_LINES};
pub use cmd::{exec_in_netns, ip, output, output_timeout, run, tc, CmdOutput};
pub use faults::Tbf;
pub use http_uds::{uds_get, uds_get_timeout, uds_put_json, HttpResponse, DEFAULT_TIMEOUT};
pub use mesh::{enrol_offline, init_mesh};
pub use net::SUBNET_OCTET;
pub use node::{Node, CLI_TIMEOUT, DEFAULT_PORT};
pub use slot::{MAX_SLOT, RUN_DIR};
pub use wait::{wait_for, wait_until, POLL_INTERVAL};
