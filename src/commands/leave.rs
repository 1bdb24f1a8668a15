//! `hyphae leave`: this node leaves the mesh cleanly (the queen removes it from Raft).

use std::process::ExitCode;

use hyphae_core::paths::NodePaths;

/// Commits this node's departure.
pub fn run(paths: &NodePaths) -> anyhow::Result<ExitCode> {
    let value = super::coordinator::request(paths, "POST", "/leave", None)?;
    println!(
        "left the mesh (node {})",
        value["left"].as_str().unwrap_or("-")
    );
    Ok(ExitCode::SUCCESS)
}
