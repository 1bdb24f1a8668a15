//! Logging: `tracing` to stderr for people, or to journald when systemd runs us.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSection};

/// Installs the global subscriber. `RUST_LOG` overrides the configured level. Under systemd
/// (`JOURNAL_STREAM` set) events go to journald as structured fields, so
/// `journalctl -u hyphae-node -o json` shows span fields such as `peer` and `method`.
pub fn init(log: &LogSection) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = if std::env::var_os("JOURNAL_STREAM").is_some() {
        tracing_journald::layer()
            .map(|l| l.with_syslog_identifier("hyphae".into()))
            .ok()
    } else {
        None
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match (journald, log.format) {
        (Some(j), _) => registry.with(j).try_init(),
        (None, LogFormat::Json) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .boxed(),
            )
            .try_init(),
        (None, LogFormat::Text) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .boxed(),
            )
            .try_init(),
    };
    // A second init (tests, embedded use) keeps the first subscriber; that is fine.
    let _ = result;
}
