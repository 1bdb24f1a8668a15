//! API tokens for scripts: `hyphae_<id>_<secret>`, stored as the BLAKE3 of the secret under the
//! id, so a leaked key space does not leak usable tokens and a token can be listed and revoked
//! by its id.

use serde::{Deserialize, Serialize};

/// The prefix of every API token (so secret scanners and people recognise one).
pub const TOKEN_PREFIX: &str = "hyphae_";

/// A token as stored in the key space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Hex BLAKE3 of the secret part.
    pub secret_hash: String,
    /// A label given at creation.
    pub name: String,
    /// When it was made (Unix seconds).
    pub created_unix: u64,
}

/// A freshly made token: the text to hand out once and the record to store.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token id (key in the table).
    pub id: String,
    /// The whole token text, shown once.
    pub token: String,
    /// What to store.
    pub record: TokenRecord,
}

fn random_b32(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    data_encoding::BASE32_NOPAD
        .encode(&bytes)
        .to_ascii_lowercase()
}

/// Makes a new token labelled `name`.
pub fn generate(name: &str, now_unix: u64) -> NewToken {
    let id = random_b32(5);
    let secret = random_b32(20);
    NewToken {
        token: format!("{TOKEN_PREFIX}{id}_{secret}"),
        record: TokenRecord {
            secret_hash: blake3::hash(secret.as_bytes()).to_hex().to_string(),
            name: name.to_string(),
            created_unix: now_unix,
        },
        id,
    }
}

/// Splits a token into id and secret; `None` if it is not shaped like one.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok(id, 8) && ok(secret, 32)).then_some((id, secret))
}

/// Whether `secret` is the one `record` was made for (constant-time comparison).
pub fn matches(record: &TokenRecord, secret: &str) -> bool {
    match blake3::Hash::from_hex(&record.secret_hash) {
        Ok(stored) => stored == blake3::hash(secret.as_bytes()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = generate("ci", 1);
        let (id, secret) = parse(&t.token).unwrap();
        assert_eq!(id, t.id);
        assert!(matches(&t.record, secret));
        assert!(!matches(&t.record, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(parse("hyphae_x_y").is_none());
        assert!(parse("Bearer").is_none());
    }
}
