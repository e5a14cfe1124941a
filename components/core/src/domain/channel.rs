//! Channel names: the version streams inside a registry (`default`, `beta`, `release-2.x`).

use crate::Error;

/// A channel name: 1–63 characters of lowercase letters, digits, `-` and `.`, starting and
/// ending with a letter or digit (so `..` or `-beta` can never be one).
///
/// The limits make a channel safe inside an image tag (`{channel}-{major}.{minor}.{patch}` stays
/// a valid OCI tag) and inside a URL path segment without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Channel(String);

impl Channel {
    pub(crate) const MAX_LEN: usize = 63;

    pub(crate) fn parse(value: &str) -> Result<Channel, Error> {
        const FIELD: &str = "channel";
        if value.is_empty() {
            return Err(Error::invalid(FIELD, super::EMPTY));
        }
        if value.len() > Self::MAX_LEN {
            return Err(Error::invalid(FIELD, "must be at most 63 characters"));
        }
        let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let edges_ok = value.starts_with(alphanumeric) && value.ends_with(alphanumeric);
        if !edges_ok
            || !value
                .chars()
                .all(|c| alphanumeric(c) || c == '-' || c == '.')
        {
            return Err(Error::invalid(
                FIELD,
                "must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
            ));
        }
        Ok(Channel(value.to_owned()))
    }

    /// The channel every registry starts with and a CD request uses when it names none.
    pub(crate) fn default_channel() -> Channel {
        Channel("default".to_owned())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_follow_the_tag_safe_alphabet() {
        for ok in ["default", "beta", "release-2.x", "a", &"a".repeat(63)] {
            assert!(Channel::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Beta",
            "beta_1",
            "beta/1",
            "bêta",
            " beta",
            &"a".repeat(64),
            "a;--",
            "..",
            ".",
            "-beta",
            "beta-",
            ".x",
        ] {
            let error = Channel::parse(bad).unwrap_err();
            assert_eq!(
                error.status(),
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "{bad}"
            );
        }
    }
}
