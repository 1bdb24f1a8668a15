//! `hyphae-bench`: Hyphae measured against its anchors, on the same machine, in the same run.
//!
//! Each benchmark writes a JSON result to `bench/results/<name>.json` and prints a summary line
//! for `docs/benchmarks.md`. Benchmarks are never timed assertions in tests.
//!
//! - `rpc`: QUIC RPC (our mutual-TLS transport) between two nodes in two network namespaces,
//!   beside TLS over TCP (tokio-rustls, same certificates) — small-request round trip p50/p99
//!   and single-stream bulk throughput.
//! - `coordinator`: our coordinator (3 princes) beside etcd 3.4 (3 members) in the same
//!   namespaces — leader failover, write latency, write throughput at 64 clients.
//! - `discovery`: convergence of N beacon-only nodes on one bridge (8, 16, 32) and the
//!   beacon's CPU and bandwidth per node.
//! - `pipeline`: the store's chunk + encrypt + hash + erasure-encode path and the heal-path
//!   decode, on one core, beside BLAKE3 and AES-256-GCM alone.
//! - `store`: the local shard store beside fio (io_uring engine) on the same filesystem —
//!   sequential 1 MiB writes with fdatasync, 64 KiB random reads.
//! - `compute`: CPU SGEMM vs OpenBLAS, Freivalds' overhead, Vulkan SGEMM vs cuBLAS (GPU only).
//! - `compute-dist`: a 4-worker GEMM over 1 Gbit/s links, tiles vs Cannon, efficiency vs one node.
//! - `garage`: the mesh store (3 nodes, 2+1) beside Garage (3 nodes, replication 2) in the same
//!   namespaces — PUT and GET MiB/s of 1 MiB and 64 MiB objects.
//! - `heal`: time to restore full redundancy after a node death, per GiB lost (4 nodes, 2+1).
//! - `memrep`: the memory replicator on the test guest — checkpoint pause p50/p99, lag and
//!   failover time, beside COLO's and HydraVM's published figures.
//! - `gateway`: our gateway (1-node mesh) beside Caddy 2.6 in the same namespace with the same
//!   certificate — small GET req/s and p99 at N clients, 64 MiB download MiB/s, HTTP/2 and
//!   HTTP/3.

mod compute;
mod compute_dist;
mod coord_etcd;
mod coord_hyphae;
mod coord_measure;
mod coord_orchestrate;
mod coord_system;
mod discovery;
mod garage_cluster;
mod garage_orchestrate;
mod gateway_caddy;
mod gateway_client;
mod gateway_measure;
mod gateway_orchestrate;
mod heal;
mod host;
mod http_conn;
mod memrep;
mod memrep_slowdown;
mod object_measure;
mod pipeline;
mod rpc_orchestrate;
mod rpc_quic;
mod rpc_tcp;
mod stats;
mod store;

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
    /// Our coordinator vs etcd 3.4: failover, write latency, throughput (needs root, etcd).
    Coordinator(coord_orchestrate::CoordArgs),
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
    /// Our gateway vs Caddy 2.6: small GET req/s + p99 and 64 MiB download MiB/s, HTTP/2 and
    /// HTTP/3 (needs root, caddy).
    Gateway(gateway_orchestrate::GatewayArgs),
    /// Discovery convergence at 8/16/32 beacon-only nodes, CPU and bandwidth per node.
    Discovery(discovery::DiscoveryArgs),
    /// The store's CPU pipeline on one core: write path and heal-path decode.
    Pipeline(pipeline::PipelineArgs),
    /// The local shard store vs fio on the same filesystem (root, to drop the page cache).
    Store(store::StoreArgs),
    /// Compute: CPU SGEMM vs OpenBLAS, Freivalds overhead, Vulkan vs cuBLAS where a GPU is.
    Compute(compute::ComputeArgs),
    /// The mesh store (3 nodes, 2+1) vs Garage (3 nodes, replication 2): object PUT/GET MiB/s.
    Garage(garage_orchestrate::GarageArgs),
    /// Time to restore full redundancy after a node death, per GiB lost (needs root).
    Heal(heal::HealArgs),
    /// The memory replicator on the test guest: pause p50/p99, lag, failover time (root).
    Memrep(memrep::MemrepArgs),
    /// A 4-worker GEMM over 1 Gbit/s links: tiles vs Cannon, efficiency vs one node (root).
    ComputeDist(compute_dist::ComputeDistArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Rpc(args) => rpc_orchestrate::run(args),
        Command::Coordinator(args) => coord_orchestrate::run(args),
        Command::RpcServer {
            state_dir,
            quic_port,
            tcp_port,
        } => rpc_orchestrate::serve(state_dir, quic_port, tcp_port),
        Command::RpcClient(args) => rpc_orchestrate::client(args),
        Command::Gateway(args) => gateway_orchestrate::run(args),
        Command::Discovery(args) => discovery::run(args),
        Command::Pipeline(args) => pipeline::run(args),
        Command::Store(args) => store::run(args),
        Command::Compute(args) => compute::run(args),
        Command::Garage(args) => garage_orchestrate::run(args),
        Command::Heal(args) => heal::run(args),
        Command::Memrep(args) => memrep::run(args),
        Command::ComputeDist(args) => compute_dist::run(args),
    }
}
