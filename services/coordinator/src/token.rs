//! Join tokens: `hyphae1.<mesh id>.<token id>.<secret>.<CA pin>`.
//!
//! The token id names the stored record; the secret proves the holder was given the token (the
//! mesh stores only its BLAKE3); the CA pin lets a node that knows nothing else verify that the
//! admission server it dials belongs to this mesh (see `hyphae_core::transport::ca_pin`).

use data_encoding::BASE32_DNSSEC;
use hyphae_core::transport::CA_PIN_BYTES;

const PREFIX: &str = "hyphae1";
const ID_BYTES: usize = 5;
const SECRET_BYTES: usize = 20;

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The mesh it admits to (as printed by `hyphae status`).
    pub mesh_id: String,
    /// The token's id (the key of its record).
    pub id: String,
    /// The secret (never stored by the mesh).
    pub secret: Vec<u8>,
    /// The CA pin.
    pub ca_pin: [u8; CA_PIN_BYTES],
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("mesh_id", &self.mesh_id)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a token string is not a token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed join token: {0}")]
pub struct TokenFormatError(&'static str);

impl JoinToken {
    /// A fresh token for this mesh and CA.
    pub fn generate(mesh_id: &str, ca_pin: [u8; CA_PIN_BYTES]) -> JoinToken {
        let id: [u8; ID_BYTES] = rand::random();
        let secret: [u8; SECRET_BYTES] = rand::random();
        JoinToken {
            mesh_id: mesh_id.to_string(),
            id: BASE32_DNSSEC.encode(&id),
            secret: secret.to_vec(),
            ca_pin,
        }
    }

    /// BLAKE3 of the secret: what the mesh stores and compares.
    pub fn secret_hash(&self) -> [u8; 32] {
        *blake3::hash(&self.secret).as_bytes()
    }

    /// Parses a token string.
    pub fn parse(text: &str) -> Result<JoinToken, TokenFormatError> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let [prefix, mesh, id, secret, pin] = parts[..] else {
            return Err(TokenFormatError("expected 5 dot-separated parts"));
        };
        if prefix != PREFIX {
            return Err(TokenFormatError("does not start with hyphae1"));
        }
        let id_bytes = BASE32_DNSSEC
            .decode(id.as_bytes())
            .map_err(|_| TokenFormatError("token id is not base32"))?;
        if id_bytes.len() != ID_BYTES {
            return Err(TokenFormatError("token id has the wrong length"));
        }
        let secret = BASE32_DNSSEC
            .decode(secret.as_bytes())
            .map_err(|_| TokenFormatError("secret is not base32"))?;
        if secret.len() != SECRET_BYTES {
            return Err(TokenFormatError("secret has the wrong length"));
        }
        let pin_bytes = BASE32_DNSSEC
            .decode(pin.as_bytes())
            .map_err(|_| TokenFormatError("CA pin is not base32"))?;
        let ca_pin: [u8; CA_PIN_BYTES] = pin_bytes
            .try_into()
            .map_err(|_| TokenFormatError("CA pin has the wrong length"))?;
        if mesh.is_empty() || !mesh.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(TokenFormatError("mesh id is not alphanumeric"));
        }
        Ok(JoinToken {
            mesh_id: mesh.to_string(),
            id: id.to_string(),
            secret,
            ca_pin,
        })
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}.{}.{}",
            self.mesh_id,
            self.id,
            BASE32_DNSSEC.encode(&self.secret),
            BASE32_DNSSEC.encode(&self.ca_pin)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = JoinToken::generate("abcdefgh23456789", [7; CA_PIN_BYTES]);
        let text = t.to_string();
        assert!(text.starts_with("hyphae1.abcdefgh23456789."));
        assert_eq!(JoinToken::parse(&text).unwrap(), t);
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "hyphae1",
            "hyphae2.a.b.c.d",
            "hyphae1.m.!!.x.y",
            "a.b.c.d.e.f",
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
        let t = JoinToken::generate("m", [1; CA_PIN_BYTES]).to_string();
        let truncated = &t[..t.len() - 3];
        assert!(JoinToken::parse(truncated).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let t = JoinToken::generate("m", [1; CA_PIN_BYTES]);
        let secret = BASE32_DNSSEC.encode(&t.secret);
        assert!(!format!("{t:?}").contains(&secret));
    }
}
