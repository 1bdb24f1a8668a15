//! Reed-Solomon k+m over a chunk's ciphertext (reed-solomon-simd), with the encoder and the
//! decoder kept and reset between chunks: allocating them per chunk is what makes decode slow.

use bytes::{Bytes, BytesMut};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::redundancy::Redundancy;

/// Why shards could not be made or combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErasureError {
    /// Fewer than k usable shards.
    #[error("only {have} of the {need} shards needed are available")]
    NotEnoughShards { have: usize, need: usize },
    /// A shard has the wrong size or index.
    #[error("shard {index} is malformed: {why}")]
    BadShard { index: usize, why: String },
    /// The codec refused (should not happen with checked layouts).
    #[error("reed-solomon: {0}")]
    Codec(String),
}

/// The length of each shard of a `ct_len`-byte ciphertext cut into `k` data shards: rounded up
/// to an even number (the codec works on 16-bit symbols), at least 2.
pub fn shard_len(ct_len: usize, k: u8) -> usize {
    let per = ct_len.div_ceil(k.max(1) as usize).max(1);
    per + (per & 1)
}

/// A reusable encoder/decoder pair (one per worker thread).
#[derive(Default)]
pub struct ErasureCoder {
    encoder: Option<ReedSolomonEncoder>,
    decoder: Option<ReedSolomonDecoder>,
}

impl std::fmt::Debug for ErasureCoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasureCoder")
    }
}

fn codec(e: reed_solomon_simd::Error) -> ErasureError {
    ErasureError::Codec(e.to_string())
}

impl ErasureCoder {
    /// A coder with nothing allocated yet.
    pub fn new() -> ErasureCoder {
        ErasureCoder::default()
    }

    /// Cuts `ciphertext` into k data shards (slices of it when it divides evenly, else one
    /// zero-padded copy) and computes m parity shards. Returns the k + m shards in index order.
    pub fn encode(
        &mut self,
        r: Redundancy,
        ciphertext: &Bytes,
    ) -> Result<Vec<Bytes>, ErasureError> {
        let k = r.k as usize;
        let len = shard_len(ciphertext.len(), r.k);
        let padded = if ciphertext.len() == len * k {
            ciphertext.clone()
        } else {
            let mut buf = BytesMut::zeroed(len * k);
            buf[..ciphertext.len()].copy_from_slice(ciphertext);
            buf.freeze()
        };
        let mut shards: Vec<Bytes> = (0..k)
            .map(|i| padded.slice(i * len..(i + 1) * len))
            .collect();
        if r.m == 0 {
            return Ok(shards);
        }
        let encoder = match &mut self.encoder {
            Some(e) => {
                e.reset(k, r.m as usize, len).map_err(codec)?;
                e
            }
            None => self
                .encoder
                .insert(ReedSolomonEncoder::new(k, r.m as usize, len).map_err(codec)?),
        };
        for s in &shards {
            encoder.add_original_shard(s).map_err(codec)?;
        }
        let result = encoder.encode().map_err(codec)?;
        shards.extend(result.recovery_iter().map(Bytes::copy_from_slice));
        Ok(shards)
    }

