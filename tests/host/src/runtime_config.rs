//! Spin's runtime-config file (`spin up --runtime-config-file`), the parts a cd-images
//! deployment uses: `state_dir` and `[sqlite_database.<label>]`.
//!
//! Read as Spin 4.0.2 reads it (SPIN_CONTRACT.md A2): `type` is required; `type = "spin"`
//! takes `path` (relative to the process's working directory, not the file's; none is an
//! in-memory database, a new one per `open`) and `allow_attach_file`; `type = "libsql"` takes
//! `url` (`http://` or `https://` only) and `token`, both required; unknown keys in a table are
//! refused with serde's message, as Spin's `deny_unknown_fields` does, and a top-level key
//! nobody reads is `unused runtime config key(s)`. Spin's other tables (key-value stores,
//! variable providers, outbound HTTP, TLS, …) are refused by name: the host does not implement
//! them, and silently ignoring one would let a test pass that `spin up` would run differently.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A loaded runtime-config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `state_dir`: `Some(None)` when set to `""` (unset: the default database is in memory).
    pub state_dir: Option<Option<PathBuf>>,
    /// `[sqlite_database.<label>]`, by label.
    pub sqlite_databases: BTreeMap<String, SqliteDatabase>,
}

/// Where one SQLite label's data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum SqliteDatabase {
    /// A file (an absolute path), opened in-process with rusqlite as Spin does.
    File(PathBuf),
    /// In memory: every `open` gets a new, empty database.
    Memory,
    /// A libSQL server (sqld, Turso) over HTTP, through the `libsql` crate as Spin uses it.
    Libsql { url: String, token: String },
}

impl std::fmt::Debug for SqliteDatabase {
    /// The token is a credential: it stays out of logs and test output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqliteDatabase::File(path) => f.debug_tuple("File").field(path).finish(),
            SqliteDatabase::Memory => f.write_str("Memory"),
            SqliteDatabase::Libsql { url, .. } => f
                .debug_struct("Libsql")
                .field("url", url)
                .finish_non_exhaustive(),
        }
    }
}

impl SqliteDatabase {
    /// What Spin prints at start-up for the default database.
    pub fn summary(&self) -> String {
        match self {
            SqliteDatabase::File(path) => format!("{:?}", path.display().to_string()),
            SqliteDatabase::Memory => "a temporary in-memory database".to_string(),
            SqliteDatabase::Libsql { url, .. } => format!("libSQL at {url}"),
        }
    }
}

