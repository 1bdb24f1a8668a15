//! The matrix file format: how a job's inputs and results are stored as mesh files.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "HYMX"
//!      4     1  version = 1
//!      5     1  element type: 1 = f32 little-endian (the only one)
//!      6     2  reserved, zero
//!      8     4  rows, u32 little-endian
//!     12     4  cols, u32 little-endian
//!     16   4·rows·cols  elements, row-major, f32 little-endian
//! ```
//!
//! The length must match the header exactly; shapes over `matrix::MAX_ELEMENTS` are refused
//! before anything is allocated. Network-facing: fuzzed (`fuzz/fuzz_targets/matrix_file.rs`).

use crate::error::ComputeError;
use crate::matrix::{checked_len, Matrix};

/// The file's first four bytes.
pub const MAGIC: &[u8; 4] = b"HYMX";
/// The only version.
pub const VERSION: u8 = 1;
/// Element type code of little-endian `f32`.
pub const F32_LE: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 16;

/// Encodes `m` as a matrix file.
pub fn encode(m: &Matrix) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + m.data().len() * 4);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(F32_LE);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(m.rows() as u32).to_le_bytes());
    out.extend_from_slice(&(m.cols() as u32).to_le_bytes());
    for v in m.data() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The shape a header announces, without reading the elements (to refuse early).
pub fn parse_header(bytes: &[u8]) -> Result<(usize, usize), ComputeError> {
    let header = bytes.get(..HEADER_LEN).ok_or_else(|| {
        ComputeError::Format(format!("shorter than the {HEADER_LEN}-byte header"))
    })?;
    if &header[0..4] != MAGIC {
        return Err(ComputeError::Format(
            "not a matrix file (magic is not HYMX)".into(),
        ));
    }
    if header[4] != VERSION {
        return Err(ComputeError::Format(format!(
            "unknown version {}",
            header[4]
        )));
    }
    if header[5] != F32_LE {
        return Err(ComputeError::Format(format!(
            "unknown element type {}",
            header[5]
        )));
    }
    if header[6] != 0 || header[7] != 0 {
        return Err(ComputeError::Format("reserved bytes are not zero".into()));
    }
    let rows = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
    let cols = u32::from_le_bytes([header[12], header[13], header[14], header[15]]) as usize;
    checked_len(rows, cols)?;
    Ok((rows, cols))
}

/// Parses a matrix file.
pub fn decode(bytes: &[u8]) -> Result<Matrix, ComputeError> {
    let (rows, cols) = parse_header(bytes)?;
    let len = checked_len(rows, cols)?;
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != len as u64 * 4 {
        return Err(ComputeError::Format(format!(
            "{rows}x{cols} needs {} bytes of elements, the file has {}",
            len as u64 * 4,
            body.len()
        )));
    }
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Matrix::from_vec(rows, cols, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = Matrix::random(3, 5, 9).unwrap();
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        let empty = Matrix::zeros(0, 4).unwrap();
        assert_eq!(decode(&encode(&empty)).unwrap(), empty);
    }

    #[test]
    fn refuses_bad_files_with_clear_errors() {
        let good = encode(&Matrix::random(2, 2, 1).unwrap());
        assert!(decode(&good[..10]).is_err());
        assert!(decode(&good[..good.len() - 1]).is_err());
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(decode(&bad).unwrap_err().to_string().contains("magic"));
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Err(ComputeError::TooLarge(_))));
        let mut version = good;
        version[4] = 2;
        assert!(decode(&version).is_err());
    }
}
