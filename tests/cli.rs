//! The `hyphae` CLI as a user meets it: global options in any position, config errors that name
//! the key and the file, identity files, enrolment mistakes refused with a clear message.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn hyphae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hyphae"))
        .args(args)
        .env_remove("HYPHAE_STATE_DIR")
        .env_remove("HYPHAE_CONFIG")
        .output()
        .expect("run hyphae")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn init_prints_the_mesh_id_and_keeps_secrets_private() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let out = hyphae(&["--state-dir", d, "init"]);
    assert!(out.status.success(), "{}", text(&out));
    let mesh = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(mesh.len(), 16, "{}", text(&out));
    for (file, mode) in [
        ("node.key", 0o600),
        ("ca.key", 0o600),
        ("mesh.toml", 0o600),
        ("node.crt", 0o644),
        ("ca.crt", 0o644),
        ("web-ca.key", 0o600),
        ("web-ca.crt", 0o644),
    ] {
        let m = std::fs::metadata(dir.path().join("identity").join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, mode, "{file}");
    }
    // A second init is refused: one node, one mesh.
    let again = hyphae(&["init", "--state-dir", d]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains(&mesh),
        "{}",
        text(&again)
    );
    // Both CA certificates can be exported: the web CA by default, the mesh CA with --mesh.
    let web = hyphae(&["ca", "export", "--state-dir", d]);
    let web = String::from_utf8_lossy(&web.stdout).to_string();
    assert!(web.starts_with("-----BEGIN CERTIFICATE-----"), "{web}");
    let on_disk = std::fs::read_to_string(dir.path().join("identity/web-ca.crt")).unwrap();
    assert_eq!(web, on_disk);
    let mesh_ca = hyphae(&["ca", "export", "--mesh", "--state-dir", d]);
    let mesh_ca = String::from_utf8_lossy(&mesh_ca.stdout).to_string();
    assert!(
        mesh_ca.starts_with("-----BEGIN CERTIFICATE-----"),
        "{mesh_ca}"
    );
    assert_ne!(web, mesh_ca);
}

#[test]
fn global_options_work_before_and_after_the_verb() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    std::fs::write(dir.path().join("hyphae.toml"), "[ports]\nnoed = 1\n").unwrap();
    for args in [
        vec!["--state-dir", d, "status"],
        vec!["status", "--state-dir", d],
    ] {
        let out = hyphae(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        // The default config of a state dir is DIR/hyphae.toml, and its errors name key and file.
        assert!(err.contains("ports.noed"), "{}", text(&out));
        assert!(err.contains(&format!("{d}/hyphae.toml")), "{}", text(&out));
    }
}

#[test]
fn config_errors_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let cfg = dir.path().join("custom.toml");
    let cases = [
        (
            "[transport]\nidle_timeout = \"forever\"\n",
            "transport.idle_timeout",
        ),
        ("[ports]\nnode = 70000\n", "ports.node"),
        ("[node]\nname = \"bad name\"\n", "node.name"),
        ("[nope]\n", "nope"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
    ];
    for (toml, key) in cases {
        std::fs::write(&cfg, toml).unwrap();
        let out = hyphae(&["--state-dir", d, "--config", s(&cfg), "node"]);
        assert!(!out.status.success(), "{toml} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(key) && err.contains(s(&cfg)),
            "{toml}: {}",
            text(&out)
        );
    }
    // A --config that does not exist is refused; a missing default config is fine.
    let out = hyphae(&[
        "--state-dir",
        d,
        "--config",
        "/nonexistent/h.toml",
        "status",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/h.toml does not exist"),
        "{}",
        text(&out)
    );
}

#[test]
fn enrolment_checks_what_it_installs() {
    let ca = tempfile::tempdir().unwrap();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    assert!(hyphae(&["--state-dir", s(ca.path()), "init"])
        .status
        .success());
    let csr = a.path().join("a.csr");
    let bundle = a.path().join("a.bundle");
    assert!(hyphae(&[
        "--state-dir",
        s(a.path()),
        "cert",
        "request",
        "--out",
        s(&csr)
    ])
    .status
    .success());
    let out = hyphae(&[
        "--state-dir",
        s(ca.path()),
        "cert",
        "sign",
        s(&csr),
        "--out",
        s(&bundle),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A bundle made for node a cannot be installed on node b.
    let out = hyphae(&["--state-dir", s(b.path()), "cert", "install", s(&bundle)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bundle is for node"),
        "{}",
        text(&out)
    );
    // A node that is not a member cannot sign.
    let out = hyphae(&[
        "--state-dir",
        s(b.path()),
        "cert",
        "sign",
        s(&csr),
        "--out",
        "/dev/null",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a member"),
        "{}",
        text(&out)
    );
    // A garbled request is refused.
    std::fs::write(
        &csr,
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    let out = hyphae(&[
        "--state-dir",
        s(ca.path()),
        "cert",
        "sign",
        s(&csr),
        "--out",
        s(&bundle),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate request refused"),
        "{}",
        text(&out)
    );
    // The right node installs it and becomes a member.
    let csr = a.path().join("a2.csr");
    assert!(hyphae(&[
        "--state-dir",
        s(a.path()),
        "cert",
        "request",
        "--out",
        s(&csr)
    ])
    .status
    .success());
    assert!(hyphae(&[
        "--state-dir",
        s(ca.path()),
        "cert",
        "sign",
        s(&csr),
        "--out",
        s(&bundle)
    ])
    .status
    .success());
    let out = hyphae(&["--state-dir", s(a.path()), "cert", "install", s(&bundle)]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_readable_node_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    assert!(hyphae(&["--state-dir", d, "init"]).status.success());
    let key = dir.path().join("identity/node.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = hyphae(&["--state-dir", d, "cert", "request"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be 0600"),
        "{}",
        text(&out)
    );
}

#[test]
fn doctor_and_version_explain_themselves() {
    let out = hyphae(&["doctor", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for want in ["io_uring", "kvm", "vulkan", "cgroup v2", "ipv6", "disk"] {
        assert!(names.contains(&want), "{names:?}");
    }
    let v = hyphae(&["version"]);
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("hyphae "));
    let help = hyphae(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--state-dir"));
}
