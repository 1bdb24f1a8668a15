//! Cannon's systolic mode: a GEMM on a √p×√p grid of workers that pass blocks of `A` west
//! and of `B` north between steps, instead of every tile fetching its inputs from the job's
//! node. Sans-IO: `grid` (indices, skew, cuts), `pulse` (one worker's state machine), `model`
//! (when Cannon pays). With the service: `local` (the whole pulse in one process), `methods`,
//! `wire`, `inboxes`, `origin`, `worker` (the QUIC edge) and `runner` (the job node's side).
//! See `docs/compute.md`, "Cannon's systolic mode".

pub mod grid;
#[cfg(feature = "service")]
pub mod inboxes;
#[cfg(feature = "service")]
pub mod local;
#[cfg(feature = "service")]
pub mod methods;
pub mod model;
#[cfg(feature = "service")]
pub mod origin;
pub mod pulse;
#[cfg(feature = "service")]
pub(crate) mod runner;
#[cfg(feature = "service")]
pub mod wire;
#[cfg(feature = "service")]
pub mod worker;

pub use grid::{Grid, Kind, Pos, Split};
pub use model::Mode;
pub use pulse::{Action, Phase, Pulse};
