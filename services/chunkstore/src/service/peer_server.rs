//! The serving side of the shard RPCs: other nodes' puts, gets, deletes and verifies against
//! this node's local store.

use bytes::BytesMut;
use futures::FutureExt;
use hyphae_core::rpc::{ErrorCode, Router, RpcFault};
use hyphae_core::transport::ServiceSpec;
use hyphae_core::NodeId;

use std::sync::Arc;

use super::assets::{serve_asset, AssetShelf};
use crate::asset_rpc::AssetGet;
use crate::ids::ShardHash;
use crate::local::{ShardId, ShardStore, StoreError};
use crate::shard_rpc::{ShardAck, ShardDelete, ShardGet, ShardHeader, ShardPut, ShardVerify};

/// The local store's id for a shard.
pub fn local_id(id: &ShardHash) -> ShardId {
    ShardId(id.0)
}

/// Largest shard accepted from a peer (a 64 MiB chunk in one data shard, plus the tag).
pub const MAX_SHARD_BYTES: u64 = (64 << 20) + 64;

fn fault(e: StoreError) -> RpcFault {
    let code = match e {
        StoreError::NotFound(_) => ErrorCode::NotFound,
        StoreError::Full { .. } => ErrorCode::InsufficientStorage,
        StoreError::Closed => ErrorCode::Unavailable,
        StoreError::TooLarge { .. } => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    RpcFault::new(code, e.to_string())
}

fn stream(e: impl std::fmt::Display) -> RpcFault {
    RpcFault::new(ErrorCode::BadRequest, format!("stream: {e}"))
}

/// The chunkstore's RPC router over `store`.
pub fn router(local: NodeId, store: ShardStore, assets: Arc<AssetShelf>) -> Router {
    let put_store = store.clone();
    let get_store = store.clone();
    let del_store = store.clone();
    let verify_store = store;
    Router::new(ServiceSpec::CHUNKSTORE, local)
        .streaming::<ShardPut, _>(move |peer, req, ch| {
            let store = put_store.clone();
            async move {
                if req.len > MAX_SHARD_BYTES {
                    return Err(RpcFault::new(
                        ErrorCode::BadRequest,
                        format!("shard of {} bytes exceeds {MAX_SHARD_BYTES}", req.len),
                    ));
                }
                let mut buf = BytesMut::zeroed(req.len as usize);
                ch.raw_mut().1.read_exact(&mut buf).await.map_err(stream)?;
                let data = buf.freeze();
                if ShardHash::of(&data) != req.id {
                    return Err(RpcFault::new(
                        ErrorCode::BadRequest,
                        format!("shard {} does not match its bytes", req.id),
                    ));
                }
                let existed = store.contains(&local_id(&req.id));
                if !existed {
                    store.put(local_id(&req.id), data).await.map_err(fault)?;
                }
                tracing::debug!(from = %peer.node, shard = %req.id, existed, "shard stored");
                ch.send_item(&ShardAck { existed }).await.map_err(stream)?;
                ch.end().await.map_err(stream)?;
                Ok(())
            }
            .boxed()
        })
        .streaming::<ShardGet, _>(move |_peer, req, ch| {
            let store = get_store.clone();
            async move {
                let data = store.get(&local_id(&req.id)).await.map_err(fault)?;
                ch.send_item(&ShardHeader {
                    len: data.len() as u64,
                })
                .await
                .map_err(stream)?;
                let (send, _) = ch.raw_mut();
                send.write_chunk(data).await.map_err(stream)?;
                send.finish().map_err(stream)?;
                Ok(())
            }
            .boxed()
        })
        .unary::<ShardDelete, _, _>(move |_peer, req| {
            let store = del_store.clone();
            async move { store.delete(&local_id(&req.id)).await.map_err(fault) }
        })
        .streaming::<AssetGet, _>(move |peer, req, ch| {
            let shelf = assets.clone();
            async move {
                tracing::debug!(from = %peer.node, asset = %req.hash, "asset requested");
                serve_asset(&shelf, &req.hash, ch).await
            }
            .boxed()
        })
        .unary::<ShardVerify, _, _>(move |_peer, req| {
            let store = verify_store.clone();
            async move {
                match store.verify(&local_id(&req.id)).await {
                    Ok(()) => Ok(true),
                    Err(StoreError::NotFound(_)) | Err(StoreError::Corrupt { .. }) => Ok(false),
                    Err(e) => Err(fault(e)),
                }
            }
        })
}
