//! `hyphae name set|ls|rm`: user names of the mesh namespace (`NAME.hyphae.internal`), held in
//! the coordinator's key space and answered by every gateway's DNS server.

use std::process::ExitCode;

use anyhow::Context;
use hyphae_core::paths::NodePaths;
use hyphae_gateway::dns::name::check_user_name;
use hyphae_gateway::dns::resolve::check_target;
use hyphae_gateway::dns::NAMES_TABLE;
use serde_json::json;

/// `hyphae name …`
#[derive(Debug, clap::Subcommand)]
pub enum NameCommand {
    /// Point NAME.hyphae.internal at an IP address or at another mesh name (`n1.nodes`,
    /// `chunkstore.services`, another user name).
    Set {
        /// One DNS label (a-z, 0-9, -).
        name: String,
        /// An IP address or a mesh name.
        target: String,
    },
    /// List the names.
    Ls,
    /// Remove a name.
    Rm {
        /// The name.
        name: String,
    },
}

/// Runs a `name` subcommand.
pub fn run(paths: &NodePaths, cmd: &NameCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NameCommand::Set { name, target } => {
            let name = check_user_name(name).with_context(|| format!("name {name:?}"))?;
            check_target(target).with_context(|| format!("target {target:?}"))?;
            super::coordinator::request(
                paths,
                "PUT",
                &format!("/kv/{NAMES_TABLE}/{name}"),
                Some(json!({ "value": target })),
            )?;
        }
        NameCommand::Ls => {
            let v = super::coordinator::request(paths, "GET", &format!("/kv/{NAMES_TABLE}"), None)?;
            for e in v["entries"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}",
                    e["key"].as_str().unwrap_or_default(),
                    e["value"].as_str().unwrap_or_default()
                );
            }
        }
        NameCommand::Rm { name } => {
            let name = check_user_name(name).with_context(|| format!("name {name:?}"))?;
            super::coordinator::request(
                paths,
                "DELETE",
                &format!("/kv/{NAMES_TABLE}/{name}"),
                None,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
