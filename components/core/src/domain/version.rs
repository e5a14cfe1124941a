//! Semantic versions of channels and the rules that move them.
//!
//! A channel's version is `major.minor.patch` only: pre-release and build metadata have no
//! meaning for a CI channel, and the `{channel}-{major}.{minor}.{patch}` string is used as an
//! image tag, so it must stay simple.

use crate::Error;

use super::{Channel, RegistryId, Timestamp};

/// `major.minor.patch`, each within SQLite's signed 64-bit integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct SemVersion {
    major: u64,
    minor: u64,
    patch: u64,
}

/// How a new build moves its channel's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateType {
    /// `x.y.z` → `(x+1).0.0`
    Major,
    /// `x.y.z` → `x.(y+1).0`
    Minor,
    /// `x.y.z` → `x.y.(z+1)`
    Patch,
}

impl UpdateType {
    pub(crate) fn parse(field: &str, value: &str) -> Result<UpdateType, Error> {
        match value {
            "major" => Ok(UpdateType::Major),
            "minor" => Ok(UpdateType::Minor),
            "patch" => Ok(UpdateType::Patch),
            _ => Err(Error::invalid(field, "must be one of major, minor, patch")),
        }
    }

    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            UpdateType::Major => "major",
            UpdateType::Minor => "minor",
            UpdateType::Patch => "patch",
        }
    }
}

impl SemVersion {
    /// The largest component we store: SQLite integers are signed 64-bit.
    pub(crate) const MAX_PART: u64 = i64::MAX as u64;

    pub(crate) fn new(major: u64, minor: u64, patch: u64) -> Result<SemVersion, Error> {
        for (name, part) in [("major", major), ("minor", minor), ("patch", patch)] {
            if part > Self::MAX_PART {
                return Err(Error::invalid(
                    "version",
                    format!("{name} must be at most {}", Self::MAX_PART),
                ));
            }
        }
        Ok(SemVersion {
            major,
            minor,
            patch,
        })
    }

    /// Parses a version for `channel`: `1.2.3`, `v1.2.3` or `{channel}-1.2.3`. Anything else —
    /// another channel's prefix, pre-release or build metadata, leading zeros, missing parts —
    /// is a 422 naming `field`.
    pub(crate) fn parse_for_channel(
        field: &str,
        channel: &Channel,
        value: &str,
    ) -> Result<SemVersion, Error> {
        let channel_prefix = format!("{channel}-");
        let bare = value
            .strip_prefix(&channel_prefix)
            .or_else(|| value.strip_prefix('v'))
            .unwrap_or(value);
        let reason = || {
            format!(
                "must be MAJOR.MINOR.PATCH, optionally prefixed with 'v' or '{channel_prefix}' (got {value:?})"
            )
        };
        let parsed = semver::Version::parse(bare).map_err(|_| Error::invalid(field, reason()))?;
        if !parsed.pre.is_empty() || !parsed.build.is_empty() {
            return Err(Error::invalid(field, reason()));
        }
        SemVersion::new(parsed.major, parsed.minor, parsed.patch)
            .map_err(|_| Error::invalid(field, format!("parts must be at most {}", Self::MAX_PART)))
    }

    /// The next version for a build of `update_type`. Major resets minor and patch; minor resets
    /// patch. Overflow is refused rather than wrapped: a version never moves backwards.
    pub(crate) fn bump(self, update_type: UpdateType) -> Result<SemVersion, Error> {
        let overflow = || Error::Conflict {
            detail: format!(
                "cannot bump {} of {self}: it is at its maximum",
                update_type.as_str()
            ),
            field: Some("update_type".to_owned()),
        };
        let next = |part: u64| {
            part.checked_add(1)
                .filter(|p| *p <= Self::MAX_PART)
                .ok_or_else(overflow)
        };
        Ok(match update_type {
            UpdateType::Major => SemVersion {
                major: next(self.major)?,
                minor: 0,
                patch: 0,
            },
            UpdateType::Minor => SemVersion {
                major: self.major,
                minor: next(self.minor)?,
                patch: 0,
            },
            UpdateType::Patch => SemVersion {
                patch: next(self.patch)?,
                ..self
            },
        })
    }

