//! `hyphae admit NODE`: admit a node that asked to join without a token.

use std::process::ExitCode;

use hyphae_core::paths::NodePaths;
use serde_json::json;

/// Options of `hyphae admit`.
#[derive(Debug, clap::Args)]
pub struct AdmitArgs {
    /// The pending node's id (see `hyphae nodes`).
    node: String,
}

/// Asks the queen (through the local coordinator) to sign the node's certificate.
pub fn run(paths: &NodePaths, args: &AdmitArgs) -> anyhow::Result<ExitCode> {
    super::coordinator::request(paths, "POST", "/admit", Some(json!({ "node": args.node })))?;
    println!("admitted {}", args.node);
    Ok(ExitCode::SUCCESS)
}
