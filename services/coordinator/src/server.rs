//! The coordinator's RPC handlers: Raft and member requests (mutual TLS), and admission
//! (anonymous; nothing but join).

use std::sync::Arc;
use std::time::Instant;

use hyphae_core::pki::{CertificateAuthority, WebCertificateAuthority};
use hyphae_core::rpc::{ErrorCode, Peer, Router, RpcFault};
use hyphae_core::transport::ServiceSpec;

use crate::methods::{
    Admit, ForwardJoin, GatewayCert, Heartbeat, HeartbeatAck, InstallCa, InstallWebCa, Join,
    LinearizableRead, RaftAppend, RaftSnapshot, RaftVote, Write,
};
use crate::service::Coordinator;

/// Every request from a member is checked against the live revocation list, so a node revoked
/// after its connection was made is refused from the next request on.
fn member(coord: &Coordinator, peer: &Peer) -> Result<(), RpcFault> {
    if coord.membership.revocations.is_revoked(&peer.node) {
        tracing::warn!(node = %peer.node, "refused a request from a revoked node");
        return Err(RpcFault::new(ErrorCode::Forbidden, "this node is revoked"));
    }
    Ok(())
}

/// The member-facing router (coordinator endpoint, mutual TLS).
pub fn member_router(coord: Arc<Coordinator>) -> Router {
    let c1 = coord.clone();
    let c2 = coord.clone();
    let c3 = coord.clone();
    let c4 = coord.clone();
    let c5 = coord.clone();
    let c6 = coord.clone();
    let c7 = coord.clone();
    let c8 = coord.clone();
    let c9 = coord.clone();
    let c10 = coord.clone();
    let c11 = coord.clone();
    Router::new(ServiceSpec::COORDINATOR, coord.id)
        .unary::<RaftAppend, _, _>(move |peer, req| {
            let c = c1.clone();
            async move {
                member(&c, &peer)?;
                Ok(c.raft.append_entries(req).await)
            }
        })
        .unary::<RaftVote, _, _>(move |peer, req| {
            let c = c2.clone();
            async move {
                member(&c, &peer)?;
                Ok(c.raft.vote(req).await)
            }
        })
        .unary::<RaftSnapshot, _, _>(move |peer, req| {
            let c = c3.clone();
            async move {
                member(&c, &peer)?;
                Ok(c.raft.install_snapshot(req).await)
            }
        })
        .unary::<Write, _, _>(move |peer, cmd| {
            let c = c4.clone();
            async move {
                member(&c, &peer)?;
                Ok(c.write_for_member(cmd).await)
            }
        })
        .unary::<Heartbeat, _, _>(move |peer, req| {
            let c = c5.clone();
            async move {
                member(&c, &peer)?;
                let queen = c.is_queen();
                if queen {
                    if let Ok(mut l) = c.liveness.lock() {
                        l.heartbeat(peer.node, Instant::now(), req.uptime_s);
                    }
                }
                Ok(HeartbeatAck { queen })
            }
        })
        .unary::<InstallCa, _, _>(move |peer, key_pem| {
            let c = c6.clone();
            async move {
                member(&c, &peer)?;
                if c.queen().map(|(q, _)| q) != Some(peer.node) {
                    return Ok(Err("only the queen hands out the CA key".to_string()));
                }
                Ok(CertificateAuthority::install_key(
                    &c.identity_dir,
                    c.membership.secrets.mesh_id,
                    &key_pem,
                )
                .map_err(|e| e.to_string()))
            }
        })
        .unary::<ForwardJoin, _, _>(move |peer, req| {
            let c = c7.clone();
            async move {
                member(&c, &peer)?;
                if !c.is_queen() {
                    return Err(RpcFault::new(ErrorCode::Unavailable, "not the queen"));
                }
                Ok(c.join_as_queen(req).await)
            }
        })
        .unary::<Admit, _, _>(move |peer, node| {
            let c = c8.clone();
            async move {
                member(&c, &peer)?;
                Ok(c.admit_as_queen(node).await)
            }
        })
        .unary::<LinearizableRead, _, _>(move |peer, (table, key)| {
            let c = c9.clone();
            async move {
                member(&c, &peer)?;
                if !c.is_queen() {
                    return Ok(Err("not the queen".to_string()));
                }
                Ok(c.read_barrier()
                    .await
                    .map(|_| crate::command::Kv::get(&c.view, &table, &key))
                    .map_err(|e| e.to_string()))
            }
        })
        .unary::<GatewayCert, _, _>(move |peer, csr_pem| {
            let c = c10.clone();
            async move {
                member(&c, &peer)?;
                if !c.is_queen() {
                    return Ok(Err("not the queen".to_string()));
                }
                Ok(c.sign_gateway_cert_as_queen(peer.node, &csr_pem))
            }
        })
        .unary::<InstallWebCa, _, _>(move |peer, (cert_pem, key_pem)| {
            let c = c11.clone();
            async move {
                member(&c, &peer)?;
                if c.queen().map(|(q, _)| q) != Some(peer.node) {
                    return Ok(Err("only the queen hands out the web CA".to_string()));
                }
                Ok(WebCertificateAuthority::install(
                    &c.identity_dir,
                    c.membership.secrets.mesh_id,
                    &cert_pem,
                    &key_pem,
                )
                .map_err(|e| e.to_string()))
            }
        })
}

/// The admission router (admission endpoint, no client certificate): join only.
pub fn admission_router(coord: Arc<Coordinator>) -> Router {
    let c = coord.clone();
    Router::new(ServiceSpec::ADMISSION, coord.id).unary::<Join, _, _>(move |peer, mut req| {
        let c = c.clone();
        async move {
            req.observed_ip = Some(peer.addr.ip().to_canonical().to_string());
            Ok(c.handle_join(req).await)
        }
    })
}
