//! Compiles the GLSL compute shaders in `shaders/` to SPIR-V with Debian's `glslangValidator`
//! (package glslang-tools). No GPU is needed to build. Why glslang and not naga: naga's GLSL
//! front end silently reverses the dimensions of multi-dimensional shared arrays (measured,
//! see docs/compute.md), and glslang is the Khronos reference compiler.

use std::path::PathBuf;
use std::process::Command;

const SHADERS: &[&str] = &["sgemm", "bias_act", "softmax"];

fn main() {
    if std::env::var_os("CARGO_FEATURE_SERVICE").is_none() {
        return; // the formats-only build (fuzzing) has no shaders
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let compiler = std::env::var("GLSLANG_VALIDATOR").unwrap_or_else(|_| "glslangValidator".into());
    for name in SHADERS {
        let src = format!("shaders/{name}.comp");
        println!("cargo:rerun-if-changed={src}");
        let spv = out.join(format!("{name}.spv"));
        let status = Command::new(&compiler)
            .args(["-V", "--target-env", "vulkan1.1", "-o"])
            .arg(&spv)
            .arg(&src)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{compiler} failed on {src} ({s})"),
            Err(e) => panic!(
                "cannot run {compiler} ({e}): install glslang-tools (scripts/deps.sh does), \
                 or set GLSLANG_VALIDATOR to its path"
            ),
        }
    }
    println!("cargo:rerun-if-env-changed=GLSLANG_VALIDATOR");
}
