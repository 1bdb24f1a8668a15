//! Builds the web dashboard (`web/`, TypeScript bundled by esbuild) and embeds it.
//!
//! 1. `npm ci` installs the locked packages once per lockfile into a cache directory outside
//!    the clone (`$HYPHAE_NPM_MODULES`, else `/var/cache/hyphae/npm-modules`, else `OUT_DIR`),
//!    from npm's cache (`$HYPHAE_NPM_CACHE`, else `/var/cache/hyphae/npm`) when it can.
//! 2. `node web/build.mjs` bundles the sources into `OUT_DIR/dist`.
//! 3. `OUT_DIR/assets.rs` maps each file to its bytes (`include_bytes!`), content type and a
//!    strong ETag (BLAKE3 of the bytes); `src/lib.rs` includes it.
//!
//! Cargo reruns this only when the sources, the lockfile or the settings above change.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const NPM_HINT: &str = "run scripts/deps.sh (as root) to install Node.js and npm";

fn main() {
    if let Err(e) = build() {
        // A build script reports failure by exiting non-zero; the message is what cargo shows.
        eprintln!("\nhyphae-dashboard: {e}\n");
        std::process::exit(1);
    }
}

fn build() -> Result<(), String> {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(env("OUT_DIR")?);
    let web = manifest.join("web");
    for p in [
        "src",
        "static",
        "build.mjs",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(p).display());
    }
    for v in ["HYPHAE_NPM_MODULES", "HYPHAE_NPM_CACHE"] {
        println!("cargo:rerun-if-env-changed={v}");
    }

    check_node()?;
    let modules = install(&web, &out)?;
    println!(
        "cargo:rustc-env=HYPHAE_DASHBOARD_NODE_MODULES={}",
        modules.display()
    );

    let dist = out.join("dist");
    if dist.exists() {
        fs::remove_dir_all(&dist).map_err(|e| format!("clearing {}: {e}", dist.display()))?;
    }
    run(
        Command::new("node")
            .arg(web.join("build.mjs"))
            .arg("--out")
            .arg(&dist)
            .arg("--node-modules")
            .arg(&modules),
        "bundling the dashboard (node web/build.mjs)",
    )?;
    fs::write(out.join("assets.rs"), generate(&dist)?)
        .map_err(|e| format!("writing assets.rs: {e}"))?;
    Ok(())
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (not run by cargo?)"))
}

/// Node.js 18 or newer (Debian 12's) and npm must be on PATH.
fn check_node() -> Result<(), String> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("Node.js is needed to build the dashboard but `node` could not run ({e}); {NPM_HINT}"))?;
    let text = String::from_utf8_lossy(&version.stdout);
    let major: u32 = text
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 18 {
        return Err(format!(
            "the dashboard needs Node.js 18 or newer, found {:?}; {NPM_HINT}",
            text.trim()
        ));
    }
    Command::new("npm").arg("--version").output().map_err(|e| {
        format!("npm is needed to build the dashboard but could not run ({e}); {NPM_HINT}")
    })?;
    Ok(())
}

/// Installs the locked npm packages once per lockfile; returns their `node_modules`.
fn install(web: &Path, out: &Path) -> Result<PathBuf, String> {
    let package = read(&web.join("package.json"))?;
    let lock = read(&web.join("package-lock.json"))?;
    let mut h = blake3::Hasher::new();
    h.update(&package);
    h.update(&lock);
    let key = h.finalize().to_hex()[..16].to_string();

    let root = modules_root(out);
    let dir = root.join(format!("dashboard-{key}"));
    let stamp = dir.join("installed");
    if stamp.exists() {
        return Ok(dir.join("node_modules"));
    }
    // Install into a private directory and rename it into place, so builds in other target
    // directories sharing the cache never see a half-installed tree.
    let tmp = root.join(format!(".tmp-dashboard-{key}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    fs::write(tmp.join("package.json"), &package).map_err(|e| e.to_string())?;
    fs::write(tmp.join("package-lock.json"), &lock).map_err(|e| e.to_string())?;
    let cache =
        std::env::var("HYPHAE_NPM_CACHE").unwrap_or_else(|_| "/var/cache/hyphae/npm".into());
    run(
        Command::new("npm")
            .args([
                "ci",
                "--prefer-offline",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
            ])
            .args(["--loglevel", "error", "--cache"])
            .arg(&cache)
            .current_dir(&tmp),
        "installing the dashboard's npm packages (npm ci)",
    )?;
    fs::write(tmp.join("installed"), b"").map_err(|e| e.to_string())?;
    if fs::rename(&tmp, &dir).is_err() {
        // Another build won the race; its tree is complete (it has the stamp).
        let _ = fs::remove_dir_all(&tmp);
        if !stamp.exists() {
            return Err(format!(
                "could not move the npm install into {}",
                dir.display()
            ));
        }
    }
    Ok(dir.join("node_modules"))
}

fn modules_root(out: &Path) -> PathBuf {
    if let Ok(d) = std::env::var("HYPHAE_NPM_MODULES") {
        return PathBuf::from(d);
    }
    let shared = PathBuf::from("/var/cache/hyphae/npm-modules");
    if fs::create_dir_all(&shared).is_ok() && writable(&shared) {
        return shared;
    }
    out.join("npm")
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    let ok = fs::write(&probe, b"").is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: could not start ({e}); {NPM_HINT}"))?;
    if !status.success() {
        return Err(format!("{what} failed ({status})"));
    }
    Ok(())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Rust source with one `match` arm per built file.
fn generate(dist: &Path) -> Result<String, String> {
    let mut files = Vec::new();
    collect(dist, dist, &mut files)?;
    files.sort();
    let mut src = String::from(
        "/// The built file at `path`, if any (generated by build.rs).\n\
         fn lookup(path: &str) -> Option<Asset> {\n    match path {\n",
    );
    for (rel, abs) in &files {
        let bytes = read(abs)?;
        let etag = format!("\"{}\"", &blake3::hash(&bytes).to_hex()[..32]);
        let _ = writeln!(
            src,
            "        {rel:?} => Some(Asset {{ bytes: include_bytes!({abs:?}), content_type: {ct:?}, etag: {etag:?} }}),",
            abs = abs.display().to_string(),
            ct = content_type(rel),
        );
    }
    src.push_str("        _ => None,\n    }\n}\n\n/// Every built file's path (generated by build.rs).\npub const PATHS: &[&str] = &[");
    for (rel, _) in &files {
        let _ = write!(src, "{rel:?}, ");
    }
    src.push_str("];\n");
    Ok(src)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, path));
        }
    }
    Ok(())
}
