//! `hyphae job submit|status|wait|result|list`: GEMM jobs through this node's compute service
//! (`<run>/compute.sock`). See docs/compute.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyphae_core::ipc::{self, Method};
use hyphae_core::paths::NodePaths;
use serde_json::{json, Value};

/// `hyphae job …`
#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// Submit a GEMM job C = A·B of two matrix files stored in the mesh; prints the job id.
    Submit {
        /// Mesh path of A (matrix file, docs/compute.md).
        a: String,
        /// Mesh path of B.
        b: String,
        /// Mesh path the result C is written to.
        out: String,
        /// Tile edge (rows and columns of C per tile).
        #[arg(long)]
        tile: Option<usize>,
        /// Verification: `freivalds` (every tile checked, the default) or `quorum` (every
        /// tile on 3 workers, the result 2 agree on kept).
        #[arg(long, default_value = "freivalds", value_parser = ["freivalds", "quorum"])]
        verify: String,
        /// Wait for the job to finish and print its final record.
        #[arg(long)]
        wait: bool,
        /// `auto` (the cost model picks), `tiles` or `cannon` (docs/compute.md).
        #[arg(long, default_value = "auto")]
        mode: String,
        /// Link rate between nodes for the cost model, Mbit/s (default 1000).
        #[arg(long)]
        link_mbps: Option<f64>,
        /// Add one parity tile per tile row, so a tile lost with its worker is rebuilt from
        /// the row instead of computed again (independent tiles, Freivalds only).
        #[arg(long)]
        parity: bool,
    },
    /// Print a job's record (state, tiles, workers) as JSON.
    Status {
        /// Job id.
        id: String,
    },
    /// Wait until a job is done or failed; exits non-zero if it failed.
    Wait {
        /// Job id.
        id: String,
        /// Give up after this long.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Fetch a finished job's result matrix file to a local file (`-` for stdout).
    Result {
        /// Job id.
        id: String,
        /// Local destination.
        dest: PathBuf,
    },
    /// List the jobs.
    List,
}

fn call(
    paths: &NodePaths,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let socket = paths.socket("compute");
    let body = body.map(|b| b.to_string().into_bytes());
    let (status, bytes) = super::block_on(ipc::request(&socket, method, uri, body))?
        .with_context(|| format!("is the compute service running? ({})", socket.display()))?;
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({ "error": String::from_utf8_lossy(&bytes) }));
    if !status.is_success() {
        bail!("{}", v["error"].as_str().unwrap_or(&v.to_string()));
    }
    Ok(v)
}

fn wait(paths: &NodePaths, id: &str, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = call(paths, Method::GET, &format!("/jobs/{id}"), None)?;
        match v["state"].as_str() {
            Some("done") | Some("failed") => return Ok(v),
            _ if Instant::now() > deadline => bail!("job {id} still running after {timeout:?}"),
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn finish(v: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(if v["state"] == "done" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs a `job` subcommand.
pub fn run(paths: &NodePaths, cmd: &JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::Submit {
            a,
            b,
            out,
            tile,
            verify,
            wait: w,
            mode,
            link_mbps,
            parity,
        } => {
            let v = call(
                paths,
                Method::POST,
                "/jobs",
                Some(
                    json!({ "a": a, "b": b, "out": out, "tile": tile, "verify": verify,
                    "mode": mode, "link_mbps": link_mbps, "parity": parity }),
                ),
            )?;
            let id = v["id"]
                .as_str()
                .context("no job id in the answer")?
                .to_string();
            if *w {
                return finish(&wait(paths, &id, Duration::from_secs(600))?);
            }
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Status { id } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&call(
                    paths,
                    Method::GET,
                    &format!("/jobs/{id}"),
                    None
                )?)?
            );
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Wait { id, timeout } => finish(&wait(paths, id, *timeout)?),
        JobCommand::Result { id, dest } => {
            let v = call(paths, Method::GET, &format!("/jobs/{id}"), None)?;
            if v["state"] != "done" {
                bail!("job {id} is {} (no result)", v["state"]);
            }
            let out = v["request"]["out"]
                .as_str()
                .context("job has no output path")?;
            let files = hyphae_compute::MeshFiles::new(&paths.socket("chunkstore"));
            let bytes = super::block_on(files.get(out))??;
            if dest.as_os_str() == "-" {
                use std::io::Write;
                std::io::stdout().write_all(&bytes)?;
            } else {
                std::fs::write(dest, &bytes)
                    .with_context(|| format!("writing {}", dest.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::List => {
            println!(
                "{}",
                serde_json::to_string_pretty(&call(paths, Method::GET, "/jobs", None)?)?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
