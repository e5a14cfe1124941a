//! The organization id: the tenant every row belongs to.

use crate::Error;

/// An organization id: 1–64 characters of ASCII letters, digits, `-`, `_` and `.`, starting
/// with a letter or digit. UUIDs and slugs both fit; nothing that needs escaping does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OrgId(String);

impl OrgId {
    pub(crate) const MAX_LEN: usize = 64;

    pub(crate) fn parse(field: &str, value: &str) -> Result<OrgId, Error> {
        if value.is_empty() {
            return Err(Error::invalid(field, super::EMPTY));
        }
        if value.len() > Self::MAX_LEN {
            return Err(Error::invalid(field, "must be at most 64 characters"));
        }
        let first_ok = value.starts_with(|c: char| c.is_ascii_alphanumeric());
        let rest_ok = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !first_ok || !rest_ok {
            return Err(Error::invalid(
                field,
                "must be ASCII letters, digits, '-', '_' or '.', starting with a letter or digit",
            ));
        }
        Ok(OrgId(value.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids_are_slugs_or_uuids() {
        for ok in [
            "acme",
            "0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d",
            "team_a.eu-1",
        ] {
            assert!(OrgId::parse("org_id", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-acme",
            "acme corp",
            "acme'; DROP TABLE x;--",
            &"a".repeat(65),
            "ä",
        ] {
            assert!(OrgId::parse("org_id", bad).is_err(), "{bad}");
        }
    }
}
