//! Helpers shared by the cluster tests: the harness's coordinator helpers, under the short
//! `support::` path the tests use, and HTTPS/HTTP/3 clients for the gateway's tests.

#![allow(unused_imports, dead_code)]

pub mod https;

pub use hyphae_harness::coordinator::*;

/// Deterministic pseudo-random bytes (xorshift), distinct per seed: test files whose every
/// byte matters, without storing them.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
