//! Helpers shared by the cluster tests: the harness's coordinator helpers, under the short
//! `support::` path the tests use, and HTTPS/HTTP/3 clients for the gateway's tests.

#![allow(unused_imports)]

pub mod https;

pub use hyphae_harness::coordinator::*;
