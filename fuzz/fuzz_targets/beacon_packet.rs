//! Fuzzes the beacon packet parser and the discovery state fed from the live port: any bytes
//! must decode or fail cleanly, never panic; whatever decodes must re-encode to the same bytes
//! (an unsigned hello exactly, an announce or signed hello up to its MAC); and no unauthenticated input may ever make a
//! member out of nothing.
#![no_main]

use std::time::{Duration, Instant};

use hyphae_beacon::discovery::{Discovery, Me, Standing};
use hyphae_beacon::packet::{self, Kind, MacKey};
use hyphae_core::pki::{MeshId, SecretKey};
use hyphae_core::NodeId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = packet::decode(data) {
        let key = MacKey::derive(&SecretKey([7; 32]));
        let signed = frame.mac().is_some();
        let again = match frame.packet.kind {
            Kind::Hello if signed => frame.packet.encode_signed_hello(&key),
            Kind::Hello => frame.packet.encode_hello(),
            Kind::Announce => frame.packet.encode_announce(&key),
        }
        .expect("a decoded packet re-encodes");
        let body = data.len() - if signed { 32 } else { 0 };
        assert_eq!(&again[..body], &data[..body]);
    }
    let now = Instant::now();
    let me = Me {
        node: NodeId::from_raw([1; 10]),
        name: "fuzz".into(),
        epoch: 1,
        ports: (7445, 7441, 7440),
    };
    let mut member = Discovery::new(
        me,
        Standing::Member {
            mesh: MeshId::from_bytes([9; 10]),
            key: MacKey::derive(&SecretKey([9; 32])),
        },
        now,
        Duration::from_secs(10),
    );
    let from = "10.0.0.2:41234".parse().expect("address");
    let _ = member.on_datagram(now, data, from);
    // Without the key nobody can become a member.
    assert!(member.members(now).is_empty());
});
