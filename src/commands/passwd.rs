//! `hyphae passwd`: sets the mesh's admin password (the dashboard's and API's login). Stored as
//! an argon2id hash in the coordinator's key space, so every node accepts it; setting it ends
//! every existing login session.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use hyphae_core::paths::NodePaths;
use hyphae_gateway::auth::password::hash_password;
use hyphae_gateway::auth::{AUTH_TABLE, PASSWORD_KEY};
use serde_json::json;

/// Options of `hyphae passwd`.
#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// Read the new password from the first line of standard input (scripts; otherwise the
    /// first line typed at the terminal is used as well, without echo control).
    #[arg(long)]
    stdin: bool,
    /// Read the new password from the first line of FILE instead.
    #[arg(long, value_name = "FILE", conflicts_with = "stdin")]
    password_file: Option<std::path::PathBuf>,
}

/// Runs `hyphae passwd`.
pub fn run(paths: &NodePaths, args: &PasswdArgs) -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    if let Some(file) = &args.password_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        line = text.lines().next().unwrap_or_default().to_string();
    } else {
        if !args.stdin {
            eprintln!("New admin password (one line):");
        }
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password")?;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    let hash = hash_password(password)?;
    super::coordinator::request(
        paths,
        "PUT",
        &format!("/kv/{AUTH_TABLE}/{PASSWORD_KEY}"),
        Some(json!({ "value": hash })),
    )?;
    eprintln!("admin password set; existing sessions are logged out");
    Ok(ExitCode::SUCCESS)
}
