//! `hyphae nodes`: the mesh directory with every node's role and status.

use std::process::ExitCode;

use hyphae_core::paths::NodePaths;

/// Options of `hyphae nodes`.
#[derive(Debug, clap::Args)]
pub struct NodesArgs {
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

/// Lists the directory as this node's coordinator has applied it.
pub fn run(paths: &NodePaths, args: &NodesArgs) -> anyhow::Result<ExitCode> {
    let value = super::coordinator::request(paths, "GET", "/nodes", None)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<18} {:<16} {:<8} {:<5} {:<9} {:<22} UPTIME",
        "NODE", "NAME", "ROLE", "VOTE", "STATUS", "ADDRESS"
    );
    for n in value["nodes"].as_array().into_iter().flatten() {
        let s = |k: &str| n[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<18} {:<16} {:<8} {:<5} {:<9} {:<22} {} s",
            s("id"),
            s("name"),
            s("role"),
            if n["voter"] == true { "yes" } else { "no" },
            s("status"),
            s("coordinator_addr"),
            n["uptime_s"]
        );
    }
    Ok(ExitCode::SUCCESS)
}
