//! `hyphae node`: every service of one node in one process.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use hyphae_core::config::Config;
use hyphae_core::paths::NodePaths;
use hyphae_core::{agent, notify, NodeContext};
use tokio_util::sync::CancellationToken;

/// Runs the node until SIGINT or SIGTERM.
pub fn run(paths: NodePaths, config: Config) -> anyhow::Result<ExitCode> {
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