    /// Rebuilds the ciphertext (`ct_len` bytes) from any k of the shards (`None` = missing;
    /// index i < k is a data shard, i >= k parity).
    pub fn decode(
        &mut self,
        r: Redundancy,
        ct_len: usize,
        shards: &[Option<Bytes>],
    ) -> Result<Bytes, ErasureError> {
        let k = r.k as usize;
        let len = shard_len(ct_len, r.k);
        for (index, s) in shards.iter().enumerate() {
            if index >= r.total() {
                if s.is_some() {
                    return Err(ErasureError::BadShard {
                        index,
                        why: format!("index beyond k+m={}", r.total()),
                    });
                }
                continue;
            }
            if let Some(s) = s {
                if s.len() != len {
                    return Err(ErasureError::BadShard {
                        index,
                        why: format!("{} bytes, expected {len}", s.len()),
                    });
                }
            }
        }
        let have = shards
            .iter()
            .take(r.total())
            .filter(|s| s.is_some())
            .count();
        if have < k {
            return Err(ErasureError::NotEnoughShards { have, need: k });
        }
        let data_present = shards.iter().take(k).filter(|s| s.is_some()).count();
        if k == 1 {
            if let Some(Some(s)) = shards.first() {
                return Ok(s.slice(..ct_len));
            }
        }
        let mut out = BytesMut::with_capacity(len * k);
        if data_present == k {
            for s in shards.iter().take(k).flatten() {
                out.extend_from_slice(s);
            }
        } else {
            let decoder = match &mut self.decoder {
                Some(d) => {
                    d.reset(k, r.m as usize, len).map_err(codec)?;
                    d
                }
                None => self
                    .decoder
                    .insert(ReedSolomonDecoder::new(k, r.m as usize, len).map_err(codec)?),
            };
            let mut added = 0;
            for (i, s) in shards.iter().enumerate().take(r.total()) {
                let Some(s) = s else { continue };
                if i < k {
                    decoder.add_original_shard(i, s).map_err(codec)?;
                } else {
                    decoder.add_recovery_shard(i - k, s).map_err(codec)?;
                }
                added += 1;
                if added == k {
                    break;
                }
            }
            let result = decoder.decode().map_err(codec)?;
            for (i, shard) in shards.iter().enumerate().take(k) {
                match shard {
                    Some(s) => out.extend_from_slice(s),
                    None => {
                        let restored =
                            result
                                .restored_original(i)
                                .ok_or_else(|| ErasureError::BadShard {
                                    index: i,
                                    why: "not restored".into(),
                                })?;
                        out.extend_from_slice(restored);
                    }
                }
            }
        }
        out.truncate(ct_len);
        Ok(out.freeze())
    }

    /// Rebuilds every shard of a chunk from any k of them (healing: the lost ones are then
    /// stored elsewhere). Re-encoding the rebuilt ciphertext gives bit-identical shards.
    pub fn rebuild_all(
        &mut self,
        r: Redundancy,
        ct_len: usize,
        shards: &[Option<Bytes>],
    ) -> Result<Vec<Bytes>, ErasureError> {
        let ct = self.decode(r, ct_len, shards)?;
        self.encode(r, &ct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_k_shards_rebuild_the_chunk(
            data in proptest::collection::vec(any::<u8>(), 1..4000),
            k in 1u32..6,
            m in 0u32..4,
            lost_seed in any::<u64>(),
        ) {
            let r = Redundancy::new(k, m).unwrap();
            let mut coder = ErasureCoder::new();
            let ct = Bytes::from(data.clone());
            let shards = coder.encode(r, &ct).unwrap();
            prop_assert_eq!(shards.len(), r.total());
            let len = shard_len(data.len(), r.k);
            prop_assert!(shards.iter().all(|s| s.len() == len));
            // Lose up to m shards, chosen by the seed.
            let mut have: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
            let mut seed = lost_seed;
            for _ in 0..m {
                let i = (seed % r.total() as u64) as usize;
                have[i] = None;
                seed = seed.rotate_left(13) ^ 0x9e37_79b9_7f4a_7c15;
            }
            let back = coder.decode(r, data.len(), &have).unwrap();
            prop_assert_eq!(&back[..], &data[..]);
            let rebuilt = coder.rebuild_all(r, data.len(), &have).unwrap();
            prop_assert_eq!(rebuilt, shards);
        }
    }

    #[test]
    fn too_few_or_wrong_shards_are_refused() {
        let r = Redundancy::new(2, 1).unwrap();
        let mut coder = ErasureCoder::new();
        let shards = coder
            .encode(r, &Bytes::from_static(b"hello shards"))
            .unwrap();
        let one = vec![Some(shards[0].clone()), None, None];
        assert_eq!(
            coder.decode(r, 12, &one),
            Err(ErasureError::NotEnoughShards { have: 1, need: 2 })
        );
        let bad = vec![
            Some(Bytes::from_static(b"x")),
            Some(shards[1].clone()),
            None,
        ];
        assert!(matches!(
            coder.decode(r, 12, &bad),
            Err(ErasureError::BadShard { .. })
        ));
    }
}
