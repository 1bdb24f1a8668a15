//! Fuzzes the matrix file parser (job inputs come from mesh files anyone with write access
//! made): any bytes decode or fail cleanly, never panic or allocate past the limit; whatever
//! decodes re-encodes to the same bytes. The same bytes go through the MLP weights parser.
#![no_main]

use hyphae_compute::{matrix_file, mlp::Mlp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = matrix_file::decode(data) {
        assert_eq!(matrix_file::encode(&m), data);
    }
    if let Ok(model) = Mlp::decode(data) {
        assert_eq!(model.encode(), data);
    }
});
