//! `hyphae cert …` and `hyphae ca …`: offline enrolment and the CA certificate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use hyphae_coordinator::web_ca::{PKI_TABLE, WEB_CA_CERT_KEY};
use hyphae_core::identity::NodeKey;
use hyphae_core::paths::NodePaths;
use hyphae_core::pki::{request_certificate, web_ca_cert_path, EnrolmentBundle, Membership};

/// `hyphae cert …`
#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Write a certificate signing request for this node's key (step 1, on the new node).
    Request {
        /// Where to write the request (PEM); `-` for standard output.
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
    /// Sign a request into an enrolment bundle (step 2, on a node that holds the mesh CA).
    Sign {
        /// The request written by `hyphae cert request`.
        csr: PathBuf,
        /// Where to write the bundle (mode 0600: it carries the mesh secrets).
        #[arg(long)]
        out: PathBuf,
    },
    /// Install an enrolment bundle, making this node a member (step 3, on the new node).
    Install {
        /// The bundle written by `hyphae cert sign`.
        bundle: PathBuf,
    },
}

/// `hyphae ca …`
#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Print the web CA certificate (PEM, ECDSA P-256) that signs every gateway's HTTPS
    /// certificate: import it into a browser or pass it to `curl --cacert`.
    Export {
        /// Print the mesh CA (Ed25519, node certificates for the mesh's mutual TLS) instead.
        #[arg(long)]
        mesh: bool,
    },
}

/// Runs a `cert` verb.
pub fn run(paths: &NodePaths, cmd: CertCommand) -> anyhow::Result<ExitCode> {
    let dir = paths.identity_dir();
    let key = Arc::new(NodeKey::load_or_create(&dir).context("node identity")?);
    match cmd {
        CertCommand::Request { out } => {
            let pem = request_certificate(&key)?;
            if out.as_os_str() == "-" {
                print!("{pem}");
            } else {
                std::fs::write(&out, pem).with_context(|| format!("writing {}", out.display()))?;
                eprintln!(
                    "wrote the request of node {} to {}",
                    key.node_id(),
                    out.display()
                );
            }
        }
        CertCommand::Sign { csr, out } => {
            let membership = Membership::load(&dir, key)?
                .ok_or_else(|| anyhow!("this node is not a member of a mesh, so it cannot sign"))?;
            let ca = membership.certificate_authority(&dir)?;
            let pem = std::fs::read_to_string(&csr)
                .with_context(|| format!("reading {}", csr.display()))?;
            let bundle = EnrolmentBundle::issue(&ca, &membership.secrets, &pem)?;
            bundle.store(&out)?;
            eprintln!(
                "signed node {} into mesh {}; bundle written to {} (keep it private)",
                bundle.node_id,
                membership.secrets.mesh_id,
                out.display()
            );
        }
        CertCommand::Install { bundle } => {
            if let Some(existing) = Membership::load(&dir, key.clone())? {
                return Err(anyhow!(
                    "this node is already a member of mesh {}",
                    existing.secrets.mesh_id
                ));
            }
            let b = EnrolmentBundle::load(&bundle)?;
            b.install(&dir, &key)?;
            eprintln!(
                "node {} is now a member of mesh {}",
                key.node_id(),
                b.mesh.mesh_id
            );
            println!("{}", b.mesh.mesh_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `ca` verb.
pub fn run_ca(paths: &NodePaths, cmd: CaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CaCommand::Export { mesh: false } => print!("{}", web_ca_pem(paths)?),
        CaCommand::Export { mesh: true } => {
            let path = Membership::ca_cert_path(&paths.identity_dir());
            let pem = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no mesh CA certificate at {} (is this node a member?)",
                    path.display()
                )
            })?;
            print!("{pem}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The web CA certificate: from this node's identity directory when it holds the web CA, else as
/// published in the key space (through the local coordinator).
fn web_ca_pem(paths: &NodePaths) -> anyhow::Result<String> {
    let local = web_ca_cert_path(&paths.identity_dir());
    if let Ok(pem) = std::fs::read_to_string(&local) {
        return Ok(pem);
    }
    let answer = super::coordinator::request(
        paths,
        "GET",
        &format!("/kv/{PKI_TABLE}/{WEB_CA_CERT_KEY}"),
        None,
    )
    .context(
        "this node holds no web CA and its coordinator has none published yet (a new mesh \
         publishes it a few seconds after founding: try again)",
    )?;
    let pem = answer["value"].as_str().unwrap_or_default();
    if pem.is_empty() {
        return Err(anyhow!("the mesh has not published a web CA yet"));
    }
    Ok(pem.to_string())
}
