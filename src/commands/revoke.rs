//! `hyphae revoke NODE`: cut a node off the mesh (every node refuses it within seconds).

use std::process::ExitCode;

use hyphae_core::paths::NodePaths;
use serde_json::json;

/// Options of `hyphae revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The node's id.
    node: String,
    /// Why (kept in the revocation list).
    #[arg(long)]
    reason: Option<String>,
}

/// Commits the revocation.
pub fn run(paths: &NodePaths, args: &RevokeArgs) -> anyhow::Result<ExitCode> {
    let body = json!({ "node": args.node, "reason": args.reason });
    super::coordinator::request(paths, "POST", "/revoke", Some(body))?;
    println!("revoked {}", args.node);
    Ok(ExitCode::SUCCESS)
}
