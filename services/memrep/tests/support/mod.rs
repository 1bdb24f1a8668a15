//! What memrep's QEMU tests share: the project's test guest.

use std::path::{Path, PathBuf};

/// The test guest's kernel and initramfs (`guest/build.sh` builds them once and caches them
/// under /var/cache/hyphae).
pub fn guest() -> (PathBuf, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest/build.sh");
    let out = std::process::Command::new(&script)
        .output()
        .expect("run guest/build.sh");
    assert!(
        out.status.success(),
        "guest build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    (dir.join("vmlinuz"), dir.join("initrd.cpio"))
}
