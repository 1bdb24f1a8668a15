//! `hyphae put|get|ls|rm|stat|scrub`: the mesh store from the command line, through the local
//! chunkstore's socket (contract A). Transfers stream both ways with a progress bar on a
//! terminal; `-` is stdin or stdout. A download goes to `LOCAL.part` and is renamed only when
//! complete, so a failed `get` leaves nothing half-written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use hyphae_core::early_answer_io::EarlyAnswerIo;
use hyphae_core::mesh_path::route_uri;
use hyphae_core::paths::NodePaths;
use hyphae_core::transport::ServiceSpec;
use indicatif::{ProgressBar, ProgressStyle};
use percent_encoding::utf8_percent_encode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Transfers smaller than this get no progress bar.
const BAR_MIN: u64 = 8 << 20;

/// `hyphae put LOCAL PATH`
#[derive(Debug, clap::Args)]
pub struct PutArgs {
    /// Local file, or `-` for stdin.
    local: String,
    /// Path in the mesh.
    path: String,
    /// Data shards per chunk (with --parity).
    #[arg(long)]
    k: Option<u32>,
    /// Parity shards per chunk (with --k).
    #[arg(long)]
    m: Option<u32>,
}

/// `hyphae get PATH LOCAL`
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// Path in the mesh.
    path: String,
    /// Local file, or `-` for stdout.
    local: String,
    /// Only these bytes, `a-b` (inclusive), `a-` or `-n`.
    #[arg(long)]
    range: Option<String>,
}

/// `hyphae ls [PREFIX]`
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only paths starting with this.
    #[arg(default_value = "")]
    prefix: String,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

/// `hyphae rm PATH` / `hyphae stat PATH`
#[derive(Debug, clap::Args)]
pub struct PathArgs {
    /// Path in the mesh.
    path: String,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

/// `hyphae scrub --now`
#[derive(Debug, clap::Args)]
pub struct ScrubArgs {
    /// Start a scrub of this node's shards now.
    #[arg(long)]
    now: bool,
}

pub(super) fn socket(paths: &NodePaths) -> PathBuf {
    paths.socket(ServiceSpec::CHUNKSTORE.name)
}

pub(super) type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

pub(super) async fn send(
    socket: &Path,
    method: hyper::Method,
    uri: &str,
    headers: &[(&str, String)],
    body: BoxBody,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| {
            format!(
                "is the chunkstore running? (no answer on {})",
                socket.display()
            )
        })?;
    // The chunkstore may refuse an upload before reading all of it (507 when no node has
    // room): the wrapper keeps a failed body write from hiding its answer.
    let (io, write_failure) = EarlyAnswerIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    match sender.send_request(req.body(body)?).await {
        Ok(resp) => Ok(resp),
        Err(e) => match write_failure.take() {
            Some(w) => Err(anyhow::anyhow!(
                "the chunkstore closed the connection during the upload without answering ({w}; {e})"
            )),
            None => Err(e.into()),
        },
    }
}

/// Reads a whole (small) answer; fails with the server's error message unless it succeeded.
pub(super) async fn json_answer(
    resp: hyper::Response<hyper::body::Incoming>,
) -> anyhow::Result<Value> {
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = value["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        let code = value["error"]["code"].as_str().unwrap_or("error");
        bail!("{message} ({code}, HTTP {})", status.as_u16());
    }
    Ok(value)
}

pub(super) fn empty() -> BoxBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn bar(total: Option<u64>) -> ProgressBar {
    match total {
        Some(n) if n >= BAR_MIN => {
            let pb = ProgressBar::new(n);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            ) {
                pb.set_style(style);
            }
            pb
        }
        _ => ProgressBar::hidden(),
    }
}

/// Runs `hyphae put`.
pub fn put(paths: &NodePaths, args: &PutArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        let (reader, size): (Box<dyn tokio::io::AsyncRead + Unpin + Send>, Option<u64>) =
            if args.local == "-" {
                (Box::new(tokio::io::stdin()), None)
            } else {
                let f = tokio::fs::File::open(&args.local)
                    .await
                    .with_context(|| format!("opening {}", args.local))?;
                let len = f.metadata().await?.len();
                (Box::new(f), Some(len))
            };
        let pb = bar(size);
        let pb2 = pb.clone();
        let stream = futures::stream::unfold(reader, move |mut r| {
            let pb = pb2.clone();
            async move {
                let mut buf = vec![0u8; 1 << 20];
                match r.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        pb.inc(n as u64);
                        Some((Ok(Frame::data(Bytes::from(buf))), r))
                    }
                    Err(e) => Some((Err(e), r)),
                }
            }
        });
        let body = StreamBody::new(stream).boxed_unsync();
        let mut uri = route_uri("/files", &args.path);
        match (args.k, args.m) {
            (Some(k), Some(m)) => uri.push_str(&format!("?k={k}&m={m}")),
            (None, None) => {}
            _ => bail!("give --k and --m together"),
        }
        let resp = send(&socket(paths), hyper::Method::PUT, &uri, &[], body).await?;
        let v = json_answer(resp).await?;
        pb.finish_and_clear();
        println!("{}", serde_json::to_string(&v)?);
        Ok(ExitCode::SUCCESS)
    })?
}