/// Top-level keys Spin knows that this host does not implement.
const NOT_IMPLEMENTED: &[&str] = &[
    "key_value_store",
    "variables_provider",
    "config_provider",
    "llm_compute",
    "outbound_http",
    "outbound_networking",
    "client_tls",
    "log_dir",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpinFile {
    path: Option<PathBuf>,
    // Accepted as Spin accepts it; the host never attaches files anyway.
    #[allow(dead_code)]
    allow_attach_file: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LibsqlServer {
    url: String,
    token: String,
}

impl RuntimeConfig {
    /// Reads and checks a runtime-config file.
    pub fn load(path: &Path) -> anyhow::Result<RuntimeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read runtime config file {}", path.display()))?;
        Self::parse(&text)
            .with_context(|| format!("failed to load runtime config from {}", path.display()))
    }

    /// Parses a runtime-config file's text; relative paths resolve against the working
    /// directory, as in Spin.
    pub fn parse(text: &str) -> anyhow::Result<RuntimeConfig> {
        let mut table: toml::Table = toml::from_str(text)?;
        let mut config = RuntimeConfig::default();
        if let Some(state_dir) = table.remove("state_dir") {
            let state_dir = state_dir
                .as_str()
                .context("`state_dir` must be a string")?
                .to_string();
            config.state_dir = Some(if state_dir.is_empty() {
                None
            } else {
                Some(std::path::absolute(&state_dir)?)
            });
        }
        if let Some(databases) = table.remove("sqlite_database") {
            let databases = databases
                .as_table()
                .context("`sqlite_database` must be a table of labels")?;
            for (label, entry) in databases {
                let database = parse_database(entry.clone()).with_context(|| {
                    format!("invalid runtime config for SQLite database {label:?}")
                })?;
                config.sqlite_databases.insert(label.clone(), database);
            }
        }
        if let Some(key) = table
            .keys()
            .find(|key| NOT_IMPLEMENTED.contains(&key.as_str()))
        {
            bail!("runtime config key {key:?} is valid for Spin but not implemented by cd-host");
        }
        if !table.is_empty() {
            let keys: Vec<String> = table.keys().map(|key| format!("{key:?}")).collect();
            bail!("unused runtime config key(s): {}", keys.join(", "));
        }
        Ok(config)
    }

    /// The database behind `label`, if the file configures it.
    pub fn sqlite_database(&self, label: &str) -> Option<&SqliteDatabase> {
        self.sqlite_databases.get(label)
    }
}

fn parse_database(entry: toml::Value) -> anyhow::Result<SqliteDatabase> {
    let mut entry = match entry {
        toml::Value::Table(table) => table,
        other => bail!("expected a table, found {}", other.type_str()),
    };
    let kind = match entry.remove("type") {
        Some(toml::Value::String(kind)) => kind,
        Some(other) => bail!("invalid type: {}, expected a string", other.type_str()),
        None => bail!("missing field `type`"),
    };
    match kind.as_str() {
        "spin" => {
            let file: SpinFile = toml::Value::Table(entry).try_into()?;
            Ok(match file.path {
                Some(path) => SqliteDatabase::File(std::path::absolute(path)?),
                None => SqliteDatabase::Memory,
            })
        }
        "libsql" => {
            let server: LibsqlServer = toml::Value::Table(entry).try_into()?;
            if !(server.url.starts_with("https://") || server.url.starts_with("http://")) {
                return Err(anyhow::anyhow!(
                    "URL does not start with 'https://' or 'http://'. Spin currently only supports talking to libSQL databases over HTTP(S)"
                ))
                .context(format!(
                    "unexpected libSQL URL '{}' in runtime config file ",
                    server.url
                ));
            }
            Ok(SqliteDatabase::Libsql {
                url: server.url,
                token: server.token,
            })
        }
        other => bail!("Unknown database kind: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        format!("{:#}", RuntimeConfig::parse(text).unwrap_err())
    }

    #[test]
    fn a_libsql_default_database() {
        let config = RuntimeConfig::parse(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://127.0.0.1:8080\"\ntoken = \"\"\n",
        )
        .unwrap();
        assert_eq!(
            config.sqlite_database("default"),
            Some(&SqliteDatabase::Libsql {
                url: "http://127.0.0.1:8080".to_string(),
                token: String::new()
            })
        );
    }

    #[test]
    fn a_spin_file_resolves_against_the_working_directory_and_no_path_is_memory() {
        let config = RuntimeConfig::parse(
            "[sqlite_database.default]\ntype = \"spin\"\npath = \"data/x.db\"\n\
             [sqlite_database.scratch]\ntype = \"spin\"\n",
        )
        .unwrap();
        let expected = std::env::current_dir().unwrap().join("data/x.db");
        assert_eq!(
            config.sqlite_database("default"),
            Some(&SqliteDatabase::File(expected))
        );
        assert_eq!(
            config.sqlite_database("scratch"),
            Some(&SqliteDatabase::Memory)
        );
    }

    #[test]
    fn spins_validation_errors() {
        assert!(
            error("[sqlite_database.default]\npath = \"x\"\n").contains("missing field `type`")
        );
        assert!(
            error("[sqlite_database.default]\ntype = \"postgres\"\n")
                .contains("Unknown database kind: postgres")
        );
        let unknown = error("[sqlite_database.default]\ntype = \"spin\"\nfile = \"x\"\n");
        assert!(
            unknown.contains("unknown field `file`, expected `path` or `allow_attach_file`"),
            "{unknown}"
        );
        let scheme = error(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"libsql://db.turso.io\"\ntoken = \"t\"\n",
        );
        assert!(
            scheme.contains("unexpected libSQL URL 'libsql://db.turso.io' in runtime config file")
                && scheme.contains("only supports talking to libSQL databases over HTTP(S)"),
            "{scheme}"
        );
        assert!(
            error("[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://h\"\n")
                .contains("missing field `token`")
        );
        assert!(error("colour = \"blue\"\n").contains("unused runtime config key(s): \"colour\""));
        assert!(error("[key_value_store.default]\ntype = \"spin\"\n").contains("not implemented"));
    }

    #[test]
    fn an_empty_state_dir_unsets_it() {
        assert_eq!(
            RuntimeConfig::parse("state_dir = \"\"\n")
                .unwrap()
                .state_dir,
            Some(None)
        );
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let database = SqliteDatabase::Libsql {
            url: "https://db.example".to_string(),
            token: "secret-token".to_string(),
        };
        assert!(!format!("{database:?}").contains("secret-token"));
    }
}
