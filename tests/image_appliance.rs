//! The appliance, booted: the x86_64 UEFI image (twice: first boot, then the same disk again),
//! three VMs of it on one virtual LAN forming a mesh that stores and reads back a file,
//! the PXE set diskless in 1 GiB, and the Raspberry Pi image (its partitions and boot files, then
//! its arm64 root under qemu-system-aarch64). Each test runs scripts in tests/image/ (they
//! document what they assert) on an image built from this very source (tests/image/ci-artifacts.sh
//! builds each once per set of inputs, under a lock; the x86 ones from this test run's binary,
//! the Pi's from the same workspace cross-compiled for aarch64).
//!
//! QEMU runs the guests under TCG on machines whose KVM cannot run OVMF (ours): minutes per
//! boot. nextest runs these one at a time (test group `image`, .config/nextest.toml).
//! `HYPHAE_SKIP_IMAGE=1 make test` leaves them out (the Makefile filters them; they never pass
//! without running). Three VMs of the x86 image forming one mesh run alone (nextest's
//! `threads-required`): three TCG guests already take both cores.

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

/// The artifact `kind` (x86, pxe: built from this test run's binary; rpi: cross-compiled).
fn artifact(kind: &str) -> PathBuf {
    let args: &[&str] = match kind {
        "rpi" => &[kind],
        _ => &[kind, env!("CARGO_BIN_EXE_hyphae")],
    };
    let out = run("tests/image/ci-artifacts.sh", args);
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
fn three_x86_vms_on_one_lan_form_one_mesh_and_share_a_file() {
    let img = artifact("x86");
    run(
        "tests/image/vm-cluster-test.sh",
        &[&img.to_string_lossy(), "3"],
    );
}

#[test]
fn the_pxe_set_boots_diskless_in_one_gib() {
    let pxe = artifact("pxe");
    run("tests/image/pxe-boot-test.sh", &[&pxe.to_string_lossy()]);
}

#[test]
fn the_raspberry_pi_image_has_its_boot_files_and_its_arm64_root_boots() {
    let img = artifact("rpi");
    let img = img.to_string_lossy();
    run("tests/image/rpi-image-test.sh", &[&img]);
    run("tests/image/rpi-boot-test.sh", &[&img]);
}
