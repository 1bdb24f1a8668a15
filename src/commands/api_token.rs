//! `hyphae api-token create|ls|rm`: API tokens for scripts (`Authorization: Bearer …`), stored
//! hashed in the coordinator's key space so every node's gateway accepts them.

use std::process::ExitCode;

use hyphae_core::paths::NodePaths;
use hyphae_gateway::auth::api_token::{generate, TokenRecord};
use hyphae_gateway::auth::TOKENS_TABLE;
use serde_json::json;

/// `hyphae api-token …`
#[derive(Debug, clap::Subcommand)]
pub enum ApiTokenCommand {
    /// Create a token and print it (shown only now).
    Create {
        /// A label to recognise it by.
        #[arg(long, default_value = "api")]
        name: String,
    },
    /// List tokens (ids and labels; never the secrets).
    Ls,
    /// Revoke a token by its id.
    Rm {
        /// The token's id (the part after `hyphae_`).
        id: String,
    },
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs an `api-token` subcommand.
pub fn run(paths: &NodePaths, cmd: &ApiTokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApiTokenCommand::Create { name } => {
            let t = generate(name, now_unix());
            let value = serde_json::to_string(&t.record)?;
            super::coordinator::request(
                paths,
                "PUT",
                &format!("/kv/{TOKENS_TABLE}/{}", t.id),
                Some(json!({ "value": value, "expect_version": 0 })),
            )?;
            println!("{}", t.token);
        }
        ApiTokenCommand::Ls => {
            let v =
                super::coordinator::request(paths, "GET", &format!("/kv/{TOKENS_TABLE}"), None)?;
            for e in v["entries"].as_array().into_iter().flatten() {
                let record: Option<TokenRecord> =
                    serde_json::from_str(e["value"].as_str().unwrap_or_default()).ok();
                let (label, created) = record.map(|r| (r.name, r.created_unix)).unwrap_or_default();
                println!(
                    "{}\t{label}\t{created}",
                    e["key"].as_str().unwrap_or_default()
                );
            }
        }
        ApiTokenCommand::Rm { id } => {
            super::coordinator::request(
                paths,
                "DELETE",
                &format!("/kv/{TOKENS_TABLE}/{}", hyphae_gateway::local::encode(id)),
                None,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
