//! Forming meshes in tests with the binary's own offline verbs (`init`, `cert …`), before the
//! nodes start. Admission over the network (join tokens) belongs to the coordinator's tests.

use anyhow::{Context, Result};

use crate::node::Node;

/// Runs `hyphae init` on `founder` (not running yet) and returns the new mesh id.
pub fn init_mesh(founder: &Node) -> Result<String> {
    let out = founder.setup(&["init"]).context("hyphae init")?;
    Ok(out.stdout_trimmed().to_string())
}

/// Enrols `node` into the mesh whose CA `ca_holder` holds, via a certificate request and an
/// enrolment bundle written in `node`'s state dir. Neither node may be running.
pub fn enrol_offline(ca_holder: &Node, node: &Node) -> Result<()> {
    let csr = node.state_dir().join("enrol.csr");
    let bundle = node.state_dir().join("enrol.bundle");
    let csr_s = csr.to_string_lossy().into_owned();
    let bundle_s = bundle.to_string_lossy().into_owned();
    node.setup(&["cert", "request", "--out", &csr_s])
        .context("cert request")?;
    ca_holder
        .setup(&["cert", "sign", &csr_s, "--out", &bundle_s])
        .context("cert sign")?;
    node.setup(&["cert", "install", &bundle_s])
        .context("cert install")?;
    let _ = std::fs::remove_file(&bundle); // it carries the mesh secrets
    Ok(())
}
