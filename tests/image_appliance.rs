//! The appliance, booted: the x86_64 UEFI image (twice: first boot, then the same disk again)
//! and the PXE set diskless in 1 GiB. Each test runs one of the scripts in tests/image/ (they
//! document what they assert)
//! on an image built from this very binary (tests/image/ci-artifacts.sh builds it once per set
//! of inputs, under a lock, for all of them).
//!
//! QEMU runs the guests under TCG on machines whose KVM cannot run OVMF (ours): minutes per
//! boot. nextest runs these one at a time (test group `image`, .config/nextest.toml).
//! `HYPHAE_SKIP_IMAGE=1 make test` leaves them out (the Makefile filters them; they never pass
//! without running). Three VMs forming a mesh (`make vm-cluster-test`) are not in this suite:
//! under TCG on a 2-core machine they take 15–25 min (docs/benchmarks.md, "Image boot").

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `script args...` from the repository, its output shown with the test's; panics with
/// the script's name when it fails.
fn run(script: &str, args: &[&str]) -> String {
    let out = Command::new(repo().join(script))
        .args(args)
        .current_dir(repo())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({})",
        out.status
    );
    stdout
}

/// The artifact `kind` (x86, pxe) built from this test run's binary.
fn artifact(kind: &str) -> PathBuf {
    let out = run(
        "tests/image/ci-artifacts.sh",
        &[kind, env!("CARGO_BIN_EXE_hyphae")],
    );
    let path = PathBuf::from(out.lines().last().unwrap_or_default().trim());
    assert!(
        path.exists(),
        "ci-artifacts.sh {kind} printed no path: {out:?}"
    );
    path
}

#[test]
fn the_x86_image_boots_with_every_unit_active_and_serves_its_dashboard() {
    let img = artifact("x86");
    run("tests/image/boot-test.sh", &[&img.to_string_lossy()]);
}

#[test]
fn the_pxe_set_boots_diskless_in_one_gib() {
    let pxe = artifact("pxe");
    run("tests/image/pxe-boot-test.sh", &[&pxe.to_string_lossy()]);
}
