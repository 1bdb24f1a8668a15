//! Per-chunk encryption: AES-256-GCM under a key derived from the mesh data key and the chunk's
//! keyed BLAKE3.
//!
//! The chunk key is `BLAKE3-keyed(content root, BLAKE3-keyed(hash key, plaintext))`, both roots
//! derived from the mesh's data key. Identical plaintext inside one mesh gives the identical
//! key, ciphertext and chunk id (dedup); outside the mesh nobody can compute the key, so a
//! ciphertext cannot be matched against a guessed plaintext (no confirmation-of-file attack).
//! Because each key only ever encrypts one plaintext, the nonce is fixed. The key is stored in
//! the manifest wrapped (AES-256-GCM, random nonce) under a third derived key.

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use bytes::{Bytes, BytesMut};
use rand::RngCore;

use crate::ids::ChunkId;

/// Bytes the GCM tag adds to every chunk.
pub const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 12;
/// Length of a wrapped chunk key: nonce, key, tag.
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + 32 + TAG_LEN;

/// Why a chunk or a key did not decrypt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The GCM tag did not match: wrong key or damaged bytes.
    #[error("chunk failed authentication (damaged, or from another mesh)")]
    Authentication,
    /// A wrapped key has the wrong length.
    #[error("wrapped chunk key is {0} bytes, expected {WRAPPED_KEY_LEN}")]
    WrappedKeyLength(usize),
}

/// A chunk's own key (never stored in clear).
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkKey(pub [u8; 32]);

impl std::fmt::Debug for ChunkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkKey(..)")
    }
}

/// The keys of one mesh's chunk encryption, derived once from the mesh data key.
#[derive(Clone)]
pub struct MeshChunkKeys {
    hash_key: [u8; 32],
    content_root: [u8; 32],
    wrap: Aes256Gcm,
}

impl std::fmt::Debug for MeshChunkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeshChunkKeys(..)")
    }
}

/// A sealed chunk: its ciphertext (plaintext + tag), id and wrapped key.
#[derive(Debug, Clone)]
pub struct SealedChunk {
    /// The ciphertext, tag included.
    pub ciphertext: Bytes,
    /// BLAKE3 of the ciphertext.
    pub id: ChunkId,
    /// The chunk key wrapped under the mesh's wrap key.
    pub wrapped_key: Vec<u8>,
    /// Plaintext length.
    pub plain_len: usize,
}

impl MeshChunkKeys {
    /// Derives the chunk keys from the mesh data key (`MeshSecrets::data_key`).
    pub fn new(data_key: &[u8; 32]) -> MeshChunkKeys {
        let hash_key = blake3::derive_key("hyphae 2026-11 chunk plaintext hash v1", data_key);
        let content_root = blake3::derive_key("hyphae 2026-11 chunk content key v1", data_key);
        let wrap_key = blake3::derive_key("hyphae 2026-11 chunk key wrap v1", data_key);
        MeshChunkKeys {
            hash_key,
            content_root,
            wrap: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&wrap_key)),
        }
    }

    /// The key of a chunk with this plaintext.
    pub fn chunk_key(&self, plaintext: &[u8]) -> ChunkKey {
        let tag = blake3::keyed_hash(&self.hash_key, plaintext);
        ChunkKey(*blake3::keyed_hash(&self.content_root, tag.as_bytes()).as_bytes())
    }

    /// Encrypts a chunk in place (the buffer grows by the tag) and wraps its key.
    pub fn seal(&self, mut plaintext: BytesMut) -> SealedChunk {
        let plain_len = plaintext.len();
        let key = self.chunk_key(&plaintext);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0));
        plaintext.reserve(TAG_LEN);
        // Encryption with a valid key cannot fail for buffers under GCM's 64 GiB limit; chunks
        // are at most a few MiB.
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&[0u8; NONCE_LEN]), b"", &mut plaintext)
            .unwrap_or_default();
        plaintext.extend_from_slice(&tag);
        let ciphertext = plaintext.freeze();
        SealedChunk {
            id: ChunkId::of(&ciphertext),
            wrapped_key: self.wrap_key(&key),
            ciphertext,
            plain_len,
        }
    }

    /// Decrypts a chunk's ciphertext with its wrapped key, checking the tag.
    pub fn open(&self, wrapped_key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self.unwrap_key(wrapped_key)?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0));
        if ciphertext.len() < TAG_LEN {
            return Err(CryptoError::Authentication);
        }
        let (body, tag) = ciphertext.split_at(ciphertext.len() - TAG_LEN);
        let mut out = body.to_vec();
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&[0u8; NONCE_LEN]),
                b"",
                &mut out,
                aes_gcm::Tag::from_slice(tag),
            )
            .map_err(|_| CryptoError::Authentication)?;
        Ok(out)
    }

    /// Wraps a chunk key for the manifest.
    pub fn wrap_key(&self, key: &ChunkKey) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .wrap
            .encrypt(Nonce::from_slice(&nonce), key.0.as_slice())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// Unwraps a chunk key from a manifest.
    pub fn unwrap_key(&self, wrapped: &[u8]) -> Result<ChunkKey, CryptoError> {
        if wrapped.len() != WRAPPED_KEY_LEN {
            return Err(CryptoError::WrappedKeyLength(wrapped.len()));
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let key = self
            .wrap
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CryptoError::Authentication)?;
        let key: [u8; 32] = key.try_into().map_err(|_| CryptoError::Authentication)?;
        Ok(ChunkKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(seed: u8) -> MeshChunkKeys {
        MeshChunkKeys::new(&[seed; 32])
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let k = keys(1);
            let sealed = k.seal(BytesMut::from(&data[..]));
            prop_assert_eq!(sealed.ciphertext.len(), data.len() + TAG_LEN);
            prop_assert_eq!(sealed.id, ChunkId::of(&sealed.ciphertext));
            prop_assert_eq!(k.open(&sealed.wrapped_key, &sealed.ciphertext).unwrap(), data);
        }
    }

    #[test]
    fn same_mesh_dedups_other_mesh_does_not() {
        let data = BytesMut::from(&b"the same chunk"[..]);
        let a = keys(1).seal(data.clone());
        let b = keys(1).seal(data.clone());
        let c = keys(2).seal(data);
        assert_eq!(a.id, b.id, "same mesh, same plaintext: same chunk id");
        assert_ne!(a.wrapped_key, b.wrapped_key, "wrapping uses a fresh nonce");
        assert_ne!(a.id, c.id, "another mesh cannot link the chunk");
        assert_eq!(
            keys(2).open(&a.wrapped_key, &a.ciphertext),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn damaged_ciphertext_is_refused() {
        let k = keys(3);
        let sealed = k.seal(BytesMut::from(&b"hello world"[..]));
        let mut bad = sealed.ciphertext.to_vec();
        bad[0] ^= 1;
        assert_eq!(
            k.open(&sealed.wrapped_key, &bad),
            Err(CryptoError::Authentication)
        );
        assert!(k
            .open(&sealed.wrapped_key[1..], &sealed.ciphertext)
            .is_err());
        assert!(k.open(&sealed.wrapped_key, &[1, 2]).is_err());
    }
}
