//! `hyphae-bench`: Hyphae measured against its anchors, on the same machine, in the same run.
//!
//! Each benchmark writes a JSON result to `bench/results/<name>.json` and prints a summary line
//! for `docs/benchmarks.md`. Benchmarks are never timed assertions in tests.
//!
//! - `rpc`: QUIC RPC (our mutual-TLS transport) between two nodes in two network namespaces,
//!   beside TLS over TCP (tokio-rustls, same certificates) — small-request round trip p50/p99
//!   and single-stream bulk throughput.
//! - `pipeline`: the store's chunk + encrypt + hash + erasure-encode path and the heal-path
//!   decode, on one core, beside BLAKE3 and AES-256-GCM alone.

mod pipeline;
mod rpc_orchestrate;
mod rpc_quic;
mod rpc_tcp;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "hyphae-bench", about = "Hyphae benchmarks against the anchors")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// QUIC RPC vs TLS-over-TCP between two namespaced nodes (needs root).
    Rpc(rpc_orchestrate::RpcArgs),
    /// (internal) the server side of `rpc`, run inside a namespace.
    RpcServer {
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long, default_value_t = 7460)]
        quic_port: u16,
        #[arg(long, default_value_t = 7461)]
        tcp_port: u16,
    },
    /// (internal) the client side of `rpc`, run inside a namespace; prints JSON.
    RpcClient(rpc_orchestrate::ClientArgs),
    /// The store's CPU pipeline on one core: write path and heal-path decode.
    Pipeline(pipeline::PipelineArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Rpc(args) => rpc_orchestrate::run(args),
        Command::RpcServer {
            state_dir,
            quic_port,
            tcp_port,
        } => rpc_orchestrate::serve(state_dir, quic_port, tcp_port),
        Command::RpcClient(args) => rpc_orchestrate::client(args),
        Command::Pipeline(args) => pipeline::run(args),
    }
}
