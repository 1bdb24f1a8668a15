//! QMP, QEMU's JSON control protocol: the sans-IO message codec ([`wire`]) and the async
//! client over the Unix socket ([`client`]).

pub mod client;
pub mod wire;

pub use client::{QmpClient, QmpError};
pub use wire::{parse_message, QmpMessage, WireError};