    pub(crate) fn major(&self) -> u64 {
        self.major
    }

    pub(crate) fn minor(&self) -> u64 {
        self.minor
    }

    pub(crate) fn patch(&self) -> u64 {
        self.patch
    }

    /// The channel's version string, as images are tagged: `{channel}-{major}.{minor}.{patch}`.
    pub(crate) fn for_channel(&self, channel: &Channel) -> String {
        format!("{channel}-{self}")
    }
}

impl std::fmt::Display for SemVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The current version of one channel of one registry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImageVersion {
    pub(crate) registry_id: RegistryId,
    pub(crate) channel: Channel,
    pub(crate) version: SemVersion,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
}

impl ImageVersion {
    /// `"{channel}-{major}.{minor}.{patch}"`.
    pub(crate) fn version_string(&self) -> String {
        self.version.for_channel(&self.channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u64, minor: u64, patch: u64) -> SemVersion {
        SemVersion::new(major, minor, patch).unwrap()
    }

    fn beta() -> Channel {
        Channel::parse("beta").unwrap()
    }

    #[test]
    fn bump_major_resets_minor_and_patch() {
        assert_eq!(v(1, 2, 3).bump(UpdateType::Major).unwrap(), v(2, 0, 0));
    }

    #[test]
    fn bump_minor_resets_patch() {
        assert_eq!(v(1, 2, 3).bump(UpdateType::Minor).unwrap(), v(1, 3, 0));
    }

    #[test]
    fn bump_patch_keeps_major_and_minor() {
        assert_eq!(v(1, 2, 3).bump(UpdateType::Patch).unwrap(), v(1, 2, 4));
    }

    #[test]
    fn bump_at_the_maximum_is_a_conflict_not_a_wrap() {
        let top = v(0, 0, i64::MAX as u64);
        assert_eq!(
            top.bump(UpdateType::Patch).unwrap_err().status(),
            http::StatusCode::CONFLICT
        );
        assert_eq!(top.bump(UpdateType::Minor).unwrap(), v(0, 1, 0));
    }

    #[test]
    fn version_strings_are_prefixed_with_the_channel() {
        assert_eq!(v(1, 2, 3).for_channel(&beta()), "beta-1.2.3");
        assert_eq!(
            SemVersion::default().for_channel(&Channel::default_channel()),
            "default-0.0.0"
        );
    }

    #[test]
    fn accepted_version_spellings() {
        for (input, expected) in [
            ("1.2.3", v(1, 2, 3)),
            ("v1.2.3", v(1, 2, 3)),
            ("beta-1.2.3", v(1, 2, 3)),
            ("0.0.0", v(0, 0, 0)),
            ("9223372036854775807.0.1", v(i64::MAX as u64, 0, 1)),
        ] {
            assert_eq!(
                SemVersion::parse_for_channel("version", &beta(), input).unwrap(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn refused_version_spellings_name_the_field() {
        for input in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.2.3-rc.1",
            "1.2.3+build",
            "alpha-1.2.3",
            "beta1.2.3",
            "V1.2.3",
            "vv1.2.3",
            " 1.2.3",
            "1.2.3 ",
            "-1.2.3",
            "1.2.x",
            "9223372036854775808.0.0",
            "99999999999999999999.0.0",
            "beta-v1.2.3",
        ] {
            let error = SemVersion::parse_for_channel("version", &beta(), input).unwrap_err();
            assert_eq!(
                error.status(),
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "{input}"
            );
            assert_eq!(error.problem().field.as_deref(), Some("version"), "{input}");
        }
    }

    #[test]
    fn update_types_are_lowercase_words() {
        assert_eq!(
            UpdateType::parse("update_type", "minor").unwrap(),
            UpdateType::Minor
        );
        for bad in ["", "Minor", "build", "none"] {
            assert!(UpdateType::parse("update_type", bad).is_err(), "{bad}");
        }
    }
}
