//! One file per CLI verb. Each exposes `run(...) -> anyhow::Result<ExitCode>`.

pub mod cert;
pub mod doctor;
pub mod firstboot;
pub mod init;
pub mod node;
pub mod ping;
pub mod status;

/// A current-thread runtime for short CLI verbs.
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(f))
}
