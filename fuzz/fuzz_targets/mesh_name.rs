//! Fuzzes the mesh name parser (DNS queries, `GET /api/v1/resolve/NAME`, `hyphae name set`):
//! any string must parse or fail cleanly, and what parses as a user name must be accepted again
//! in its canonical (lower-case, fully qualified) form.
#![no_main]

use hyphae_gateway::dns::name::{check_user_name, parse, MeshName};
use hyphae_gateway::dns::resolve::fully_qualified;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(MeshName::User(name)) = parse(text) {
        assert_eq!(check_user_name(&name).as_deref(), Ok(name.as_str()));
        assert_eq!(parse(&fully_qualified(&name)), Ok(MeshName::User(name)));
    }
    let _ = check_user_name(text);
});
