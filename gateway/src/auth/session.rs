//! Login sessions as signed cookies: `<expiry>.<nonce>.<mac>` where the MAC is BLAKE3 keyed with
//! a key derived from the mesh-wide session key and the current password hash.
//!
//! Signed (not server-side) so that a cookie issued by one node is accepted by every node
//! without a write per login; deriving the key from the password hash means changing the
//! password (`hyphae passwd`) ends every session at once.

/// The cookie's name.
pub const COOKIE_NAME: &str = "hyphae_session";

/// The secrets a session MAC depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    key: [u8; 32],
}

impl SessionKeys {
    /// Keys from the mesh's session key (hex) and the admin password's PHC string.
    pub fn derive(session_key_hex: &str, password_phc: &str) -> SessionKeys {
        let mut hasher = blake3::Hasher::new_derive_key("hyphae gateway session v1");
        hasher.update(session_key_hex.as_bytes());
        hasher.update(&[0]);
        hasher.update(password_phc.as_bytes());
        SessionKeys {
            key: *hasher.finalize().as_bytes(),
        }
    }

    fn mac(&self, body: &str) -> String {
        blake3::keyed_hash(&self.key, body.as_bytes())
            .to_hex()
            .to_string()
    }

    /// A new cookie value valid until `expires_unix`.
    pub fn issue(&self, expires_unix: u64) -> String {
        let mut nonce = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let body = format!("{expires_unix}.{}", data_encoding::HEXLOWER.encode(&nonce));
        let mac = self.mac(&body);
        format!("{body}.{mac}")
    }

    /// Whether a cookie value is authentic and unexpired at `now_unix`.
    pub fn verify(&self, value: &str, now_unix: u64) -> bool {
        let Some((body, mac)) = value.rsplit_once('.') else {
            return false;
        };
        let Some((expiry, _nonce)) = body.split_once('.') else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<u64>() else {
            return false;
        };
        let Ok(given) = blake3::Hash::from_hex(mac) else {
            return false;
        };
        // blake3::Hash compares in constant time.
        given == blake3::keyed_hash(&self.key, body.as_bytes()) && now_unix < expiry
    }
}

/// A random session key (hex) for a mesh that has none yet.
pub fn generate_session_key() -> String {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    data_encoding::HEXLOWER.encode(&key)
}

/// The `Set-Cookie` value for a session (Secure, HttpOnly, SameSite=Strict).
pub fn set_cookie(value: &str, max_age_s: u64) -> String {
    format!("{COOKIE_NAME}={value}; Path=/; Max-Age={max_age_s}; Secure; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
}

/// The session cookie's value in a `Cookie` header, if any.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_expire_and_password_change() {
        let k = SessionKeys::derive("aa", "$argon2id$one");
        let c = k.issue(100);
        assert!(k.verify(&c, 99));
        assert!(!k.verify(&c, 100), "expired");
        let other = SessionKeys::derive("aa", "$argon2id$two");
        assert!(!other.verify(&c, 1), "a new password ends sessions");
        let mut forged = c.clone();
        forged.replace_range(0..3, "999");
        assert!(!k.verify(&forged, 1));
        assert!(!k.verify("garbage", 1));
        let header = format!("a=b; {COOKIE_NAME}={c}; x=y");
        assert_eq!(from_cookie_header(&header), Some(c.as_str()));
    }
}
