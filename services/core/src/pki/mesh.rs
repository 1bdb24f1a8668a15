//! The mesh id and the two mesh-wide secrets.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::PkiError;
use crate::secret_file::{self, Visibility};

/// A mesh's public name: 80 random bits in lower-case base32 (16 characters). Beacons carry it so
/// that two meshes on one LAN never mistake each other's nodes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MeshId([u8; 10]);

impl MeshId {
    /// A fresh random mesh id.
    pub fn random() -> MeshId {
        let mut id = [0u8; 10];
        rand::rng().fill_bytes(&mut id);
        MeshId(id)
    }

    /// The raw bytes, for binary packets.
    pub fn as_bytes(&self) -> &[u8; 10] {
        &self.0
    }

    /// From the raw bytes of a packet.
    pub fn from_bytes(bytes: [u8; 10]) -> MeshId {
        MeshId(bytes)
    }
}

impl fmt::Display for MeshId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Same alphabet as node ids: both appear in DNS names and logs.
        let id = crate::identity::NodeId::from_raw(self.0);
        fmt::Display::fmt(&id, f)
    }
}

impl fmt::Debug for MeshId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeshId({self})")
    }
}

impl FromStr for MeshId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id: crate::identity::NodeId = s
            .parse()
            .map_err(|_| format!("`{s}` is not a mesh id (16 characters of a-z and 2-7)"))?;
        Ok(MeshId(*id.as_bytes()))
    }
}

impl Serialize for MeshId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MeshId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A 256-bit secret key, shown as hex in files and never in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub [u8; 32]);

impl SecretKey {
    /// A fresh key from the system's random generator.
    pub fn random() -> SecretKey {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        SecretKey(k)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl Serialize for SecretKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a secret key is 32 bytes (64 hex digits)"))?;
        Ok(SecretKey(key))
    }
}

/// What every member of a mesh shares: its id and its two secrets (`identity/mesh.toml`, 0600).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshSecrets {
    /// The mesh's public id.
    pub mesh_id: MeshId,
    /// Keys the MAC of discovery beacons (network isolation between meshes).
    pub beacon_key: SecretKey,
    /// Root of the chunk encryption keys (data never leaves a node in clear).
    pub data_key: SecretKey,
}

impl MeshSecrets {
    /// A brand-new mesh's id and secrets.
    pub fn generate() -> MeshSecrets {
        MeshSecrets {
            mesh_id: MeshId::random(),
            beacon_key: SecretKey::random(),
            data_key: SecretKey::random(),
        }
    }

    /// Reads `mesh.toml`, refusing a copy that others can read.
    pub fn load(path: &Path) -> Result<MeshSecrets, PkiError> {
        secret_file::check_private(path).map_err(PkiError::io(path))?;
        let text = std::fs::read_to_string(path).map_err(PkiError::io(path))?;
        toml::from_str(&text).map_err(|e| PkiError::invalid(path, e.message()))
    }

    /// Writes `mesh.toml` atomically with mode 0600.
    pub fn store(&self, path: &Path) -> Result<(), PkiError> {
        let text = toml::to_string(self).map_err(|e| PkiError::invalid(path, e))?;
        let text = format!("# Hyphae mesh secrets: keep private (mode 0600).\n{text}");
        secret_file::write_atomic(path, text.as_bytes(), Visibility::Private)
            .map_err(PkiError::io(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mesh.toml");
        let s = MeshSecrets::generate();
        s.store(&p).unwrap();
        assert_eq!(MeshSecrets::load(&p).unwrap(), s);
        let debug = format!("{s:?}");
        assert!(!debug.contains(&data_encoding::HEXLOWER.encode(&s.data_key.0)));
        assert_eq!(s.mesh_id.to_string().parse::<MeshId>().unwrap(), s.mesh_id);
    }
}
