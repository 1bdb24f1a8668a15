//! The RPC frame: a length prefix and a versioned envelope. Pure code, no I/O, so it can be
//! fuzzed and tested byte by byte.
//!
//! ```text
//! +----------------+---------+------+------------+-------------+---------+
//! | length: u32 BE | version | kind | method_len | method utf8 |  body   |
//! |  (of the rest) |   u8    |  u8  |     u8     |  0..=255 B  | rest... |
//! +----------------+---------+------+------------+-------------+---------+
//! ```
//! `length` counts everything after itself and may not exceed the receiver's maximum frame
//! size. Only `Request` frames carry a method name; others have `method_len = 0`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The envelope version this build speaks. A frame with another version is refused, so a
/// future incompatible change fails loudly instead of being misread.
pub const ENVELOPE_VERSION: u8 = 1;

/// Bytes of header after the length prefix: version, kind, method length.
const HEADER: usize = 3;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Opens a call: names the method, carries the request.
    Request = 1,
    /// The single answer of a unary call.
    Response = 2,
    /// The call failed: the body is an [`super::RpcFault`].
    Error = 3,
    /// One element of a stream, in either direction.
    Item = 4,
    /// The sender has no more items.
    End = 5,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<FrameKind> {
        Some(match b {
            1 => FrameKind::Request,
            2 => FrameKind::Response,
            3 => FrameKind::Error,
            4 => FrameKind::Item,
            5 => FrameKind::End,
            _ => return None,
        })
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the maximum frame size.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: u32 },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({got} of {expected} bytes)")]
    Truncated { got: usize, expected: usize },
    /// The frame is shorter than its own header.
    #[error("frame of {0} bytes is shorter than the envelope header")]
    TooShort(usize),
    /// Unknown envelope version.
    #[error("unsupported envelope version {0} (this node speaks {ENVELOPE_VERSION})")]
    Version(u8),
    /// Unknown frame kind.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// The method name runs past the end of the frame, or is not UTF-8.
    #[error("malformed method name")]
    Method,
    /// A method name on a frame that is not a request, or a request without one.
    #[error("method name on a {0:?} frame")]
    MisplacedMethod(FrameKind),
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame is.
    pub kind: FrameKind,
    /// The method (requests only; empty otherwise).
    pub method: String,
    /// The postcard body.
    pub body: Bytes,
}

impl Frame {
    /// A request frame.
    pub fn request(method: &str, body: impl Into<Bytes>) -> Frame {
        Frame {
            kind: FrameKind::Request,
            method: method.to_string(),
            body: body.into(),
        }
    }

    /// A frame of any other kind.
    pub fn new(kind: FrameKind, body: impl Into<Bytes>) -> Frame {
        Frame {
            kind,
            method: String::new(),
            body: body.into(),
        }
    }

    /// Encodes the frame with its length prefix. Fails if it would exceed `max`, or if the
    /// method name is longer than 255 bytes.
    pub fn encode(&self, max: u32) -> Result<Bytes, FrameError> {
        let method = self.method.as_bytes();
        if method.len() > u8::MAX as usize {
            return Err(FrameError::Method);
        }
        let len = HEADER + method.len() + self.body.len();
        if len as u64 > max as u64 {
            return Err(FrameError::TooLarge {
                len: len as u64,
                max,
            });
        }
        let mut out = BytesMut::with_capacity(4 + len);
        out.put_u32(len as u32);
        out.put_u8(ENVELOPE_VERSION);
        out.put_u8(self.kind as u8);
        out.put_u8(method.len() as u8);
        out.put_slice(method);
        out.put_slice(&self.body);
        Ok(out.freeze())
    }

    /// Decodes the part of a frame after its length prefix.
    pub fn decode_payload(mut payload: Bytes) -> Result<Frame, FrameError> {
        if payload.len() < HEADER {
            return Err(FrameError::TooShort(payload.len()));
        }
        let version = payload.get_u8();
        if version != ENVELOPE_VERSION {
            return Err(FrameError::Version(version));
        }
        let kind_byte = payload.get_u8();
        let kind = FrameKind::from_u8(kind_byte).ok_or(FrameError::Kind(kind_byte))?;
        let method_len = payload.get_u8() as usize;
        if method_len > payload.len() {
            return Err(FrameError::Method);
        }
        let method_bytes = payload.split_to(method_len);
        let method = std::str::from_utf8(&method_bytes)
            .map_err(|_| FrameError::Method)?
            .to_string();
        match (kind, method.is_empty()) {
            (FrameKind::Request, true) | (FrameKind::Response, false) => {
                return Err(FrameError::MisplacedMethod(kind))
            }
            (FrameKind::Error | FrameKind::Item | FrameKind::End, false) => {
                return Err(FrameError::MisplacedMethod(kind))
            }
            _ => {}
        }
        Ok(Frame {
            kind,
            method,
            body: payload,
        })
    }

