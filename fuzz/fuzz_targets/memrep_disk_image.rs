//! Fuzzes what memrep accepts about a VM's disk from the network: the `disk` field of a VM spec
//! (`POST /api/v1/vms`, a local path or `mesh:/PATH`) must parse or be refused, and an image's
//! first bytes (from the mesh store) and its size must be judged without a panic.
#![no_main]

use hyphae_memrep::vm_disk::{check_size, sniff_format, DiskSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(source) = DiskSource::parse(s) {
            if let DiskSource::Mesh(p) = &source {
                assert!(p.starts_with('/') && !p.contains("//"));
            }
            let _ = source.display();
        }
    }
    let _ = sniff_format(data);
    if data.len() >= 16 {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&data[..8]);
        b.copy_from_slice(&data[8..16]);
        let _ = check_size("fuzz", u64::from_le_bytes(a), u64::from_le_bytes(b));
    }
});
