//! Which I/O path the store uses, and the probe that decides it at open.
//!
//! io_uring may be compiled out of the kernel, disabled by `kernel.io_uring_disabled`, or
//! blocked by a container's seccomp profile (Docker's default): the probe creates a ring and
//! runs a NOP through it; any failure selects pread/pwrite and keeps the reason for `/status`
//! and `hyphae doctor`.

use serde::Serialize;

/// The I/O path in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Appends, syncs and reads through io_uring rings on dedicated threads.
    IoUring,
    /// pwritev/fdatasync on the writer thread, pread on tokio's blocking pool.
    Pread,
}

impl Backend {
    /// The name used in `/status` (`"io_uring"` or `"pread"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::IoUring => "io_uring",
            Backend::Pread => "pread",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The backend chosen and, when it is not io_uring, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendInfo {
    /// The backend in use.
    pub backend: Backend,
    /// Why io_uring is not used (`None` when it is).
    pub fallback_reason: Option<String>,
}

/// Checks that io_uring works here: a ring can be created and a NOP completes.
pub fn probe_io_uring() -> Result<(), String> {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let hint = format!("io_uring_disabled={disabled}; container seccomp profiles often block it");
    let mut ring =
        io_uring::IoUring::new(4).map_err(|e| format!("io_uring_setup failed: {e} ({hint})"))?;
    let nop = io_uring::opcode::Nop::new().build().user_data(0x5eed);
    // SAFETY: a NOP references no memory.
    unsafe { ring.submission().push(&nop) }.map_err(|_| "submission queue full".to_string())?;
    ring.submit_and_wait(1)
        .map_err(|e| format!("io_uring_enter failed: {e} ({hint})"))?;
    let done = ring
        .completion()
        .next()
        .map(|c| (c.user_data(), c.result()));
    match done {
        Some((0x5eed, res)) if res >= 0 => Ok(()),
        Some((_, res)) => Err(format!("io_uring NOP failed: result {res}")),
        None => Err("io_uring NOP did not complete".into()),
    }
}

/// Picks the backend for a store opened with `force_pread`.
pub fn choose(force_pread: bool) -> BackendInfo {
    if force_pread {
        return BackendInfo {
            backend: Backend::Pread,
            fallback_reason: Some("forced by StoreOptions::force_pread".into()),
        };
    }
    match probe_io_uring() {
        Ok(()) => BackendInfo {
            backend: Backend::IoUring,
            fallback_reason: None,
        },
        Err(reason) => {
            tracing::warn!(%reason, "io_uring unavailable; the shard store uses pread/pwrite");
            BackendInfo {
                backend: Backend::Pread,
                fallback_reason: Some(reason),
            }
        }
    }
}
