//! The name of a shard in the local store: 32 opaque bytes chosen by the caller.

use std::fmt;
use std::str::FromStr;

/// Identifies one shard in the store. The store never interprets it; the distributed layer
/// derives it (e.g. from the hash of the shard's ciphertext). Displayed and parsed as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub [u8; 32]);

impl ShardId {
    /// The raw bytes (the index key and the id stored in every record header).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the 64-character lowercase or uppercase hex form produced by `Display`.
    pub fn from_hex(s: &str) -> Result<Self, ParseShardIdError> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .map_err(|_| ParseShardIdError)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| ParseShardIdError)?;
        Ok(ShardId(arr))
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardId({self})")
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a shard id is 64 hex digits")]
pub struct ParseShardIdError;

impl FromStr for ShardId {
    type Err = ParseShardIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ShardId::from_hex(s)
    }
}

impl serde::Serialize for ShardId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ShardId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ShardId::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ShardId([0xab; 32]);
        let s = id.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<ShardId>(), Ok(id));
        assert_eq!(ShardId::from_hex(&s.to_uppercase()), Ok(id));
        assert!(ShardId::from_hex("abc").is_err());
        assert!(ShardId::from_hex(&"zz".repeat(32)).is_err());
    }
}
