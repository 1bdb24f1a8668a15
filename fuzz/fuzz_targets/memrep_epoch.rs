//! Fuzzes what a backup accepts from the network: a sequence of epoch parts (length-prefixed
//! in the input) fed to the epoch assembler must be refused or assembled — never panic, never
//! assemble an epoch whose pages fall outside its RAM and disk — and a QMP line must parse or fail.
#![no_main]

use hyphae_memrep::epoch::assembler::{Assembler, Committed};
use hyphae_memrep::qmp::parse_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_message(data);
    let mut asm = Assembler::new(
        "vm1",
        Committed {
            generation: 1,
            epoch: 3,
            ram_bytes: 0,
            disk_bytes: 0,
        },
    );
    let mut rest = data;
    while rest.len() >= 2 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        let part = &rest[..len.min(rest.len())];
        rest = &rest[part.len()..];
        match asm.push(part) {
            Ok(Some(epoch)) => {
                let pages = (epoch.header.ram_bytes + epoch.header.disk_bytes) / 4096;
                assert!(epoch.indices.iter().all(|&i| u64::from(i) < pages));
                assert_eq!(epoch.data.len(), epoch.indices.len() * 4096);
                return;
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
});
