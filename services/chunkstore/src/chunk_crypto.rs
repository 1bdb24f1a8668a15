//! Per-chunk encryption: AES-256-GCM under a key derived from the mesh data key and the chunk's
//! keyed BLAKE3.
//!
//! The chunk key is `BLAKE3-keyed(content root, BLAKE3-keyed(hash key, plaintext))`, both roots
//! derived from the mesh's data key. Identical plaintext inside one mesh gives the identical
//! key, ciphertext and chunk id (dedup); outside the mesh nobody can compute the key, so a
//! ciphertext cannot be matched against a guessed plaintext (no confirmation-of-file attack).
//! Because each key only ever encrypts one plaintext, the nonce is fixed. The key is stored in
//! the manifest wrapped (AES-256-GCM, random nonce) under a third derived key.
//!
//! Chunks are sealed and opened with ring's AES-256-GCM (assembly with AES-NI/CLMUL or ARMv8
//! crypto extensions: several times the throughput of the portable crate on the same core);
//! the ciphertext format (ciphertext ‖ 16-byte tag, zero nonce) is the standard one, so chunks
//! sealed by either library open with the other (tested). The key wrap stays on `aes-gcm`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use bytes::{Bytes, BytesMut};
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce as RingNonce, UnboundKey, AES_256_GCM};

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

/// ring's AES-256-GCM under a chunk key (`None` only if ring refused a 32-byte key).
fn ring_key(key: &ChunkKey) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, &key.0)
        .ok()
        .map(LessSafeKey::new)
}

/// The fixed nonce: each chunk key encrypts exactly one plaintext.
fn zero_nonce() -> RingNonce {
    RingNonce::assume_unique_for_key([0u8; NONCE_LEN])
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
        plaintext.reserve(TAG_LEN);
        // Encryption with a valid key cannot fail for buffers under GCM's 64 GiB limit; chunks
        // are at most a few MiB.
        let tag = ring_key(&key)
            .and_then(|k| {
                k.seal_in_place_separate_tag(zero_nonce(), Aad::empty(), &mut plaintext)
                    .ok()
            })
            .map(|t| t.as_ref().to_vec())
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
        if ciphertext.len() < TAG_LEN {
            return Err(CryptoError::Authentication);
        }
        let cipher = ring_key(&key).ok_or(CryptoError::Authentication)?;
        let mut out = ciphertext.to_vec();
        let plain_len = cipher
            .open_in_place(zero_nonce(), Aad::empty(), &mut out)
            .map_err(|_| CryptoError::Authentication)?
            .len();
        out.truncate(plain_len);
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
    fn chunks_are_standard_aes_gcm_either_library_opens_the_others() {
        let k = keys(4);
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 31) as u8).collect();
        // ring-sealed → RustCrypto opens.
        let sealed = k.seal(BytesMut::from(&data[..]));
        let key = k.unwrap_key(&sealed.wrapped_key).unwrap();
        let rc = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0));
        let opened = rc
            .decrypt(
                Nonce::from_slice(&[0u8; NONCE_LEN]),
                sealed.ciphertext.as_ref(),
            )
            .unwrap();
        assert_eq!(opened, data);
        // RustCrypto-sealed (what earlier versions wrote) → ring opens, same bytes.
        let old = rc
            .encrypt(Nonce::from_slice(&[0u8; NONCE_LEN]), data.as_slice())
            .unwrap();
        assert_eq!(old, sealed.ciphertext.to_vec());
        assert_eq!(k.open(&sealed.wrapped_key, &old).unwrap(), data);
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
