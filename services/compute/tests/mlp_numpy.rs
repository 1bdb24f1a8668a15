//! An MLP converted from a numpy state dict by `scripts/mlp_to_hyphae.py` gives the same
//! output on the CPU and Vulkan backends as the script's numpy (f64) reference.

use std::path::{Path, PathBuf};
use std::process::Command;

use hyphae_compute::cpu::CpuBackend;
use hyphae_compute::mlp::Mlp;
use hyphae_compute::vulkan::{DeviceChoice, VulkanBackend};
use hyphae_compute::{matrix_file, Matrix};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mlp_to_hyphae.py")
}

/// Debian's interpreter, where python3-numpy lives (a pyenv or venv `python3` earlier on PATH
/// may lack numpy).
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn py(args: &[&str]) {
    let out = Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "mlp_to_hyphae.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn close(got: &Matrix, want: &Matrix, what: &str) {
    assert_eq!(
        (got.rows(), got.cols()),
        (want.rows(), want.cols()),
        "{what} shape"
    );
    for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
            "{what} element {i}: {g} vs numpy {w}"
        );
    }
}

#[test]
fn mlp_matches_numpy_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    py(&["random-state", &p("state.npz"), "33", "64", "48", "10"]);
    let gpu = VulkanBackend::open(&DeviceChoice {
        name_contains: None,
        allow_software: true,
    })
    .expect("a Vulkan device (lavapipe in CI)");
    let cpu = CpuBackend::new(0);
    for (hidden, softmax) in [("relu", true), ("gelu", false)] {
        let (state, model) = (p("state.npz"), p("model.hymw"));
        let mut args = vec!["convert", &state[..], &model[..], "--hidden", hidden];
        if softmax {
            args.push("--softmax");
        }
        py(&args);
        let model = Mlp::decode(&std::fs::read(p("model.hymw")).unwrap()).unwrap();
        let x = Matrix::random(7, 33, 5).unwrap();
        std::fs::write(p("x.hymx"), matrix_file::encode(&x)).unwrap();
        py(&["reference", &p("model.hymw"), &p("x.hymx"), &p("want.hymx")]);
        let want = matrix_file::decode(&std::fs::read(p("want.hymx")).unwrap()).unwrap();
        close(
            &model.forward_with(&x, |a, b| cpu.sgemm(a, b)).unwrap(),
            &want,
            "cpu",
        );
        close(&model.forward_vulkan(&gpu, &x).unwrap(), &want, "vulkan");
    }
}
