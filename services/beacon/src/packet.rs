//! The beacon packet: a compact, versioned binary format, authenticated with a BLAKE3-keyed MAC.
//!
//! ```text
//! offset size  field
//! 0      4     magic "HYPB"
//! 4      1     version (1)
//! 5      1     kind: 1 announce (a member, MAC'd), 2 hello (an unadmitted node, no MAC)
//! 6      1     flags: bit 0 QUERY (please answer me now), bit 1 AUTO_INIT (hello only: the
//!              sender runs with `[discovery] auto_init`, so a founder may admit it in its genesis window),
//!              bit 2 SIGNED (hello only: a MAC under `[discovery] auto_init_secret` follows)
//! 7      1     role: 0 none, 1 bee, 2 prince, 3 queen
//! 8      10    mesh id (announce: the sender's mesh; hello: the mesh it wants, zero = any)
//! 18     10    node id
//! 28     8     epoch (big-endian; grows at every start of the sender)
//! 36     8     sequence (big-endian; grows with every packet within an epoch)
//! 44     2     admission port
//! 46     2     coordinator port
//! 48     2     node agent port
//! 50     1     address count n (at most 8)
//! 51     ..    n addresses: family (4 or 6) then 4 or 16 bytes
//! ..     1     name length (at most 63) then the name (ASCII letters, digits, '-')
//! ..     32    announce: MAC = BLAKE3-keyed(derive(beacon key), every byte before it);
//!              SIGNED hello: the same under derive(auto_init secret)
//! ```
//!
//! Decoding checks structure only; [`Frame::verify`] checks the MAC. Nothing here does I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hyphae_core::pki::{MeshId, SecretKey};
use hyphae_core::NodeId;

/// The first four bytes of every beacon packet.
pub const MAGIC: [u8; 4] = *b"HYPB";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Most addresses one packet carries (a node with more advertises its first ones).
pub const MAX_ADDRESSES: usize = 8;
/// Longest node name (a DNS label).
pub const MAX_NAME: usize = 63;
/// Length of the MAC trailer of an announce.
pub const MAC_LEN: usize = 32;
/// Largest packet this format can produce; anything longer is malformed.
pub const MAX_PACKET: usize = 51 + MAX_ADDRESSES * 17 + 1 + MAX_NAME + MAC_LEN;
const HEADER: usize = 51;
const FLAG_QUERY: u8 = 1;
const FLAG_AUTO_INIT: u8 = 2;
const FLAG_SIGNED: u8 = 4;
/// BLAKE3 `derive_key` context of the key that signs `auto_init` hellos.
const AUTO_INIT_CONTEXT: &str = "hyphae 2026 auto_init hello MAC v1";
/// BLAKE3 `derive_key` context: the MAC key is never the raw beacon key.
const MAC_CONTEXT: &str = "hyphae 2026 beacon packet MAC v1";

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A member's authenticated announcement.
    Announce,
    /// An unadmitted node's unauthenticated hello: it can only ever make a pending entry.
    Hello,
}

/// The sender's role in its mesh, as it last knew it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Not a member, or role not known yet.
    None,
    /// A Raft learner.
    Bee,
    /// A Raft voter.
    Prince,
    /// The Raft leader.
    Queen,
}

