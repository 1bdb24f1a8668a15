//! `hyphae kv get|put`: the coordinator's generic versioned key space, for operators and tests.

use std::process::ExitCode;

use hyphae_core::paths::NodePaths;
use serde_json::json;

/// `hyphae kv …`
#[derive(Debug, clap::Subcommand)]
pub enum KvCommand {
    /// Print a key's value and version.
    Get {
        /// Table name.
        table: String,
        /// Key.
        key: String,
        /// Read through the queen's read index (linearizable) instead of this node's state.
        #[arg(long)]
        linearizable: bool,
    },
    /// Set a key; prints the new version.
    Put {
        /// Table name.
        table: String,
        /// Key.
        key: String,
        /// Value (UTF-8).
        value: String,
        /// Only if the key is still at this version (0: must not exist).
        #[arg(long)]
        expect_version: Option<u64>,
    },
}

/// Runs a `kv` subcommand.
pub fn run(paths: &NodePaths, cmd: &KvCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KvCommand::Get {
            table,
            key,
            linearizable,
        } => {
            let uri = format!("/kv/{table}/{key}?linearizable={linearizable}");
            let v = super::coordinator::request(paths, "GET", &uri, None)?;
            println!("{}\t{}", v["version"], v["value"].as_str().unwrap_or(""));
        }
        KvCommand::Put {
            table,
            key,
            value,
            expect_version,
        } => {
            let body = json!({ "value": value, "expect_version": expect_version });
            let v = super::coordinator::request(
                paths,
                "PUT",
                &format!("/kv/{table}/{key}"),
                Some(body),
            )?;
            println!("{}", v["version"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}
