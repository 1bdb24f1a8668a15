//! Epochs: what one checkpoint carries ([`wire`]), how a backup assembles and checks it before
//! it may touch its replica ([`assembler`]), and when the primary takes the next one and how
//! hard it throttles the guest ([`scheduler`]). All sans-IO.

pub mod assembler;
pub mod scheduler;
pub mod wire;