impl Role {
    fn to_byte(self) -> u8 {
        match self {
            Role::None => 0,
            Role::Bee => 1,
            Role::Prince => 2,
            Role::Queen => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Role> {
        Some(match b {
            0 => Role::None,
            1 => Role::Bee,
            2 => Role::Prince,
            3 => Role::Queen,
            _ => return None,
        })
    }

    /// From the coordinator's `role` string (`queen`, `prince`, `bee`, anything else none).
    pub fn from_name(name: &str) -> Role {
        match name {
            "queen" => Role::Queen,
            "prince" => Role::Prince,
            "bee" => Role::Bee,
            _ => Role::None,
        }
    }
}

/// The decoded content of a beacon packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Announce or hello.
    pub kind: Kind,
    /// The sender asks every listener to answer at once (sent at start, for fast convergence).
    pub query: bool,
    /// Hello only: the sender has `auto_init` on (it takes part in electing a founder, and the
    /// founder's genesis window may admit it). Always false in an announce.
    pub auto_init: bool,
    /// The sender's role.
    pub role: Role,
    /// The sender's mesh (announce) or the mesh it wants to join (hello; `None` = any).
    pub mesh: Option<MeshId>,
    /// The sender.
    pub node: NodeId,
    /// Grows at every start of the sender (replay protection across restarts).
    pub epoch: u64,
    /// Grows with every packet within an epoch.
    pub seq: u64,
    /// The sender's admission port (joiners dial it).
    pub admission_port: u16,
    /// The sender's coordinator port.
    pub coordinator_port: u16,
    /// The sender's node agent port.
    pub node_port: u16,
    /// The sender's addresses.
    pub addresses: Vec<IpAddr>,
    /// The sender's display name.
    pub name: String,
}

/// Why bytes are not a beacon packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the fixed header, or cut off in a field.
    #[error("packet too short")]
    Truncated,
    /// Longer than any packet this format can produce, or bytes after the end.
    #[error("packet too long or has trailing bytes")]
    TooLong,
    /// Not a beacon packet at all.
    #[error("bad magic")]
    BadMagic,
    /// A version this code does not speak.
    #[error("unsupported version {0}")]
    Version(u8),
    /// An unknown kind, role, flag or address family.
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}

/// Why a packet could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The name is not a DNS label of at most 63 characters.
    #[error("node name must be 1-63 ASCII letters, digits or '-'")]
    BadName,
    /// An announce needs a mesh.
    #[error("an announce needs a mesh id")]
    NoMesh,
}

/// The key that authenticates beacon packets, derived from the mesh's beacon key.
#[derive(Clone)]
pub struct MacKey([u8; 32]);

impl MacKey {
    /// Derives the MAC key from the mesh secret.
    pub fn derive(beacon_key: &SecretKey) -> MacKey {
        MacKey(blake3::derive_key(MAC_CONTEXT, &beacon_key.0))
    }

    /// The key of `[discovery] auto_init_secret`, which signs hellos (never a mesh's key).
    pub fn from_auto_init_secret(secret: &str) -> MacKey {
        MacKey(blake3::derive_key(AUTO_INIT_CONTEXT, secret.as_bytes()))
    }

    /// A sub-key for another use of the beacon key (mDNS tags), never equal to the MAC key.
    pub fn derive_sub(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.0)
    }

    fn mac(&self, bytes: &[u8]) -> blake3::Hash {
        blake3::keyed_hash(&self.0, bytes)
    }
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

/// A structurally valid packet with the bytes its MAC covers; see [`Frame::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The decoded fields.
    pub packet: Packet,
    signed: &'a [u8],
    mac: Option<[u8; MAC_LEN]>,
}

