//! The stand-in node binary for self-tests: a python3 script with the
//! hyphae CLI shape, so the harness is tested without building hyphae.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SCRIPT: &str = include_str!("standin.py");

/// Path of the executable stand-in, written once per test process (via
/// rename, so concurrent test processes never exec a half-written file).
pub fn standin() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let python = if Path::new("/usr/bin/python3").exists() {
            "#!/usr/bin/python3"
        } else {
            "#!/usr/bin/env python3"
        };
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join("hyphae-standin.py");
        let tmp = dir.join(format!("hyphae-standin.py.{}", std::process::id()));
        fs::write(&tmp, format!("{python}\n{SCRIPT}")).expect("writing stand-in script");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod stand-in");
        fs::rename(&tmp, &path).expect("installing stand-in script");
        path
    })
    .clone()
}
