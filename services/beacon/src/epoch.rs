//! The sender epoch: the start time in milliseconds, persisted so that it never goes back
//! (a Raspberry Pi without a real-time clock may boot in 1970). Receivers reject packets older
//! than the last accepted one per sender, so a restarted node must start above its last epoch.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The next epoch: `max(now in ms, last + 1)`, written back to `file`.
pub fn next(file: &Path) -> std::io::Result<u64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let last = std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let epoch = now.max(last.saturating_add(1));
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{epoch}\n"))?;
    std::fs::rename(&tmp, file)?;
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    #[test]
    fn epochs_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("beacon/epoch");
        let a = super::next(&f).unwrap();
        std::fs::write(&f, format!("{}\n", a + 1_000_000)).unwrap();
        let b = super::next(&f).unwrap();
        assert_eq!(
            b,
            a + 1_000_001,
            "a clock behind the last epoch still moves forward"
        );
        std::fs::write(&f, "garbage").unwrap();
        assert!(super::next(&f).unwrap() > 0);
    }
}