impl Frame<'_> {
    /// Whether the MAC is right under `key` (always false for an unsigned hello).
    pub fn verify(&self, key: &MacKey) -> bool {
        match &self.mac {
            // blake3::Hash compares in constant time.
            Some(mac) => key.mac(self.signed) == blake3::Hash::from_bytes(*mac),
            None => false,
        }
    }

    /// The MAC bytes (identifies an exact copy of a packet).
    pub fn mac(&self) -> Option<&[u8; MAC_LEN]> {
        self.mac.as_ref()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Packet {
    /// Encodes an announce with its MAC.
    pub fn encode_announce(&self, key: &MacKey) -> Result<Vec<u8>, EncodeError> {
        if self.mesh.is_none() {
            return Err(EncodeError::NoMesh);
        }
        let mut out = self.encode_body(Kind::Announce, false)?;
        let mac = key.mac(&out);
        out.extend_from_slice(mac.as_bytes());
        Ok(out)
    }

    /// Encodes a hello (no MAC: the sender has no beacon key yet).
    pub fn encode_hello(&self) -> Result<Vec<u8>, EncodeError> {
        self.encode_body(Kind::Hello, false)
    }

    /// Encodes a hello signed under the `auto_init` secret's key (flag SIGNED, MAC trailer).
    pub fn encode_signed_hello(&self, key: &MacKey) -> Result<Vec<u8>, EncodeError> {
        let mut out = self.encode_body(Kind::Hello, true)?;
        let mac = key.mac(&out);
        out.extend_from_slice(mac.as_bytes());
        Ok(out)
    }

    fn encode_body(&self, kind: Kind, signed: bool) -> Result<Vec<u8>, EncodeError> {
        if !valid_name(&self.name) {
            return Err(EncodeError::BadName);
        }
        let mut out = Vec::with_capacity(MAX_PACKET);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(match kind {
            Kind::Announce => 1,
            Kind::Hello => 2,
        });
        let mut flags = if self.query { FLAG_QUERY } else { 0 };
        if self.auto_init && kind == Kind::Hello {
            flags |= FLAG_AUTO_INIT;
        }
        if signed && kind == Kind::Hello {
            flags |= FLAG_SIGNED;
        }
        out.push(flags);
        out.push(self.role.to_byte());
        out.extend_from_slice(self.mesh.as_ref().map(|m| m.as_bytes()).unwrap_or(&[0; 10]));
        out.extend_from_slice(self.node.as_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.admission_port.to_be_bytes());
        out.extend_from_slice(&self.coordinator_port.to_be_bytes());
        out.extend_from_slice(&self.node_port.to_be_bytes());
        let addresses = &self.addresses[..self.addresses.len().min(MAX_ADDRESSES)];
        out.push(addresses.len() as u8);
        for a in addresses {
            match a {
                IpAddr::V4(v4) => {
                    out.push(4);
                    out.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    out.push(6);
                    out.extend_from_slice(&v6.octets());
                }
            }
        }
        out.push(self.name.len() as u8);
        out.extend_from_slice(self.name.as_bytes());
        Ok(out)
    }
}

/// A bounds-checked reader over the packet bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
}

