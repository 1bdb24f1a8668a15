//! systemd integration: `READY=1`, `STATUS=…`, `STOPPING=1` and the watchdog.
//!
//! Outside systemd (no `NOTIFY_SOCKET`), every call is a no-op, so the same code runs under
//! `hyphae node`, in tests and in the image's units.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Tells systemd the service is serving, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Updates the one-line status `systemctl status` shows.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Tells systemd the service is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// If the unit has `WatchdogSec=`, pings the watchdog at half the interval until `shutdown`.
/// The ping comes from the async runtime itself, so a wedged runtime gets the service restarted.
pub fn spawn_watchdog(shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let period = Duration::from_micros(usec / 2);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => send(&[NotifyState::Watchdog]),
            }
        }
    }))
}
