//! `hyphae init`: create a mesh.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use hyphae_core::config::Config;
use hyphae_core::identity::NodeKey;
use hyphae_core::paths::NodePaths;
use hyphae_core::pki::Membership;

/// Options of `hyphae init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {}

/// Creates the mesh CA, mesh id and secrets in this node's state directory; prints the mesh id.
pub fn run(paths: &NodePaths, _config: &Config, _args: &InitArgs) -> anyhow::Result<ExitCode> {
    let dir = paths.identity_dir();
    let key = Arc::new(NodeKey::load_or_create(&dir).context("node identity")?);
    let membership = Membership::init(&dir, key).context("creating the mesh")?;
    eprintln!(
        "created mesh {} with node {} as its first member (CA in {})",
        membership.secrets.mesh_id,
        membership.node_id(),
        dir.display()
    );
    println!("{}", membership.secrets.mesh_id);
    Ok(ExitCode::SUCCESS)
}
