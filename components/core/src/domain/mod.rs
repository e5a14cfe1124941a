//! Domain types. Each is made only through `parse` (or `TryFrom`), so holding one means it is
//! valid. None of them knows JSON or SQL: `api` and `store` convert at the edges.

pub(crate) mod channel;
pub(crate) mod deployment;
pub(crate) mod dora;
pub(crate) mod failure;
pub(crate) mod ids;
pub(crate) mod image;
pub(crate) mod org;
pub(crate) mod receiver;
pub(crate) mod registry;
pub(crate) mod settings;
pub(crate) mod sorted_runs;
pub(crate) mod subscription;
pub(crate) mod time;
pub(crate) mod token;
pub(crate) mod version;

pub(crate) use channel::Channel;
pub(crate) use ids::RegistryId;
pub(crate) use image::ImageId;
pub(crate) use org::OrgId;
pub(crate) use registry::{ContainerRegistryId, ImageRegistry, ImageRepositoryName, TokenVaultId};
pub use time::Timestamp;
pub use token::Role;
pub(crate) use version::{ImageVersion, SemVersion, UpdateType};

/// What recording something did: a new record, or the one a retry of the same request made
/// first (answered 200 with that record, so the sender stops retrying).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Recorded<T> {
    New(T),
    Existing(T),
}

/// The reason given when a required string is empty.
pub(crate) const EMPTY: &str = "must not be empty";

/// Rejects control characters: they break logs, terminals and CSV exports downstream, and no
/// identifier or name in this domain needs one. Also rejects invisible format characters
/// (Unicode general category Cf: bidi overrides and isolates U+202A–202E and U+2066–2069,
/// zero-width space and joiners, the BOM, …) and the line and paragraph separators U+2028 and
/// U+2029: in a name they let one identifier pass for another in any UI or log (U+202E after
/// `acme` shows everything after it reversed). Free text (a commit message) is checked
/// elsewhere and keeps them.
pub(crate) fn check_printable(field: &str, value: &str) -> Result<(), crate::Error> {
    if value.chars().any(char::is_control) {
        return Err(crate::Error::invalid(
            field,
            "must not contain control characters",
        ));
    }
    if let Some(c) = value.chars().find(|&c| is_invisible(c)) {
        return Err(crate::Error::invalid(
            field,
            format!(
                "must not contain invisible or bidirectional formatting characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// A character that changes how text around it is shown without being shown itself: what
/// identifiers refuse, and what the dashboard shows as a marker in free text.
pub fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.general_category() == GeneralCategory::Format || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A required, length-limited, printable string.
pub(crate) fn check_text(field: &str, value: &str, max_chars: usize) -> Result<(), crate::Error> {
    if value.is_empty() {
        return Err(crate::Error::invalid(field, EMPTY));
    }
    if value.chars().count() > max_chars {
        return Err(crate::Error::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    check_printable(field, value)
}
