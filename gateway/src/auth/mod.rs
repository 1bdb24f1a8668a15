//! Who may use the API: the admin password, API tokens, login sessions and the login rate
//! limit. Everything is held in the coordinator's key space, so every node of the mesh accepts
//! the same password, tokens and session cookies.

pub mod api_token;
pub mod middleware;
pub mod password;
pub mod rate_limit;
pub mod session;

/// The key-space table of the gateway's secrets: `admin_password` (argon2 PHC string) and
/// `session_key` (hex of 32 random bytes, made by the first gateway that starts).
pub const AUTH_TABLE: &str = "gateway_auth";
/// The key of the admin password's hash.
pub const PASSWORD_KEY: &str = "admin_password";
/// The key of the mesh-wide session signing key.
pub const SESSION_KEY: &str = "session_key";
/// The key-space table of API tokens: token id → [`api_token::TokenRecord`].
pub const TOKENS_TABLE: &str = "api_tokens";