/// Runs `hyphae get`.
pub fn get(paths: &NodePaths, args: &GetArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        let headers: Vec<(&str, String)> = match &args.range {
            Some(r) => vec![("range", format!("bytes={r}"))],
            None => vec![],
        };
        let uri = route_uri("/files", &args.path);
        let resp = send(&socket(paths), hyper::Method::GET, &uri, &headers, empty()).await?;
        if !resp.status().is_success() {
            json_answer(resp).await?;
            bail!("unexpected answer");
        }
        let total = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let pb = bar(total);
        let mut body = resp.into_body().into_data_stream();
        let mut got = 0u64;
        let result: anyhow::Result<()> = async {
            if args.local == "-" {
                let mut out = tokio::io::stdout();
                while let Some(piece) = body.next().await {
                    let piece = piece.context("download interrupted")?;
                    got += piece.len() as u64;
                    pb.inc(piece.len() as u64);
                    out.write_all(&piece).await?;
                }
                out.flush().await?;
            } else {
                let part = format!("{}.part", args.local);
                let mut f = tokio::fs::File::create(&part)
                    .await
                    .with_context(|| format!("creating {part}"))?;
                let copied: anyhow::Result<()> = async {
                    while let Some(piece) = body.next().await {
                        let piece = piece.context("download interrupted")?;
                        got += piece.len() as u64;
                        pb.inc(piece.len() as u64);
                        f.write_all(&piece).await?;
                    }
                    if let Some(t) = total {
                        if got != t {
                            bail!("download interrupted after {got} of {t} bytes");
                        }
                    }
                    f.sync_all().await?;
                    Ok(())
                }
                .await;
                if let Err(e) = copied {
                    let _ = tokio::fs::remove_file(&part).await;
                    return Err(e);
                }
                tokio::fs::rename(&part, &args.local).await?;
            }
            Ok(())
        }
        .await;
        pb.finish_and_clear();
        result?;
        Ok(ExitCode::SUCCESS)
    })?
}

/// Runs `hyphae ls`.
pub fn ls(paths: &NodePaths, args: &LsArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        let uri = format!(
            "/files?prefix={}",
            utf8_percent_encode(&args.prefix, percent_encoding::NON_ALPHANUMERIC)
        );
        let v = json_answer(send(&socket(paths), hyper::Method::GET, &uri, &[], empty()).await?)
            .await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for f in v["files"].as_array().into_iter().flatten() {
                println!(
                    "{:>14}  {:<8}  {}",
                    f["size"],
                    f["health"].as_str().unwrap_or("-"),
                    f["path"].as_str().unwrap_or("-")
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// Runs `hyphae rm`.
pub fn rm(paths: &NodePaths, args: &PathArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        let uri = route_uri("/files", &args.path);
        let v = json_answer(send(&socket(paths), hyper::Method::DELETE, &uri, &[], empty()).await?)
            .await?;
        if args.json {
            println!("{v}");
        } else {
            println!("deleted {}", v["deleted"].as_str().unwrap_or("-"));
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// Runs `hyphae stat`.
pub fn stat(paths: &NodePaths, args: &PathArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        let uri = route_uri("/stat", &args.path);
        let v = json_answer(send(&socket(paths), hyper::Method::GET, &uri, &[], empty()).await?)
            .await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("path    {}", v["path"].as_str().unwrap_or("-"));
        println!("size    {} bytes", v["size"]);
        println!("layout  {}+{}", v["k"], v["m"]);
        println!("health  {}", v["health"].as_str().unwrap_or("-"));
        for (i, c) in v["chunks"].as_array().into_iter().flatten().enumerate() {
            println!(
                "chunk {i} {} ({} bytes)",
                c["id"].as_str().unwrap_or("-"),
                c["size"]
            );
            for s in c["shards"].as_array().into_iter().flatten() {
                println!(
                    "  shard {} on {} {}",
                    s["index"],
                    s["node"].as_str().unwrap_or("-"),
                    if s["present"].as_bool() == Some(true) {
                        "ok"
                    } else {
                        "MISSING"
                    }
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// Runs `hyphae scrub`.
pub fn scrub(paths: &NodePaths, args: &ScrubArgs) -> anyhow::Result<ExitCode> {
    if !args.now {
        bail!("scrubs run on their schedule ([storage] scrub_interval); `--now` starts one now");
    }
    super::block_on(async {
        let v =
            json_answer(send(&socket(paths), hyper::Method::POST, "/scrub", &[], empty()).await?)
                .await?;
        println!("{v}");
        Ok(ExitCode::SUCCESS)
    })?
}
