//! Resource ids. Ids are UUIDv7: time-ordered, so new rows land at the end of their index
//! and "newest first" is "largest id first". On the wire they are hyphenated text; stored,
//! their 16 bytes (migration 0007), which sort exactly as the text does.

use uuid::Uuid;

use crate::Error;

/// An id type: a UUID that only parsing or a fresh id makes, shown and stored in one form.
macro_rules! id {
    ($(#[$doc:meta])* $vis:vis $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis struct $name(Uuid);

        #[allow(dead_code, reason = "ids only rows hold are never parsed or shown alone")]
        impl $name {
            /// A fresh id (from `Env::ids`).
            #[allow(dead_code, reason = "not every id is minted here: some come from rows")]
            pub(crate) fn new(id: Uuid) -> $name {
                $name(id)
            }

            /// Parses an id from a path, query, body or row; a malformed id is a 400 naming
            /// `field`.
            $vis fn parse(field: &str, value: &str) -> Result<$name, Error> {
                parse_uuid(field, value).map($name)
            }

            /// The wire form: lowercase hyphenated, which sorts like the UUID.
            pub(crate) fn to_text(self) -> String {
                self.0.hyphenated().to_string()
            }
        }

        impl StoredId for $name {
            fn from_uuid(id: Uuid) -> $name {
                $name(id)
            }
        }

        impl From<$name> for crate::db::Value {
            fn from(id: $name) -> crate::db::Value {
                crate::db::Value::Blob(id.0.as_bytes().to_vec())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

id!(
    /// The id of an image registry.
    pub(crate) RegistryId
);
id!(
    /// The id of an image (one recorded build).
    pub(crate) ImageId
);
id!(
    /// The id of an org token.
    pub(crate) TokenId
);
id!(
    /// The id of a recorded deployment (its lead-time record).
    pub(crate) LeadTimeId
);
id!(
    /// The id of an app environment (project, app, environment).
    pub(crate) AppEnvironmentId
);
id!(
    /// The id of an environment of an org.
    pub(crate) EnvironmentId
);
id!(
    /// The id of a registry's push receiver (its delivery URL's last-but-one segment).
    pub(crate) ReceiverId
);
id!(
    /// The id of a registry's deploy-trigger subscription.
    pub(crate) SubscriptionId
);
id!(
    /// The id of one event sent (and re-sent) to a subscription: the Standard Webhooks
    /// `webhook-id` its receivers de-duplicate on. Random, not time-ordered: the outbox row is
    /// made by a trigger in SQL.
    pub(crate) DeliveryId
);

/// An id type as rows hold it: 16 bytes (`db::Row::id`).
pub(crate) trait StoredId: Sized {
    fn from_uuid(id: Uuid) -> Self;
}

/// An id column that may hold more than one kind of id (a delivery's subject).
impl StoredId for Uuid {
    fn from_uuid(id: Uuid) -> Self {
        id
    }
}

/// Parses a hyphenated UUID (the only form we hand out); anything else is a 400.
pub(crate) fn parse_uuid(field: &str, value: &str) -> Result<Uuid, Error> {
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
