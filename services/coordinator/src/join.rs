//! Admission, the joiner's side: ask a member to be admitted, install the bundle.
//!
//! The node dials the admission endpoint of each configured peer in turn. With a join token it
//! verifies the server against the token's CA pin and is admitted at once; without one it is
//! recorded as pending and polls (the same request) until `hyphae admit` lets it in. A refusal
//! (expired, used-up, forged or foreign token; revoked node) stops the node with the reason.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hyphae_core::pki::{request_certificate, EnrolmentBundle, Membership};
use hyphae_core::rpc::{self, Limits};
use hyphae_core::transport::{ca_pin, MeshEndpoint};
use hyphae_core::NodeContext;
use tokio_util::sync::CancellationToken;

use crate::error::CoordinatorError;
use crate::methods::{Join, JoinOutcome, JoinRequest};
use crate::token::JoinToken;

/// The marker a joined node writes, so that it never mistakes itself for a mesh's founder.
pub const JOINED_MARKER: &str = "joined";

/// Parses a peer address: `IP`, `IP:PORT` or `[IPv6]:PORT`; a bare IP gets `default_port`.
pub fn parse_peer(text: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Some(sa);
    }
    text.trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, default_port))
}

/// Joins the mesh named by the configuration and returns the node's new membership.
pub async fn acquire_membership(
    ctx: &NodeContext,
    state_dir: &Path,
    shutdown: &CancellationToken,
) -> Result<Option<Membership>, CoordinatorError> {
    let mesh = &ctx.config.mesh;
    let token = match &mesh.join_token {
        Some(t) => Some(JoinToken::parse(t).map_err(|e| CoordinatorError::Join(e.to_string()))?),
        None => None,
    };
    let peers: Vec<SocketAddr> = mesh
        .peers
        .iter()
        .map(|p| {
            parse_peer(p, ctx.config.ports.admission).ok_or_else(|| {
                CoordinatorError::Join(format!("peer address {p:?} is not IP[:PORT]"))
            })
        })
        .collect::<Result<_, _>>()?;
    let endpoint =
        MeshEndpoint::admission_client(token.as_ref().map(|t| t.ca_pin), &ctx.config.transport)?;
    let request = JoinRequest {
        token: mesh.join_token.clone(),
        csr_pem: request_certificate(&ctx.key)?,
        name: ctx.name.clone(),
        coordinator_port: ctx.config.ports.coordinator,
        observed_ip: None,
    };
    let mut limits = Limits::from(&ctx.config.transport);
    limits.request_timeout = Duration::from_secs(15);
    let mut said_pending = false;
    tracing::info!(node = %ctx.key.node_id(), peers = ?peers, with_token = token.is_some(), "asking to join the mesh");
    loop {
        for peer in &peers {
            let conn = match endpoint.connect(*peer, None).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "admission endpoint not reachable");
                    continue;
                }
            };
            let outcome = match rpc::call::<Join>(&conn, &request, &limits).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "join request failed");
                    continue;
                }
            };
            match outcome {
                JoinOutcome::Admitted { bundle_toml } => {
                    let bundle: EnrolmentBundle = toml::from_str(&bundle_toml)
                        .map_err(|e| CoordinatorError::Join(format!("bad bundle: {e}")))?;
                    install(ctx, state_dir, &bundle, token.as_ref())?;
                    let membership = Membership::load(&ctx.paths.identity_dir(), ctx.key.clone())?;
                    tracing::info!(mesh = %bundle.mesh.mesh_id, "admitted to the mesh");
                    return Ok(membership);
                }
                JoinOutcome::Pending { node } => {
                    if !said_pending {
                        tracing::info!(
                            "waiting to be admitted: run `hyphae admit {node}` on a member"
                        );
                        said_pending = true;
                    }
                    break;
                }
                JoinOutcome::Unavailable { reason } => {
                    tracing::info!(%peer, %reason, "admission not possible right now; retrying");
                    continue;
                }
                JoinOutcome::Refused { reason } => {
                    tracing::error!(%peer, %reason, "admission refused");
                    return Err(CoordinatorError::Join(format!(
                        "refused by {peer}: {reason}"
                    )));
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn install(
    ctx: &NodeContext,
    state_dir: &Path,
    bundle: &EnrolmentBundle,
    token: Option<&JoinToken>,
) -> Result<(), CoordinatorError> {
    if let Some(token) = token {
        let ca = pem::parse(&bundle.ca_cert)
            .map_err(|e| CoordinatorError::Join(format!("bad CA certificate in bundle: {e}")))?;
        if ca_pin(ca.contents()) != token.ca_pin {
            return Err(CoordinatorError::Join(
                "the bundle's CA does not match the join token's pin".into(),
            ));
        }
    }
    std::fs::create_dir_all(state_dir)
        .map_err(|e| CoordinatorError::Join(format!("{}: {e}", state_dir.display())))?;
    std::fs::write(state_dir.join(JOINED_MARKER), b"joined\n")
        .map_err(|e| CoordinatorError::Join(format!("{}: {e}", state_dir.display())))?;
    bundle.install(&ctx.paths.identity_dir(), &ctx.key)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse() {
        assert_eq!(parse_peer("10.0.0.1", 7445), "10.0.0.1:7445".parse().ok());
        assert_eq!(parse_peer("10.0.0.1:9", 7445), "10.0.0.1:9".parse().ok());
        assert_eq!(parse_peer("[::1]:9", 7445), "[::1]:9".parse().ok());
        assert_eq!(parse_peer("::1", 7445), "[::1]:7445".parse().ok());
        assert_eq!(parse_peer("host", 7445), None);
    }
}
