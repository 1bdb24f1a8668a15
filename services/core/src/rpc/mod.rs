//! Request/response and streaming RPC over QUIC streams.
//!
//! Each call uses one bidirectional QUIC stream. Everything on it is a length-prefixed frame in a
//! versioned envelope ([`frame`]): the caller sends a `Request` frame naming the method, the
//! server answers with a `Response` (unary) or a sequence of `Item` frames closed by `End`
//! (streaming), or an `Error` frame. Frames larger than the configured maximum, truncated frames
//! and garbled frames close *that stream* with an error; the connection and every other stream
//! carry on. Bodies are postcard-encoded serde types; bulk transfers can take the raw QUIC
//! streams after the request ([`RpcChannel::into_raw`]) so bytes are not copied through frames.

mod channel;
mod client;
pub mod frame;
mod method;
mod server;

pub use channel::RpcChannel;
pub use client::{call, open};
pub use frame::{Frame, FrameDecoder, FrameError, FrameKind, ENVELOPE_VERSION};
pub use method::{Method, Ping, PingRequest, Pong};
pub use server::{serve, serve_anonymous, Peer, Router, RpcMetrics};

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::config::TransportSection;

/// Limits every RPC endpoint enforces, from `[transport]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest frame accepted or sent.
    pub max_frame_bytes: u32,
    /// How long one call may take, end to end (client side).
    pub request_timeout: Duration,
    /// How long a stream may sit silent between frames (server side).
    pub frame_timeout: Duration,
}

impl From<&TransportSection> for Limits {
    fn from(t: &TransportSection) -> Self {
        Limits {
            max_frame_bytes: t.max_frame_bytes,
            request_timeout: t.request_timeout,
            frame_timeout: t.frame_timeout,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from(&TransportSection::default())
    }
}

/// A machine-readable error class carried in `Error` frames; stable across versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame could not be decoded (too large, truncated, garbled, wrong version).
    BadFrame,
    /// No handler for the method on this service.
    UnknownMethod,
    /// The request body did not decode as the method's request type, or was invalid.
    BadRequest,
    /// The handler failed.
    Internal,
    /// The peer took too long.
    Timeout,
    /// The service cannot serve this now (shutting down, not ready, not the leader…).
    Unavailable,
    /// The caller is not allowed to do this.
    Forbidden,
    /// The thing asked for does not exist.
    NotFound,
    /// No room left to store what was sent (a full disk), as opposed to a passing failure:
    /// the caller should place it elsewhere instead of retrying here.
    InsufficientStorage,
}

/// The body of an `Error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct RpcFault {
    /// The error class.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

impl RpcFault {
    /// A fault of this class.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RpcFault {
        RpcFault {
            code,
            message: message.into(),
        }
    }
}

/// Why a call failed, seen from the caller.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The server answered with an error.
    #[error("remote error: {0}")]
    Remote(RpcFault),
    /// The stream broke or the connection was lost.
    #[error("stream: {0}")]
    Stream(String),
    /// A frame from the peer was malformed.
    #[error("bad frame from peer: {0}")]
    Frame(#[from] FrameError),
    /// A body did not decode or encode.
    #[error("codec: {0}")]
    Codec(String),
    /// The call did not complete in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The peer sent a frame that does not belong at this point of the exchange.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl From<quinn::WriteError> for RpcError {
    fn from(e: quinn::WriteError) -> Self {
        RpcError::Stream(e.to_string())
    }
}

impl From<quinn::ConnectionError> for RpcError {
    fn from(e: quinn::ConnectionError) -> Self {
        RpcError::Stream(e.to_string())
    }
}

impl From<quinn::ClosedStream> for RpcError {
    fn from(e: quinn::ClosedStream) -> Self {
        RpcError::Stream(e.to_string())
    }
}

/// Encodes a body.
pub fn encode_body<T: Serialize>(value: &T) -> Result<Vec<u8>, RpcError> {
    postcard::to_stdvec(value).map_err(|e| RpcError::Codec(e.to_string()))
}

/// Decodes a body.
pub fn decode_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    postcard::from_bytes(bytes).map_err(|e| RpcError::Codec(e.to_string()))
}

/// QUIC application error codes used when a stream is cut short.
pub mod stream_code {
    /// The peer sent a frame we could not accept.
    pub const BAD_FRAME: u32 = 0x10;
    /// The call timed out.
    pub const TIMEOUT: u32 = 0x11;
    /// The server is shutting down.
    pub const SHUTDOWN: u32 = 0x12;
}
