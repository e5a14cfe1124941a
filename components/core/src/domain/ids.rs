//! Resource ids. Ids are UUIDv7: time-ordered, so new rows land at the end of their index
//! and "newest first" is "largest id first".

use uuid::Uuid;

use crate::Error;

/// The id of an image registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistryId(Uuid);

impl RegistryId {
    pub fn new(id: Uuid) -> RegistryId {
        RegistryId(id)
    }

    /// Parses an id from a path or query; a malformed id is a 400 naming `field`.
    pub fn parse(field: &str, value: &str) -> Result<RegistryId, Error> {
        parse_uuid(field, value).map(RegistryId)
    }

    /// The stored and wire form: lowercase hyphenated, which sorts like the UUID itself.
    pub fn to_text(&self) -> String {
        self.0.hyphenated().to_string()
    }
}

impl std::fmt::Display for RegistryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Parses a hyphenated UUID (the only form we hand out); anything else is a 400.
pub fn parse_uuid(field: &str, value: &str) -> Result<Uuid, Error> {
    // Only the 36-character hyphenated form: `Uuid::try_parse` would also take braced, URN
    // and simple forms, which we never hand out.
    Some(value)
        .filter(|v| v.len() == 36)
        .and_then(|v| Uuid::try_parse(v).ok())
        .ok_or_else(|| {
            Error::malformed_field(
                field,
                format!("{field} must be a UUID like 0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyphenated_uuids_are_registry_ids() {
        let id = "0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0d";
        assert_eq!(RegistryId::parse("registry_id", id).unwrap().to_text(), id);
        for bad in [
            "",
            "42",
            "0190a5c47a2e7c1b8c3d5e6f7a8b9c0d",
            "0190a5c4-7a2e-7c1b-8c3d-5e6f7a8b9c0z",
        ] {
            let error = RegistryId::parse("registry_id", bad).unwrap_err();
            assert_eq!(error.status(), http::StatusCode::BAD_REQUEST);
        }
    }
}
