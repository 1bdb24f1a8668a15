//! The on-disk record: a fixed header (id, length, BLAKE3 of the data, sequence number, header
//! checksum) followed by the shard's bytes. Pure encoding and decoding, no I/O.
//!
//! Layout (little endian), `HEADER_LEN` = 96 bytes:
//! ```text
//!  0  magic "HYSR"       4  version u16 (1)   6  flags u16 (0)
//!  8  seq u64            16 id [32]           48 data length u64
//! 56  BLAKE3(data) [32]  88 first 8 bytes of BLAKE3(header[0..88])
//! ```
//! The header checksum lets recovery tell a record from a torn or stale tail; the data hash
//! lets every read be verified.

use super::ShardId;

/// Bytes of a record header.
pub const HEADER_LEN: usize = 96;
/// The first four bytes of every record.
pub const MAGIC: [u8; 4] = *b"HYSR";
/// The only record version written.
pub const VERSION: u16 = 1;

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Store-wide sequence number: a later put of the same id has a larger one.
    pub seq: u64,
    /// The shard.
    pub id: ShardId,
    /// Length of the data following the header.
    pub len: u64,
    /// BLAKE3 of the data.
    pub hash: [u8; 32],
}

/// Why bytes are not a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer than `HEADER_LEN` bytes.
    #[error("truncated header")]
    Truncated,
    /// Not a record (zeroes of a preallocated tail, garbage).
    #[error("bad magic")]
    BadMagic,
    /// A version this build does not know.
    #[error("unknown record version {0}")]
    UnknownVersion(u16),
    /// Torn or corrupted header.
    #[error("header checksum mismatch")]
    BadChecksum,
}

impl RecordHeader {
    /// Builds the header of `data`.
    pub fn for_data(seq: u64, id: ShardId, data: &[u8]) -> Self {
        RecordHeader {
            seq,
            id,
            len: data.len() as u64,
            hash: *blake3::hash(data).as_bytes(),
        }
    }

    /// Bytes of the whole record (header + data).
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + self.len
    }

    /// The 96 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6..8].copy_from_slice(&0u16.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..48].copy_from_slice(&self.id.0);
        b[48..56].copy_from_slice(&self.len.to_le_bytes());
        b[56..88].copy_from_slice(&self.hash);
        let sum = blake3::hash(&b[0..88]);
        b[88..96].copy_from_slice(&sum.as_bytes()[0..8]);
        b
    }

    /// Decodes and checks a header (magic, version, checksum).
    pub fn decode(b: &[u8]) -> Result<Self, HeaderError> {
        if b.len() < HEADER_LEN {
            return Err(HeaderError::Truncated);
        }
        if b[0..4] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let sum = blake3::hash(&b[0..88]);
        if b[88..96] != sum.as_bytes()[0..8] {
            return Err(HeaderError::BadChecksum);
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != VERSION {
            return Err(HeaderError::UnknownVersion(version));
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[16..48]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[56..88]);
        Ok(RecordHeader {
            seq: u64::from_le_bytes(b[8..16].try_into().unwrap_or_default()),
            id: ShardId(id),
            len: u64::from_le_bytes(b[48..56].try_into().unwrap_or_default()),
            hash,
        })
    }

    /// Whether `data` is what this header describes.
    pub fn matches(&self, data: &[u8]) -> bool {
        data.len() as u64 == self.len && *blake3::hash(data).as_bytes() == self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let h = RecordHeader::for_data(7, ShardId([3; 32]), b"hello");
        let b = h.encode();
        assert_eq!(RecordHeader::decode(&b), Ok(h));
        assert!(h.matches(b"hello"));
        assert!(!h.matches(b"hellp"));
        assert_eq!(RecordHeader::decode(&b[..50]), Err(HeaderError::Truncated));
        assert_eq!(
            RecordHeader::decode(&[0u8; HEADER_LEN]),
            Err(HeaderError::BadMagic)
        );
        for i in 4..HEADER_LEN {
            let mut c = b;
            c[i] ^= 0x10;
            assert!(RecordHeader::decode(&c).is_err(), "flip at {i} undetected");
        }
    }
}
