//! Polling helpers: cluster behaviour is eventually consistent, so tests
//! assert "within T this becomes true" instead of sleeping and hoping.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// How often the helpers re-check.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Re-runs `check` until it returns `Ok(true)` or `timeout` passes. Errors
/// from `check` count as "not yet" (a node may still be starting); the
/// last one is reported on timeout along with `what`.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    wait_for(timeout, what, || Ok(check()?.then_some(())))
}

/// Re-runs `check` until it yields `Some(value)` and returns the value; the
/// value-returning form of [`wait_until`] (e.g. wait for a peer id to show
/// up in `/status`, then use it).
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last_err = match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() >= deadline {
            match last_err {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_value_and_reports_timeouts() {
        let mut n = 0;
        let v = wait_for(Duration::from_secs(5), "n to reach 3", || {
            n += 1;
            Ok((n >= 3).then_some(n))
        })
        .unwrap();
        assert_eq!(v, 3);

        let err = wait_until(Duration::from_millis(250), "never", || {
            anyhow::bail!("boom")
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("never") && msg.contains("boom"), "{msg}");
    }
}
