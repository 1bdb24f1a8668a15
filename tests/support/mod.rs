//! Helpers shared by the cluster tests: the harness's coordinator helpers, under the short
//! `support::` path the tests use.

#![allow(unused_imports)]

pub use hyphae_harness::coordinator::*;
