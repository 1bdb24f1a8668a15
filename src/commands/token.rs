//! `hyphae token create`: a join token that admits nodes at once.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use hyphae_core::paths::NodePaths;
use serde_json::json;

/// `hyphae token …`
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a join token and print it (give it to new nodes as `[mesh] join_token`).
    Create(CreateArgs),
}

/// Options of `hyphae token create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// How long the token works.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// How many nodes it may admit.
    #[arg(long, default_value_t = 1)]
    uses: u32,
}

/// Runs a `token` subcommand.
pub fn run(paths: &NodePaths, cmd: &TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Create(args) => {
            let body = json!({
                "ttl": humantime::format_duration(args.ttl).to_string(),
                "uses": args.uses,
            });
            let value = super::coordinator::request(paths, "POST", "/tokens", Some(body))?;
            let token = value["token"].as_str().context("no token in the answer")?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