/// Decodes a packet's structure; the MAC is checked separately with [`Frame::verify`].
pub fn decode(bytes: &[u8]) -> Result<Frame<'_>, DecodeError> {
    if bytes.len() > MAX_PACKET {
        return Err(DecodeError::TooLong);
    }
    if bytes.len() < HEADER {
        return Err(DecodeError::Truncated);
    }
    let mut r = Reader { bytes, at: 0 };
    if r.array::<4>()? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let kind = match r.u8()? {
        1 => Kind::Announce,
        2 => Kind::Hello,
        _ => return Err(DecodeError::Invalid("kind")),
    };
    let flags = r.u8()?;
    if flags & !(FLAG_QUERY | FLAG_AUTO_INIT | FLAG_SIGNED) != 0 {
        return Err(DecodeError::Invalid("flags"));
    }
    if kind == Kind::Announce && flags & FLAG_AUTO_INIT != 0 {
        return Err(DecodeError::Invalid("auto_init flag on an announce"));
    }
    if kind == Kind::Announce && flags & FLAG_SIGNED != 0 {
        return Err(DecodeError::Invalid("signed flag on an announce"));
    }
    let role = Role::from_byte(r.u8()?).ok_or(DecodeError::Invalid("role"))?;
    let mesh_bytes = r.array::<10>()?;
    let mesh = (mesh_bytes != [0; 10]).then(|| MeshId::from_bytes(mesh_bytes));
    if kind == Kind::Announce && mesh.is_none() {
        return Err(DecodeError::Invalid("announce without mesh"));
    }
    let node = NodeId::from_raw(r.array::<10>()?);
    let epoch = u64::from_be_bytes(r.array::<8>()?);
    let seq = u64::from_be_bytes(r.array::<8>()?);
    let admission_port = u16::from_be_bytes(r.array::<2>()?);
    let coordinator_port = u16::from_be_bytes(r.array::<2>()?);
    let node_port = u16::from_be_bytes(r.array::<2>()?);
    let count = r.u8()? as usize;
    if count > MAX_ADDRESSES {
        return Err(DecodeError::Invalid("address count"));
    }
    let mut addresses = Vec::with_capacity(count);
    for _ in 0..count {
        addresses.push(match r.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
            _ => return Err(DecodeError::Invalid("address family")),
        });
    }
    let name_len = r.u8()? as usize;
    if name_len > MAX_NAME {
        return Err(DecodeError::Invalid("name length"));
    }
    let name = std::str::from_utf8(r.take(name_len)?)
        .ok()
        .filter(|n| valid_name(n))
        .ok_or(DecodeError::Invalid("name"))?
        .to_string();
    let signed = &bytes[..r.at];
    let mac = match kind {
        Kind::Announce => Some(r.array::<MAC_LEN>()?),
        Kind::Hello if flags & FLAG_SIGNED != 0 => Some(r.array::<MAC_LEN>()?),
        Kind::Hello => None,
    };
    if r.at != bytes.len() {
        return Err(DecodeError::TooLong);
    }
    Ok(Frame {
        packet: Packet {
            kind,
            query: flags & FLAG_QUERY != 0,
            auto_init: flags & FLAG_AUTO_INIT != 0,
            role,
            mesh,
            node,
            epoch,
            seq,
            admission_port,
            coordinator_port,
            node_port,
            addresses,
            name,
        },
        signed,
        mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> MacKey {
        MacKey::derive(&SecretKey([b; 32]))
    }

    fn sample() -> Packet {
        Packet {
            kind: Kind::Announce,
            query: true,
            auto_init: false,
            role: Role::Queen,
            mesh: Some(MeshId::from_bytes([7; 10])),
            node: NodeId::from_raw([3; 10]),
            epoch: 1_700_000_000_000,
            seq: 42,
            admission_port: 7445,
            coordinator_port: 7441,
            node_port: 7440,
            addresses: vec!["10.0.0.1".parse().unwrap(), "fe80::1".parse().unwrap()],
            name: "pi-kitchen".into(),
        }
    }

    #[test]
    fn announce_round_trips_and_verifies() {
        let p = sample();
        let bytes = p.encode_announce(&key(1)).unwrap();
        assert!(bytes.len() <= MAX_PACKET);
        let f = decode(&bytes).unwrap();
        assert_eq!(f.packet, p);
        assert!(f.verify(&key(1)));
        assert!(!f.verify(&key(2)), "another mesh's key must not verify");
    }

    #[test]
    fn hello_round_trips_and_never_verifies() {
        let mut p = sample();
        p.kind = Kind::Hello;
        p.mesh = None;
        let bytes = p.encode_hello().unwrap();
        let f = decode(&bytes).unwrap();
        assert_eq!(f.packet, p);
        assert!(!f.verify(&key(1)));

        p.auto_init = true;
        let bytes = p.encode_hello().unwrap();
        assert_eq!(decode(&bytes).unwrap().packet, p);
    }

    #[test]
    fn signed_hellos_verify_under_the_auto_init_secret_only() {
        let mut p = sample();
        p.kind = Kind::Hello;
        p.auto_init = true;
        let key = MacKey::from_auto_init_secret("correct horse battery staple");
        let bytes = p.encode_signed_hello(&key).unwrap();
        assert!(bytes.len() <= MAX_PACKET);
        let f = decode(&bytes).unwrap();
        assert_eq!(f.packet, p);
        assert!(f.verify(&key));
        assert!(!f.verify(&MacKey::from_auto_init_secret("another secret")));
        assert!(!decode(&p.encode_hello().unwrap()).unwrap().verify(&key));
        // Cut the MAC off and the flag no longer matches the length.
        assert!(decode(&bytes[..bytes.len() - MAC_LEN]).is_err());
    }

    #[test]
    fn the_auto_init_flag_belongs_to_hellos_only() {
        let mut p = sample();
        p.auto_init = true;
        // Never written into an announce...
        let bytes = p.encode_announce(&key(1)).unwrap();
        assert!(!decode(&bytes).unwrap().packet.auto_init);
        // ...and refused when someone sets it there.
        let mut forged = bytes.clone();
        forged[6] |= FLAG_AUTO_INIT;
        assert_eq!(
            decode(&forged).err(),
            Some(DecodeError::Invalid("auto_init flag on an announce"))
        );
    }

    #[test]
    fn any_flipped_bit_breaks_the_mac_or_the_structure() {
        let bytes = sample().encode_announce(&key(1)).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                if let Ok(f) = decode(&b) {
                    assert!(!f.verify(&key(1)), "byte {i} bit {bit} went unnoticed");
                }
            }
        }
    }

    #[test]
    fn malformed_inputs_are_refused() {
        let bytes = sample().encode_announce(&key(1)).unwrap();
        assert_eq!(decode(&bytes[..10]), Err(DecodeError::Truncated));
        assert_eq!(
            decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated)
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(DecodeError::TooLong));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert_eq!(decode(&magic), Err(DecodeError::BadMagic));
        let mut version = bytes.clone();
        version[4] = 9;
        assert_eq!(decode(&version), Err(DecodeError::Version(9)));
        let mut count = bytes.clone();
        count[50] = 200;
        assert_eq!(decode(&count), Err(DecodeError::Invalid("address count")));
        assert_eq!(decode(&[0u8; 4096]), Err(DecodeError::TooLong));
    }

    #[test]
    fn bad_names_and_meshless_announces_are_not_encoded() {
        let mut p = sample();
        p.name = "no spaces".into();
        assert_eq!(p.encode_announce(&key(1)), Err(EncodeError::BadName));
        let mut p = sample();
        p.mesh = None;
        assert_eq!(p.encode_announce(&key(1)), Err(EncodeError::NoMesh));
    }

    fn arb_packet() -> impl Strategy<Value = Packet> {
        let addr = prop_oneof![
            any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        ];
        (
            any::<bool>(),
            0u8..4,
            any::<[u8; 10]>(),
            any::<[u8; 10]>(),
            any::<(u64, u64)>(),
            any::<(u16, u16, u16)>(),
            proptest::collection::vec(addr, 0..=MAX_ADDRESSES),
            "[a-z0-9][a-z0-9-]{0,62}",
        )
            .prop_map(
                |(query, role, mesh, node, (epoch, seq), ports, addresses, name)| {
                    let mut mesh = mesh;
                    mesh[0] |= 1; // an announce always has a non-zero mesh
                    Packet {
                        kind: Kind::Announce,
                        query,
                        auto_init: false,
                        role: Role::from_byte(role).unwrap_or(Role::None),
                        mesh: Some(MeshId::from_bytes(mesh)),
                        node: NodeId::from_raw(node),
                        epoch,
                        seq,
                        admission_port: ports.0,
                        coordinator_port: ports.1,
                        node_port: ports.2,
                        addresses,
                        name,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn every_packet_round_trips(p in arb_packet(), k in any::<[u8; 32]>()) {
            let key = MacKey::derive(&SecretKey(k));
            let bytes = p.encode_announce(&key).unwrap();
            prop_assert!(bytes.len() <= MAX_PACKET);
            let f = decode(&bytes).unwrap();
            prop_assert!(f.verify(&key));
            prop_assert_eq!(f.packet, p);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn truncations_are_refused(p in arb_packet(), cut in 1usize..400) {
            let bytes = p.encode_announce(&MacKey::derive(&SecretKey([1; 32]))).unwrap();
            let cut = cut.min(bytes.len());
            prop_assert!(decode(&bytes[..bytes.len() - cut]).is_err());
        }
    }
}
