//! What the orchestrated benchmarks ask of the host they run on: where the `hyphae` binary is,
//! a command's output for the record (load, uptime, versions), and the date of a run.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};

/// The `hyphae` binary to start nodes with: the one given, else the one built beside this
/// benchmark binary (`cargo build` puts both in the same target directory).
pub fn hyphae_binary(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("hyphae"))
            .ok_or_else(|| anyhow!("cannot locate the hyphae binary; pass --hyphae")),
    }
}

/// A command's trimmed standard output, empty when it cannot run: for figures recorded beside
/// the results, never for anything a result depends on.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Now, in UTC, as results record it (`2026-11-22T05:20:00Z`).
pub fn utc_now() -> String {
    sh("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
}