    /// Checks a length prefix against the limit before any of the frame is read.
    pub fn check_len(len: u32, max: u32) -> Result<usize, FrameError> {
        if len > max {
            return Err(FrameError::TooLarge {
                len: len as u64,
                max,
            });
        }
        Ok(len as usize)
    }
}

/// Incremental decoder: push bytes as they arrive, pull whole frames out.
#[derive(Debug)]
pub struct FrameDecoder {
    max: u32,
    buf: BytesMut,
}

impl FrameDecoder {
    /// A decoder that refuses frames larger than `max` bytes.
    pub fn new(max: u32) -> FrameDecoder {
        FrameDecoder {
            max,
            buf: BytesMut::new(),
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed. An error is final: the
    /// stream is unusable after it.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let len = Frame::check_len(len, self.max)?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        self.buf.advance(4);
        let payload = self.buf.split_to(len).freeze();
        Frame::decode_payload(payload).map(Some)
    }

    /// Call when the stream has ended: leftover bytes mean the last frame was cut short.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let expected = if self.buf.len() >= 4 {
            4 + u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize
        } else {
            4
        };
        Err(FrameError::Truncated {
            got: self.buf.len(),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: u32 = 1 << 20;

    #[test]
    fn round_trip() {
        let f = Frame::request("core.ping", vec![1, 2, 3]);
        let bytes = f.encode(MAX).unwrap();
        let mut d = FrameDecoder::new(MAX);
        d.push(&bytes);
        assert_eq!(d.next_frame().unwrap(), Some(f));
        assert_eq!(d.next_frame().unwrap(), None);
        d.finish().unwrap();
    }

    #[test]
    fn too_large_is_refused_before_reading_it() {
        let mut d = FrameDecoder::new(1024);
        d.push(&(2048u32).to_be_bytes());
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                len: 2048,
                max: 1024
            })
        );
        assert!(Frame::new(FrameKind::Item, vec![0; 2000])
            .encode(1024)
            .is_err());
    }

    #[test]
    fn truncated_is_reported_at_end() {
        let bytes = Frame::new(FrameKind::Item, vec![9; 10])
            .encode(MAX)
            .unwrap();
        let mut d = FrameDecoder::new(MAX);
        d.push(&bytes[..bytes.len() - 1]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert!(matches!(d.finish(), Err(FrameError::Truncated { .. })));
    }

    #[test]
    fn garbage_is_refused() {
        for payload in [
            vec![],
            vec![2, 1, 0],             // wrong version
            vec![1, 9, 0],             // unknown kind
            vec![1, 1, 5, b'a'],       // method runs past the end
            vec![1, 1, 0],             // request without a method
            vec![1, 4, 1, b'x'],       // item with a method
            vec![1, 1, 2, 0xff, 0xfe], // method not utf-8
        ] {
            assert!(
                Frame::decode_payload(Bytes::from(payload.clone())).is_err(),
                "{payload:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), split in 0usize..512) {
            let mut d = FrameDecoder::new(256);
            let split = split.min(data.len());
            d.push(&data[..split]);
            let _ = d.next_frame();
            d.push(&data[split..]);
            while let Ok(Some(_)) = d.next_frame() {}
        }

        #[test]
        fn frames_survive_any_chunking(body in proptest::collection::vec(any::<u8>(), 0..300), cut in 1usize..50) {
            let frames = vec![
                Frame::request("svc.method", body.clone()),
                Frame::new(FrameKind::Item, body.clone()),
                Frame::new(FrameKind::End, Vec::new()),
            ];
            let mut wire = Vec::new();
            for f in &frames { wire.extend_from_slice(&f.encode(MAX).unwrap()); }
            let mut d = FrameDecoder::new(MAX);
            let mut got = Vec::new();
            for chunk in wire.chunks(cut) {
                d.push(chunk);
                while let Some(f) = d.next_frame().unwrap() { got.push(f); }
            }
            d.finish().unwrap();
            prop_assert_eq!(got, frames);
        }
    }
}
