//! An org's settings: the commit authors whose changes are left out of lead-time figures
//! (bots: `*[bot]`, `renovate*`), and the benchmark year its DORA queries use by default.

use super::check_text;
use super::dora::Benchmark;
use crate::error::Error;

/// The most author patterns an org keeps.
pub(crate) const MAX_EXCLUDED_AUTHORS: usize = 100;

/// An author pattern: `*` matches any run of characters, `?` any one, everything else itself
/// (`[` too: `*[bot]` is GitHub's bot suffix, not a character class). Matched against the
/// author's name, the committer without its `<email>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorPattern(String);

impl AuthorPattern {
    pub(crate) fn parse(field: &str, value: &str) -> Result<AuthorPattern, Error> {
        check_text(field, value, 255)?;
        Ok(AuthorPattern(value.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The pattern as SQLite's `GLOB` reads it: `*` and `?` as they are, `[` as the one-
    /// character class `[[]` (GLOB's only way to say a literal `[`; a lone `]` is literal).
    pub(crate) fn to_sqlite_glob(&self) -> String {
        self.0.replace('[', "[[]")
    }
}

/// An org's settings, as stored or as a PUT gives them.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Settings {
    pub(crate) excluded_authors: Vec<AuthorPattern>,
    pub(crate) benchmark: Benchmark,
}

impl Settings {
    /// The excluded authors as SQLite `GLOB`s, what the lead-time reads filter by.
    pub(crate) fn excluded_author_globs(&self) -> Vec<String> {
        self.excluded_authors
            .iter()
            .map(AuthorPattern::to_sqlite_glob)
            .collect()
    }

    pub(crate) fn parse(
        excluded_authors: &[String],
        benchmark: Option<&str>,
    ) -> Result<Settings, Error> {
        if excluded_authors.len() > MAX_EXCLUDED_AUTHORS {
            return Err(Error::invalid(
                "excluded_authors",
                format!("at most {MAX_EXCLUDED_AUTHORS} patterns"),
            ));
        }
        let excluded_authors = excluded_authors
            .iter()
            .map(|pattern| AuthorPattern::parse("excluded_authors", pattern))
            .collect::<Result<Vec<_>, _>>()?;
        let benchmark = benchmark
            .map(|b| {
                Benchmark::parse(b)
                    .map_err(|_| Error::invalid("benchmark", "must be 2023, 2024 or 2025"))
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Settings {
            excluded_authors,
            benchmark,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bracket_is_literal_in_the_glob_sqlite_runs() {
        let db = crate::testing::RusqliteDb::open_in_memory();
        let matches = |pattern: &str, name: &str| {
            let glob = AuthorPattern::parse("p", pattern).unwrap().to_sqlite_glob();
            let rows = crate::db::Db::execute(
                &db,
                "SELECT ? GLOB ?",
                &[name.into(), glob.as_str().into()],
            )
            .unwrap();
            rows.first().unwrap().flag(0).unwrap()
        };
        assert!(matches("*[bot]", "dependabot[bot]"));
        assert!(!matches("*[bot]", "dependabot"));
        assert!(!matches("*[bot]", "abbot"));
        assert!(matches("renovate*", "renovate-bot"));
        assert!(matches("?ob", "Bob"));
        assert!(!matches("renovate*", "Ada Lovelace"));
    }
}
