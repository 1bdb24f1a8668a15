//! Helpers shared by the cluster tests: the harness's coordinator helpers, under the short
//! `support::` path the tests use, and HTTPS/HTTP/3 clients for the gateway's tests.

#![allow(unused_imports, dead_code)]

pub mod compute;
pub mod https;
pub mod memrep;

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

/// The mesh's web CA as a user exports it (`hyphae ca export`), once the node can see it: a
/// new mesh's queen publishes it to the key space a moment after founding, and a node that
/// joined just now may not have it replicated yet.
pub fn export_web_ca(node: &hyphae_harness::Node) -> anyhow::Result<String> {
    hyphae_harness::wait_for(
        std::time::Duration::from_secs(60),
        "the web CA to be exportable",
        || {
            let out = node.cli(&["ca", "export"])?;
            Ok(out.success().then(|| out.stdout_trimmed().to_string()))
        },
    )
}
