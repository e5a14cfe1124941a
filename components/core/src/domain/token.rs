//! API token roles and the hashing of token secrets.
//!
//! Tokens are stored as SHA-256 hex digests: a leaked database does not leak credentials,
//! and lookup stays an indexed equality. Secrets are 256 random bits, so a salt or a slow
//! hash adds nothing (there is no dictionary to attack).

use sha2::{Digest, Sha256};

use crate::Error;

use super::ids::TokenId;
use super::{OrgId, Timestamp};

/// What a token may do, in increasing power; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read registries, versions, images and DORA figures of its org.
    Read,
    /// Also create and change registries, versions, images and deployments.
    Write,
    /// Also delete registries and manage its org's tokens.
    Admin,
}

impl Role {
    pub fn parse(field: &str, value: &str) -> Result<Role, Error> {
        match value {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::invalid(field, "must be one of read, write, admin")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// The prefix of every token we mint: makes them recognisable to secret scanners.
pub(crate) const TOKEN_PREFIX: &str = "cdi_";

/// Formats 32 random bytes as a token: `cdi_` + 64 hex digits.
pub(crate) fn format_token(secret: [u8; 32]) -> String {
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 64);
    token.push_str(TOKEN_PREFIX);
    token.push_str(&hex(&secret));
    token
}

/// The SHA-256 hex digest under which a token is stored and looked up.
pub(crate) fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// A stored token, without its secret (which is never stored).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiToken {
    pub(crate) token_id: TokenId,
    pub(crate) org_id: OrgId,
    pub(crate) role: Role,
    pub(crate) name: String,
    pub(crate) created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
        assert!(Role::parse("role", "owner").is_err());
    }

    #[test]
    fn digests_are_sha256_hex() {
        // echo -n abc | sha256sum
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let token = format_token([0xab; 32]);
        assert!(token.starts_with("cdi_abab") && token.len() == 68);
    }
}
