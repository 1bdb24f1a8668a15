//! The CPU half of the write and read paths, without I/O: plaintext chunk → sealed chunk →
//! k + m shards with their hashes, and back. The service runs it on blocking threads; the
//! bench measures it.

use bytes::{Bytes, BytesMut};

use crate::chunk_crypto::{CryptoError, MeshChunkKeys};
use crate::erasure::{shard_len, ErasureCoder, ErasureError};
use crate::ids::{ChunkId, ShardHash};
use crate::redundancy::Redundancy;

/// A chunk ready to upload: its shards and everything its manifest entry needs.
#[derive(Debug, Clone)]
pub struct EncodedChunk {
    /// BLAKE3 of the ciphertext.
    pub id: ChunkId,
    /// Plaintext length.
    pub plain_len: u64,
    /// Ciphertext length.
    pub ct_len: u64,
    /// The wrapped chunk key.
    pub wrapped_key: Vec<u8>,
    /// The layout used.
    pub redundancy: Redundancy,
    /// Length of each shard.
    pub shard_len: u64,
    /// The k + m shards with their hashes, in index order.
    pub shards: Vec<(ShardHash, Bytes)>,
}

/// Why a chunk could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Not enough shards, or malformed ones.
    #[error(transparent)]
    Erasure(#[from] ErasureError),
    /// Decryption failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The rebuilt ciphertext is not the chunk it should be.
    #[error("rebuilt chunk does not match its id")]
    WrongChunk,
}

/// Encrypts and erasure-codes one plaintext chunk.
pub fn encode_chunk(
    keys: &MeshChunkKeys,
    coder: &mut ErasureCoder,
    r: Redundancy,
    plaintext: BytesMut,
) -> Result<EncodedChunk, ErasureError> {
    let sealed = keys.seal(plaintext);
    let shards = coder.encode(r, &sealed.ciphertext)?;
    Ok(EncodedChunk {
        id: sealed.id,
        plain_len: sealed.plain_len as u64,
        ct_len: sealed.ciphertext.len() as u64,
        wrapped_key: sealed.wrapped_key,
        redundancy: r,
        shard_len: shard_len(sealed.ciphertext.len(), r.k) as u64,
        shards: shards.into_iter().map(|s| (ShardHash::of(&s), s)).collect(),
    })
}

/// Rebuilds and decrypts one chunk from the shards at hand (`None` = missing). Shards must
/// already be verified against their hashes; the chunk id and the GCM tag are checked here.
pub fn decode_chunk(
    keys: &MeshChunkKeys,
    coder: &mut ErasureCoder,
    r: Redundancy,
    id: &ChunkId,
    ct_len: usize,
    wrapped_key: &[u8],
    shards: &[Option<Bytes>],
) -> Result<Vec<u8>, PipelineError> {
    let ct = coder.decode(r, ct_len, shards)?;
    if ChunkId::of(&ct) != *id {
        return Err(PipelineError::WrongChunk);
    }
    Ok(keys.open(wrapped_key, &ct)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_with_losses() {
        let keys = MeshChunkKeys::new(&[9; 32]);
        let mut coder = ErasureCoder::new();
        let r = Redundancy::new(4, 2).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let enc = encode_chunk(&keys, &mut coder, r, BytesMut::from(&data[..])).unwrap();
        assert_eq!(enc.shards.len(), 6);
        let mut have: Vec<Option<Bytes>> =
            enc.shards.iter().map(|(_, s)| Some(s.clone())).collect();
        have[0] = None;
        have[3] = None;
        let back = decode_chunk(
            &keys,
            &mut coder,
            r,
            &enc.id,
            enc.ct_len as usize,
            &enc.wrapped_key,
            &have,
        )
        .unwrap();
        assert_eq!(back, data);
        let wrong = ChunkId::of(b"other");
        assert!(matches!(
            decode_chunk(
                &keys,
                &mut coder,
                r,
                &wrong,
                enc.ct_len as usize,
                &enc.wrapped_key,
                &have
            ),
            Err(PipelineError::WrongChunk)
        ));
    }
}
