//! The calling side.

use super::channel::{read_frame, write_frame};
use super::frame::{Frame, FrameKind};
use super::{decode_body, encode_body, Limits, Method, RpcChannel, RpcError};
use crate::transport::PeerConnection;

/// Calls a unary method on a peer and waits for its answer (bounded by the request timeout).
#[tracing::instrument(level = "debug", skip_all, fields(method = M::NAME, peer = %conn.peer))]
pub async fn call<M: Method>(
    conn: &PeerConnection,
    request: &M::Request,
    limits: &Limits,
) -> Result<M::Response, RpcError> {
    let body = encode_body(request)?;
    let exchange = async {
        let (mut send, mut recv) = conn.conn.open_bi().await?;
        write_frame(
            &mut send,
            &Frame::request(M::NAME, body),
            limits.max_frame_bytes,
        )
        .await?;
        send.finish()?;
        let frame = read_frame(&mut recv, limits.max_frame_bytes)
            .await?
            .ok_or_else(|| RpcError::Protocol("stream ended without a response".into()))?;
        match frame.kind {
            FrameKind::Response => decode_body(&frame.body),
            FrameKind::Error => Err(RpcError::Remote(decode_body(&frame.body)?)),
            other => Err(RpcError::Protocol(format!("unexpected {other:?} frame"))),
        }
    };
    tokio::time::timeout(limits.request_timeout, exchange)
        .await
        .map_err(|_| RpcError::Timeout(limits.request_timeout))?
}

/// Opens a streaming call: sends the request and returns the channel for items both ways.
#[tracing::instrument(level = "debug", skip_all, fields(method = M::NAME, peer = %conn.peer))]
pub async fn open<M: Method>(
    conn: &PeerConnection,
    request: &M::Request,
    limits: &Limits,
) -> Result<RpcChannel, RpcError> {
    let body = encode_body(request)?;
    let (mut send, recv) = conn.conn.open_bi().await?;
    write_frame(
        &mut send,
        &Frame::request(M::NAME, body),
        limits.max_frame_bytes,
    )
    .await?;
    Ok(RpcChannel::new(send, recv, *limits))
}
