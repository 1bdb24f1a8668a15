//! One RPC stream seen as a channel of typed frames, for streaming calls.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use super::frame::{Frame, FrameKind};
use super::{decode_body, encode_body, FrameError, Limits, RpcError, RpcFault};

/// Reads one frame from a QUIC stream: `Ok(None)` when the stream ended cleanly between frames.
/// The length prefix is checked before the body is read, so an oversized frame costs nothing.
pub(crate) async fn read_frame(
    recv: &mut quinn::RecvStream,
    max: u32,
) -> Result<Option<Frame>, RpcError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(got)) => {
            return Err(FrameError::Truncated { got, expected: 4 }.into())
        }
        Err(quinn::ReadExactError::ReadError(e)) => return Err(RpcError::Stream(e.to_string())),
    }
    let len = Frame::check_len(u32::from_be_bytes(len), max)?;
    let mut payload = vec![0u8; len];
    match recv.read_exact(&mut payload).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(got)) => {
            return Err(FrameError::Truncated {
                got: got + 4,
                expected: len + 4,
            }
            .into())
        }
        Err(quinn::ReadExactError::ReadError(e)) => return Err(RpcError::Stream(e.to_string())),
    }
    Ok(Some(Frame::decode_payload(Bytes::from(payload))?))
}

/// Writes one frame.
pub(crate) async fn write_frame(
    send: &mut quinn::SendStream,
    frame: &Frame,
    max: u32,
) -> Result<(), RpcError> {
    let bytes = frame.encode(max)?;
    send.write_chunk(bytes).await?;
    Ok(())
}

/// Both halves of a call's stream, exchanging typed `Item` frames until `End`.
#[derive(Debug)]
pub struct RpcChannel {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    limits: Limits,
}

impl RpcChannel {
    pub(crate) fn new(send: quinn::SendStream, recv: quinn::RecvStream, limits: Limits) -> Self {
        RpcChannel { send, recv, limits }
    }

    /// Sends one item.
    pub async fn send_item<T: Serialize>(&mut self, item: &T) -> Result<(), RpcError> {
        let frame = Frame::new(FrameKind::Item, encode_body(item)?);
        write_frame(&mut self.send, &frame, self.limits.max_frame_bytes).await
    }

    /// Says there are no more items from this side and closes the sending half.
    pub async fn end(&mut self) -> Result<(), RpcError> {
        let frame = Frame::new(FrameKind::End, Vec::new());
        write_frame(&mut self.send, &frame, self.limits.max_frame_bytes).await?;
        self.send.finish()?;
        Ok(())
    }

    /// Ends the call with an error the other side will see as [`RpcError::Remote`].
    pub async fn fail(&mut self, fault: &RpcFault) -> Result<(), RpcError> {
        let frame = Frame::new(FrameKind::Error, encode_body(fault)?);
        write_frame(&mut self.send, &frame, self.limits.max_frame_bytes).await?;
        self.send.finish()?;
        Ok(())
    }

    /// Receives the next item: `None` after the other side's `End`. Waits at most the frame
    /// timeout for it.
    pub async fn recv_item<T: DeserializeOwned>(&mut self) -> Result<Option<T>, RpcError> {
        let wait = self.limits.frame_timeout;
        let frame = tokio::time::timeout(
            wait,
            read_frame(&mut self.recv, self.limits.max_frame_bytes),
        )
        .await
        .map_err(|_| RpcError::Timeout(wait))??;
        match frame {
            None => Err(RpcError::Protocol(
                "stream ended without an End frame".into(),
            )),
            Some(f) => match f.kind {
                FrameKind::Item => decode_body(&f.body).map(Some),
                FrameKind::End => Ok(None),
                FrameKind::Error => Err(RpcError::Remote(decode_body(&f.body)?)),
                other => Err(RpcError::Protocol(format!("unexpected {other:?} frame"))),
            },
        }
    }

    /// The raw QUIC streams, for bulk bytes that should not be framed (shards, memory pages).
    pub fn into_raw(self) -> (quinn::SendStream, quinn::RecvStream) {
        (self.send, self.recv)
    }

    /// Borrows the raw streams for an unframed stretch (bulk bytes after the request, say),
    /// keeping the channel for framed items afterwards. Both sides must agree on where the
    /// raw bytes end (a length sent first, or the sender finishing its half).
    pub fn raw_mut(&mut self) -> (&mut quinn::SendStream, &mut quinn::RecvStream) {
        (&mut self.send, &mut self.recv)
    }
}
