//! `hyphae query-asset` and `hyphae asset fetch|refresh`: shared assets through this node's
//! chunkstore (`/assets` on chunkstore.sock). A fetched asset is written to `OUT.part`, checked
//! against its BLAKE3 hash and only then renamed.

use std::process::ExitCode;

use anyhow::{bail, Context};
use futures::StreamExt;
use http_body_util::BodyExt;
use hyphae_core::paths::NodePaths;
use tokio::io::AsyncWriteExt;

use super::files::{empty, json_answer, send, socket};

/// Options of `hyphae query-asset`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The asset's name (its path under a shared directory, or just the file name).
    #[arg(long, conflicts_with = "hash", required_unless_present = "hash")]
    pub name: Option<String>,
    /// Its BLAKE3 hash (64 hex digits).
    #[arg(long)]
    pub hash: Option<String>,
}

/// `hyphae asset ...`.
#[derive(Debug, clap::Subcommand)]
pub enum AssetCommand {
    /// Fetch an asset by hash from whichever node has it, verified, into OUT.
    Fetch {
        /// BLAKE3 hash (64 hex digits).
        hash: String,
        /// Local file to write.
        out: String,
    },
    /// Rescan this node's `[share] dirs` now.
    Refresh,
}

/// Runs `hyphae query-asset`.
pub fn query(paths: &NodePaths, args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let (key, value) = match (&args.name, &args.hash) {
        (Some(n), None) => ("name", n),
        (None, Some(h)) => ("hash", h),
        _ => bail!("give --name or --hash"),
    };
    let value: String =
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    super::block_on(async {
        let uri = format!("/assets?{key}={value}");
        let v = json_answer(send(&socket(paths), hyper::Method::GET, &uri, &[], empty()).await?)
            .await?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        Ok(ExitCode::SUCCESS)
    })?
}

/// Runs `hyphae asset ...`.
pub fn run(paths: &NodePaths, cmd: &AssetCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AssetCommand::Refresh => super::block_on(async {
            let v = json_answer(
                send(
                    &socket(paths),
                    hyper::Method::POST,
                    "/assets/refresh",
                    &[],
                    empty(),
                )
                .await?,
            )
            .await?;
            println!("{v}");
            Ok(ExitCode::SUCCESS)
        })?,
        AssetCommand::Fetch { hash, out } => fetch(paths, hash, out),
    }
}

fn fetch(paths: &NodePaths, hash: &str, out: &str) -> anyhow::Result<ExitCode> {
    let hash = hash.to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{hash:?} is not a BLAKE3 hash (64 hex digits)");
    }
    super::block_on(async {
        let uri = format!("/assets/{hash}");
        let resp = send(&socket(paths), hyper::Method::GET, &uri, &[], empty()).await?;
        if !resp.status().is_success() {
            json_answer(resp).await?;
            bail!("unexpected answer");
        }
        let part = format!("{out}.part");
        let mut f = tokio::fs::File::create(&part)
            .await
            .with_context(|| format!("creating {part}"))?;
        let mut body = resp.into_body().into_data_stream();
        let mut hasher = blake3::Hasher::new();
        let mut got = 0u64;
        let copied: anyhow::Result<()> = async {
            while let Some(piece) = body.next().await {
                let piece = piece.context("transfer interrupted")?;
                hasher.update(&piece);
                got += piece.len() as u64;
                f.write_all(&piece).await?;
            }
            let actual = hasher.finalize().to_hex().to_string();
            if actual != hash {
                bail!("the bytes received hash to {actual}, not {hash}");
            }
            f.sync_all().await?;
            Ok(())
        }
        .await;
        if let Err(e) = copied {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        tokio::fs::rename(&part, out).await?;
        println!(
            "{}",
            serde_json::json!({ "hash": hash, "bytes": got, "out": out })
        );
        Ok(ExitCode::SUCCESS)
    })?
}
