//! Caddy 2.6 (Debian's package) as the gateway's anchor: started in the node's network namespace
//! with a Caddyfile that serves a directory over HTTP/1.1, HTTP/2 and HTTP/3 on one port, using
//! the gateway's own certificate chain and key (so both servers present the same ECDSA P-256
//! certificate, signed by the mesh's web CA, and the client trusts one CA).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

/// A running Caddy; killed when dropped.
pub struct Caddy {
    child: Child,
    log: PathBuf,
}

/// The Caddyfile: `default_sni` = the address, because a client connecting to an IP sends no
/// SNI and Caddy's QUIC listener then finds no certificate (TLS alert 80) where its TCP one
/// falls back to the local address; no admin endpoint, no HTTP->HTTPS redirect listener, h1/h2/h3 on, a plain
/// file server, no access log (the gateway writes none either).
fn caddyfile(addr: SocketAddr, cert: &Path, key: &Path, root: &Path) -> String {
    format!(
        "{{\n\tadmin off\n\tdefault_sni {ip}\n\tauto_https disable_redirects\n\tservers {{\n\t\tprotocols h1 h2 h3\n\t}}\n}}\n\
         https://{ip}:{port} {{\n\ttls {cert} {key}\n\troot * {root}\n\tfile_server\n}}\n",
        ip = addr.ip(),
        port = addr.port(),
        cert = cert.display(),
        key = key.display(),
        root = root.display(),
    )
}

impl Caddy {
    /// Starts `caddy run` in namespace `netns`, serving `root` at `addr`; `dir` holds its
    /// Caddyfile, its data directories and its log.
    pub fn start(
        netns: &str,
        addr: SocketAddr,
        cert: &Path,
        key: &Path,
        root: &Path,
        dir: &Path,
    ) -> Result<Caddy> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join("Caddyfile");
        std::fs::write(&file, caddyfile(addr, cert, key, root))?;
        let log = dir.join("caddy.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "caddy",
                "run",
                "--adapter",
                "caddyfile",
            ])
            .arg("--config")
            .arg(&file)
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting caddy (apt install caddy; scripts/bench.sh does)")?;
        Ok(Caddy { child, log })
    }

    /// Its version line (`caddy version`).
    pub fn version() -> String {
        Command::new("caddy")
            .arg("version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// The last lines of its log, for errors.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        // `ip netns exec` execs caddy, so this pid is caddy's.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
