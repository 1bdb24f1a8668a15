//! The node's identity: an Ed25519 key made on first start, and the node id derived from it.
//!
//! The node id is what the rest of the mesh calls a node (directory, placement, DNS names). It is
//! derived from the public key rather than assigned, so a certificate proves its holder's id by
//! itself: the TLS layer recomputes the id from the peer's key, and nobody can claim another
//! node's id without its private key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

use crate::secret_file::{self, Visibility};

/// Bytes of BLAKE3 output kept in a node id: 80 bits, 16 base32 characters. Enough that random
/// collisions are out of reach for meshes of any size we aim at, short enough to read aloud.
const NODE_ID_BYTES: usize = 10;

/// Lower-case RFC 4648 base32 without padding: DNS-safe and unambiguous to type.
fn base32() -> &'static data_encoding::Encoding {
    static BASE32: std::sync::LazyLock<data_encoding::Encoding> = std::sync::LazyLock::new(|| {
        let mut spec = data_encoding::Specification::new();
        spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
        // A constant alphabet of 32 distinct ASCII symbols: this cannot fail.
        spec.encoding().expect("a valid base32 alphabet")
    });
    &BASE32
}

/// A node's stable name in the mesh: base32 of the first 10 bytes of BLAKE3(public key).
///
/// `Default` is the all-zero id, which no real key hashes to in practice; it exists because
/// openraft's node id bound requires it (the coordinator uses `NodeId` as its Raft node id).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; NODE_ID_BYTES]);

impl NodeId {
    /// The all-zero id: callers without a certificate (admission), and openraft's `Default`.
    pub const ANONYMOUS: NodeId = NodeId([0; NODE_ID_BYTES]);

    /// The id of whoever holds the private half of this Ed25519 public key.
    pub fn from_public_key(public_key: &[u8]) -> NodeId {
        let hash = blake3::hash(public_key);
        let mut id = [0u8; NODE_ID_BYTES];
        id.copy_from_slice(&hash.as_bytes()[..NODE_ID_BYTES]);
        NodeId(id)
    }

    /// Wraps raw id bytes (mesh ids share the encoding).
    pub fn from_raw(bytes: [u8; NODE_ID_BYTES]) -> NodeId {
        NodeId(bytes)
    }

    /// The raw id bytes (for hashing into placement and the like).
    pub fn as_bytes(&self) -> &[u8; NODE_ID_BYTES] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32().encode(&self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// Why a string is not a node id.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a node id (16 characters of a-z and 2-7)")]
pub struct ParseNodeIdError(String);

impl FromStr for NodeId {
    type Err = ParseNodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let bytes = base32()
            .decode(lower.as_bytes())
            .map_err(|_| ParseNodeIdError(s.to_string()))?;
        let id: [u8; NODE_ID_BYTES] = bytes
            .try_into()
            .map_err(|_| ParseNodeIdError(s.to_string()))?;
        Ok(NodeId(id))
    }
}

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let bytes = <Vec<u8>>::deserialize(d)?;
            let id: [u8; NODE_ID_BYTES] = bytes
                .try_into()
                .map_err(|_| serde::de::Error::custom("a node id is 10 bytes"))?;
            Ok(NodeId(id))
        }
    }
}

/// Why the node key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing the key file failed.
    #[error("node key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a PKCS#8 Ed25519 key.
    #[error("node key {path} is not a valid Ed25519 PKCS#8 key: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// The system random generator failed.
    #[error("could not generate a key: {0}")]
    Generate(String),
}

/// The node's Ed25519 key pair. Its PKCS#8 form is what TLS and certificate signing consume.
pub struct NodeKey {
    pkcs8: Vec<u8>,
    pair: Ed25519KeyPair,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.node_id())
    }
}

impl NodeKey {
    /// Makes a fresh key from the system's random generator.
    pub fn generate() -> Result<NodeKey, IdentityError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        NodeKey::from_pkcs8(doc.as_ref()).map_err(IdentityError::Generate)
    }

    /// Reads a key from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<NodeKey, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| e.to_string())?;
        Ok(NodeKey {
            pkcs8: der.to_vec(),
            pair,
        })
    }

    /// Loads `dir/node.key`, or makes and stores a new key there on first start.
    pub fn load_or_create(dir: &Path) -> Result<NodeKey, IdentityError> {
        let path = dir.join("node.key");
        if path.exists() {
            return NodeKey::load(&path);
        }
        let key = NodeKey::generate()?;
        secret_file::write_atomic(&path, key.to_pem().as_bytes(), Visibility::Private).map_err(
            |source| IdentityError::Io {
                path: path.clone(),
                source,
            },
        )?;
        tracing::info!(node_id = %key.node_id(), path = %path.display(), "created node identity");
        Ok(key)
    }

    /// Loads an existing key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<NodeKey, IdentityError> {
        let io = |source| IdentityError::Io {
            path: path.to_path_buf(),
            source,
        };
        secret_file::check_private(path).map_err(io)?;
        let text = std::fs::read_to_string(path).map_err(io)?;
        let pem = pem_decode(&text, "PRIVATE KEY").map_err(|reason| IdentityError::Invalid {
            path: path.to_path_buf(),
            reason,
        })?;
        NodeKey::from_pkcs8(&pem).map_err(|reason| IdentityError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        NodeId::from_public_key(self.public_key())
    }

    /// Signs a message (beacons, admission requests).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }

    /// The PKCS#8 DER encoding, for rustls and rcgen.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The PEM encoding stored on disk.
    pub fn to_pem(&self) -> String {
        pem_encode("PRIVATE KEY", &self.pkcs8)
    }
}

/// Verifies an Ed25519 signature made by [`NodeKey::sign`].
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// Encodes DER as one PEM block.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}

/// Decodes the first PEM block of a text, insisting on its label.
pub(crate) fn pem_decode(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let block = pem::parse(text).map_err(|e| format!("not PEM: {e}"))?;
    if block.tag() != label {
        return Err(format!(
            "expected a `{label}` PEM block, found `{}`",
            block.tag()
        ));
    }
    Ok(block.into_contents())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_round_trips_and_is_short() {
        let key = NodeKey::generate().unwrap();
        let id = key.node_id();
        let s = id.to_string();
        assert_eq!(s.len(), 16);
        assert!(s
            .chars()
            .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)));
        assert_eq!(s.parse::<NodeId>().unwrap(), id);
        assert_eq!(s.to_uppercase().parse::<NodeId>().unwrap(), id);
        assert!("not-an-id".parse::<NodeId>().is_err());
        assert!("aaaa".parse::<NodeId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        let bin = postcard::to_stdvec(&id).unwrap();
        assert_eq!(postcard::from_bytes::<NodeId>(&bin).unwrap(), id);
    }

    #[test]
    fn key_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodeKey::load_or_create(dir.path()).unwrap();
        let b = NodeKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.node_id(), b.node_id());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn signatures_verify() {
        let key = NodeKey::generate().unwrap();
        let sig = key.sign(b"hello");
        assert!(verify_signature(key.public_key(), b"hello", &sig));
        assert!(!verify_signature(key.public_key(), b"hellO", &sig));
    }

    #[test]
    fn garbage_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.key");
        secret_file::write_atomic(
            &p,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            Visibility::Private,
        )
        .unwrap();
        assert!(matches!(
            NodeKey::load(&p),
            Err(IdentityError::Invalid { .. })
        ));
    }
}
