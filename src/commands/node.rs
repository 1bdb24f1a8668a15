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
}

/// Runs the chosen services until SIGINT or SIGTERM.
pub fn run(paths: NodePaths, config: Config, services: Services) -> anyhow::Result<ExitCode> {
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
        // The agent runs in every process layout: today it is also the only service.
        let _ = services;
        let agent = tokio::spawn(agent::run(ctx.clone(), shutdown.clone()));
        let result = agent.await.context("node agent panicked")?;
        shutdown.cancel();
        result.context("node agent")?;
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
