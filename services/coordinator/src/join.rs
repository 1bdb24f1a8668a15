//! Admission, the joiner's side: ask a member to be admitted, install the bundle.
//!
//! The node dials the admission endpoint of each configured peer in turn. With a join token it
//! verifies the server against the token's CA pin and is admitted at once; without one it is
//! recorded as pending and polls (the same request) until `hyphae admit` lets it in. A refusal
//! (expired, used-up, forged or foreign token; revoked node) stops the node with the reason.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hyphae_core::pki::{request_certificate, EnrolmentBundle, Membership};
use hyphae_core::rpc::{self, Limits};
use hyphae_core::transport::{ca_pin, MeshEndpoint};
use hyphae_core::{NodeContext, NodeId};
use tokio_util::sync::CancellationToken;

use crate::error::CoordinatorError;
use crate::genesis::Genesis;
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
    let discover = peers.is_empty();
    tracing::info!(node = %ctx.key.node_id(), peers = ?peers, with_token = token.is_some(), discover, "asking to join the mesh");
    loop {
        let round = if discover {
            match discovered(ctx).await {
                Discovered::Found(found) => found,
                Discovered::Nothing => Vec::new(),
                Discovered::Init(electorate)
                    if token.is_none() && ctx.config.discovery.auto_init =>
                {
                    let membership = Membership::init(&ctx.paths.identity_dir(), ctx.key.clone())?;
                    tracing::info!(mesh = %membership.secrets.mesh_id, "auto_init: founded a new mesh");
                    open_genesis(ctx, state_dir, electorate);
                    return Ok(Some(membership));
                }
                Discovered::Init(_) => Vec::new(),
            }
        } else {
            peers.clone()
        };
        for peer in &round {
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
        // Waiting for discovery is cheap (a local socket): ask often, the mesh is found fast.
        let pause = if discover && round.is_empty() {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// What the node's beacon service has found.
enum Discovered {
    /// Admission endpoints of the mesh, in the order of the discovery chain.
    Found(Vec<SocketAddr>),
    /// No mesh heard, and this node won the auto-init election; the `auto_init` nodes it
    /// heard meanwhile (for the genesis window).
    Init(BTreeSet<NodeId>),
    /// Nothing yet (or the beacon is not running).
    Nothing,
}

/// Asks the beacon (`<run>/beacon.sock`, `GET /peers`): under systemd it is another process.
async fn discovered(ctx: &NodeContext) -> Discovered {
    let socket = ctx.paths.socket("beacon");
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        hyphae_core::ipc::get_json(&socket, "/peers"),
    )
    .await;
    let value = match answer {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "beacon not answering yet");
            return Discovered::Nothing;
        }
        Err(_) => return Discovered::Nothing,
    };
    if value["init"].as_bool() == Some(true) {
        let electorate = value["genesis"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str()?.parse::<NodeId>().ok())
                    .collect()
            })
            .unwrap_or_default();
        return Discovered::Init(electorate);
    }
    let found: Vec<SocketAddr> = value["admission"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str()?.parse::<SocketAddr>().ok())
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() {
        Discovered::Nothing
    } else {
        tracing::debug!(found_by = %value["found_by"], peers = ?found, "discovery found the mesh");
        Discovered::Found(found)
    }
}

/// Opens the founder's genesis window (`crate::genesis`) for the nodes heard in the election.
/// Failing to write it only means those nodes wait to be admitted by hand.
fn open_genesis(ctx: &NodeContext, state_dir: &Path, electorate: BTreeSet<NodeId>) {
    let window = ctx.config.discovery.genesis_window;
    let Some(genesis) = Genesis::open(electorate, crate::service::now_unix(), window) else {
        return;
    };
    match genesis.save(state_dir) {
        Ok(()) => tracing::info!(
            nodes = ?genesis.nodes,
            window_s = window.as_secs(),
            "auto_init: genesis window open for the nodes heard in the election"
        ),
        Err(e) => tracing::warn!(error = %e, "genesis window not opened"),
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
