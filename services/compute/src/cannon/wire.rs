//! Blocks on a QUIC stream: `rows·cols` little-endian `f32`, no framing (both sides know the
//! shape from the request or header that came before).

use bytes::Bytes;

use crate::error::ComputeError;
use crate::matrix::{checked_len, Matrix};

/// Why a block could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The shape is refused (over the element limit).
    #[error(transparent)]
    Shape(#[from] ComputeError),
    /// The stream failed or ended early.
    #[error("stream: {0}")]
    Stream(String),
}

/// A block's bytes.
pub fn encode(m: &Matrix) -> Bytes {
    let mut out = Vec::with_capacity(m.data().len() * 4);
    for x in m.data() {
        out.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(out)
}

/// Writes a block.
pub async fn write(send: &mut quinn::SendStream, m: &Matrix) -> Result<(), WireError> {
    send.write_chunk(encode(m))
        .await
        .map_err(|e| WireError::Stream(e.to_string()))
}

/// Reads a `rows × cols` block (refusing shapes over the matrix limit before allocating).
pub async fn read(
    recv: &mut quinn::RecvStream,
    rows: usize,
    cols: usize,
) -> Result<Matrix, WireError> {
    let len = checked_len(rows, cols)?;
    let mut buf = vec![0u8; len * 4];
    recv.read_exact(&mut buf)
        .await
        .map_err(|e| WireError::Stream(e.to_string()))?;
    let data = buf
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Matrix::from_vec(rows, cols, data)?)
}
