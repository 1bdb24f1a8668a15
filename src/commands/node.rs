//! `hyphae node`: every service of one node in one process; `hyphae <service>`: one of them.
//!
//! Each service is a library with one entry point `run(ctx, shutdown)`. Under systemd every
//! service is its own unit running `hyphae <service>`; `hyphae node` runs them all as tasks of
//! one process for development, `make run` and the cluster tests. Same code either way.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use hyphae_core::config::Config;
use hyphae_core::paths::NodePaths;
use hyphae_core::{agent, notify, NodeContext};
use tokio_util::sync::CancellationToken;

/// Which services a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Services {
    /// Every service that exists (`hyphae node`).
    All,
    /// Only the node agent (`hyphae agent`).
    Agent,
    /// Only the coordinator (`hyphae coordinator`).
    Coordinator,
    /// Only discovery (`hyphae beacon`).
    Beacon,
    /// Only the gateway (`hyphae gateway`).
    Gateway,
    /// Only the chunkstore (`hyphae chunkstore`).
    Chunkstore,
    /// Only the compute worker (`hyphae compute`).
    Compute,
    /// Only the memory replicator (`hyphae memrep`).
    Memrep,
}

impl Services {
    /// Whether this selection includes `one`.
    fn runs(self, one: Services) -> bool {
        self == Services::All || self == one
    }
}

/// Options of `hyphae node` and `hyphae coordinator`: joining a mesh at start.
#[derive(Debug, Default, clap::Args)]
pub struct NodeArgs {
    /// Join with this token (overrides `[mesh] join_token`).
    #[arg(long, value_name = "TOKEN")]
    join: Option<String>,
    /// Address of a member's admission endpoint, `IP` or `IP:PORT` (repeatable; overrides
    /// `[mesh] peers`).
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<String>,
}

/// Runs the chosen services until SIGINT or SIGTERM.
pub fn run(
    paths: NodePaths,
    mut config: Config,
    args: &NodeArgs,
    services: Services,
) -> anyhow::Result<ExitCode> {
    if let Some(token) = &args.join {
        config.mesh.join_token = Some(token.clone());
    }
    if !args.peers.is_empty() {
        config.mesh.peers = args.peers.clone();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hyphae")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let ctx = Arc::new(NodeContext::load(paths, config).context("loading the node")?);
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone())?;
        notify::spawn_watchdog(shutdown.clone());
        // Each service is one task; the first to fail stops the node (systemd restarts units).
        let mut tasks = tokio::task::JoinSet::new();
        if services.runs(Services::Agent) {
            let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
            tasks.spawn(async move { agent::run(ctx, shutdown).await.context("node agent") });
        }
        if services.runs(Services::Gateway) {
            let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
            tasks.spawn(async move { hyphae_gateway::run(ctx, shutdown).await.context("gateway") });
        }
        if services.runs(Services::Chunkstore) {
            let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
            tasks.spawn(async move {
                hyphae_chunkstore::run(ctx, shutdown)
                    .await
                    .context("chunkstore")
            });
        }
        if services.runs(Services::Memrep) {
            let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
            tasks.spawn(async move { hyphae_memrep::run(ctx, shutdown).await.context("memrep") });
        }
        if services.runs(Services::Coordinator) {
            let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
            tasks.spawn(async move {
                hyphae_coordinator::run(ctx, shutdown)
                    .await
                    .context("coordinator")
            });
        }
        if services.runs(Services::Beacon) {
            let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
            tasks.spawn(async move { hyphae_beacon::run(ctx, shutdown).await.context("beacon") });
        }
        if services.runs(Services::Compute) {
            let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
            tasks.spawn(async move { hyphae_compute::run(ctx, shutdown).await.context("compute") });
        }
        let mut outcome = Ok(());
        while let Some(done) = tasks.join_next().await {
            // The first service to stop (cleanly or not) stops the others.
            shutdown.cancel();
            let result = done.context("a service panicked").and_then(|r| r);
            if let Err(e) = result {
                tracing::error!(error = %format!("{e:#}"), "service failed");
                if outcome.is_ok() {
                    outcome = Err(e);
                }
            }
        }
        outcome?;
        Ok(ExitCode::SUCCESS)
    })
}

fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        shutdown.cancel();
    });
    Ok(())
}
