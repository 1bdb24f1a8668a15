//! One file per CLI verb. Each exposes `run(...) -> anyhow::Result<ExitCode>`.

pub mod admit;
pub mod api_token;
pub mod assets;
pub mod cert;
pub mod coordinator;
pub mod doctor;
pub mod files;
pub mod firstboot;
pub mod init;
pub mod job;
pub mod kv;
pub mod leave;
pub mod name;
pub mod node;
pub mod nodes;
pub mod passwd;
pub mod ping;
pub mod revoke;
pub mod status;
pub mod token;
pub mod vm;

/// A current-thread runtime for short CLI verbs.
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(f))
}
