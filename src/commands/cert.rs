//! `hyphae cert …` and `hyphae ca …`: offline enrolment and the CA certificate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use hyphae_core::identity::NodeKey;
use hyphae_core::paths::NodePaths;
use hyphae_core::pki::{request_certificate, EnrolmentBundle, Membership};

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
    /// Print the mesh CA certificate (PEM), e.g. to import into a browser.
    Export,
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
        CaCommand::Export => {
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
