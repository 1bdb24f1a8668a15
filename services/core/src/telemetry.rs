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
        .or_else(|_| EnvFilter::try_new(filter_directives(&log.level)))
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

/// The filter for a configured `level`. A bare level more verbose than `info` (`debug`,
/// `trace`) is for our own code (every crate's target starts with `hyphae`): libraries stay
/// at `info`, because openraft, quinn and rustls at debug log every tick and packet — hundreds
/// of lines a second that a slow journald (a Pi's SD card, a TCG VM) cannot absorb, and a
/// service blocks while journald's socket is full. Anything else (`warn`, or directives such as
/// `info,openraft=debug`) is taken as written.
pub fn filter_directives(level: &str) -> String {
    let bare = level.trim();
    match bare.to_ascii_lowercase().as_str() {
        "debug" | "trace" => format!("info,hyphae={bare}"),
        _ => level.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::filter_directives;

    #[test]
    fn a_bare_verbose_level_is_for_our_crates_only() {
        assert_eq!(filter_directives("debug"), "info,hyphae=debug");
        assert_eq!(filter_directives(" trace "), "info,hyphae=trace");
        assert_eq!(filter_directives("info"), "info");
        assert_eq!(filter_directives("warn"), "warn");
        assert_eq!(
            filter_directives("info,openraft=debug"),
            "info,openraft=debug"
        );
    }
}
