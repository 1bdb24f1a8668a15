//! The epoch stream, primary → backup, as postcard-encoded parts of one RPC stream:
//! `Header`, then `Pages` batches, then `Device` (QEMU's device state), then `End` with a
//! BLAKE3 digest over everything before it. The backup answers with an [`EpochAck`] only after
//! the whole epoch is applied to its replica.

use serde::{Deserialize, Serialize};

/// Pages per `Pages` part (1 MiB of data), well below the RPC frame limit.
pub const PAGES_PER_PART: usize = 256;

/// Identity and size of one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochHeader {
    /// The VM.
    pub vm: String,
    /// The primary's generation: raised at every failover or migration. A backup refuses
    /// epochs from an older generation (that is how a returning old primary is fenced).
    pub generation: u64,
    /// The epoch number, strictly increasing within a generation.
    pub epoch: u64,
    /// Size of the guest RAM file in bytes.
    pub ram_bytes: u64,
    /// Size of the VM's disk file in bytes (0: no disk). Page indices address RAM, then disk:
    /// index `i < ram_bytes / 4096` is RAM page `i`, index `ram_bytes / 4096 + j` is disk page
    /// `j`, so RAM and disk of one checkpoint travel (and are applied) as one epoch.
    pub disk_bytes: u64,
    /// Pages this epoch carries.
    pub pages: u32,
    /// Bytes of device state.
    pub device_bytes: u32,
}

/// One part of the epoch stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EpochPart {
    /// First part.
    Header(EpochHeader),
    /// A batch of pages (RAM, then disk: see [`EpochHeader::disk_bytes`]): indices ascending
    /// across the whole epoch, data = indices × 4096.
    Pages {
        /// Page indices.
        indices: Vec<u32>,
        /// Their contents.
        #[serde(with = "serde_bytes_compat")]
        data: Vec<u8>,
    },
    /// QEMU's device state (the `x-ignore-shared` migration stream).
    Device(#[serde(with = "serde_bytes_compat")] Vec<u8>),
    /// Last part: BLAKE3 over the encoded parts before it.
    End {
        /// The digest.
        digest: [u8; 32],
    },
}

/// The backup's answer: the epoch is the replica now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochAck {
    /// The generation applied.
    pub generation: u64,
    /// The epoch applied.
    pub epoch: u64,
}

/// postcard encodes `Vec<u8>` as a length and bytes already; this keeps the field attribute
/// explicit about it being a byte string.
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// Encodes a part (postcard).
pub fn encode_part(part: &EpochPart) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(part)
}

/// Decodes a part (postcard); trailing bytes are an error.
pub fn decode_part(bytes: &[u8]) -> Result<EpochPart, postcard::Error> {
    let (part, rest) = postcard::take_from_bytes(bytes)?;
    if !rest.is_empty() {
        return Err(postcard::Error::DeserializeBadEncoding);
    }
    Ok(part)
}

/// Splits one checkpoint into its encoded parts (the digest covers every encoded part before
/// `End`).
pub fn encode_epoch(
    header: EpochHeader,
    indices: &[u32],
    data: &[u8],
    device: &[u8],
) -> Result<Vec<Vec<u8>>, postcard::Error> {
    let mut hasher = blake3::Hasher::new();
    let mut parts = Vec::new();
    let mut push = |p: EpochPart, hasher: &mut blake3::Hasher| -> Result<(), postcard::Error> {
        let b = encode_part(&p)?;
        hasher.update(&b);
        parts.push(b);
        Ok(())
    };
    push(EpochPart::Header(header), &mut hasher)?;
    for (i, chunk) in indices.chunks(PAGES_PER_PART).enumerate() {
        let start = i * PAGES_PER_PART * 4096;
        push(
            EpochPart::Pages {
                indices: chunk.to_vec(),
                data: data[start..start + chunk.len() * 4096].to_vec(),
            },
            &mut hasher,
        )?;
    }
    push(EpochPart::Device(device.to_vec()), &mut hasher)?;
    let digest = *hasher.finalize().as_bytes();
    parts.push(encode_part(&EpochPart::End { digest })?);
    Ok(parts)
}
