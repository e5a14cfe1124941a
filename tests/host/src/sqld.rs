//! A libSQL server (`sqld`) on loopback, for the end-to-end tests and the benchmark: where its
//! binary is, starting it sized as README → Deploying says, and the Spin runtime config that
//! makes it a host's `default` database. Killed on drop.
//!
//! sqld is on no package registry (`../shared/bin/README.md`): it is `$CD_SQLD`, else
//! `../shared/bin/sqld` beside the checkout, else `sqld` on `PATH` — the order tests/run and
//! .ci/run use too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::free_port::{free_ports, start_on_free_ports};
use crate::runtime_config::RuntimeConfig;

/// Where the sqld binary is, if anywhere.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CD_SQLD").filter(|path| !path.is_empty()) {
        return Some(PathBuf::from(path));
    }
    // This crate is `<checkout>/tests/host`; the shared tools sit beside the checkout.
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bin/sqld");
    if beside.exists() {
        return Some(beside);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("sqld"))
            .find(|path| path.exists())
    })
}

/// A running sqld, without auth, its data and log in a directory of the caller's.
pub struct Sqld {
    child: Child,
    /// `http://127.0.0.1:<port>`: the URL a runtime config names.
    pub url: String,
    /// Its admin API (statistics, metrics).
    pub admin: SocketAddr,
    log: PathBuf,
}

impl Sqld {
    /// Starts `binary` with its data and log in `dir`, and waits until it listens; started
    /// again on new ports if one was taken from under it (`free_port`).
    pub fn start(binary: &Path, dir: &Path) -> anyhow::Result<Sqld> {
        start_on_free_ports(|| Sqld::start_once(binary, dir))
    }

    fn start_once(binary: &Path, dir: &Path) -> anyhow::Result<Sqld> {
        let [port, admin_port] = free_ports()?;
        let log = dir.join("sqld.log");
        let child = Command::new(binary)
            .arg("--db-path")
            .arg(dir.join("data.sqld"))
            .arg("--http-listen-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen-addr")
            .arg(format!("127.0.0.1:{admin_port}"))
            // As README → Deploying says to run it: at the default 128, 32 concurrent
            // writers collapsed a run.
            .arg("--max-concurrent-connections")
            .arg("1024")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let mut sqld = Sqld {
            child,
            url: format!("http://127.0.0.1:{port}"),
            admin: ([127, 0, 0, 1], admin_port).into(),
            log,
        };
        // Ready when both ports answer and it still runs a moment later: sqld binds its HTTP
        // port before the admin one, so an HTTP port that answers alone may be another
        // process's, or be held by a sqld about to exit on a taken admin port (which may
        // answer too, being another process's).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut answered = false;
        loop {
            let answers = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if let Some(status) = sqld.child.try_wait()? {
                bail!("sqld exited ({status}): {}", sqld.error());
            }
            if answered {
                return Ok(sqld);
            }
            answered = answers(port) && answers(admin_port);
            if Instant::now() > deadline {
                bail!("sqld did not listen in 20 s: {}", sqld.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The runtime-config text that makes this server the `default` database.
    pub fn runtime_config_text(&self) -> String {
        format!(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"{}\"\ntoken = \"\"\n",
            self.url
        )
    }

    /// That runtime config, loaded.
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig::parse(&self.runtime_config_text()).expect("a valid runtime config")
    }

    /// That runtime config written to `dir`, as `spin up --runtime-config-file` reads it.
    pub fn write_runtime_config(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("runtime-config.toml");
        std::fs::write(&path, self.runtime_config_text())?;
        Ok(path)
    }

    /// What it said when it stopped: its log from the last error on (sqld's banner comes
    /// first and says nothing).
    fn error(&self) -> String {
        let text = self.log_tail();
        match text.rfind("Error:") {
            Some(at) => text[at..].to_owned(),
            None => text,
        }
    }

    /// The last 2 KB of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut from = text.len().saturating_sub(2048);
        while !text.is_char_boundary(from) {
            from += 1;
        }
        text[from..].to_owned()
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// A stand-in for sqld: a shell script that counts its runs in `runs` and exits as sqld
    /// does on `error`.
    fn failing_sqld(dir: &Path, error: &str) -> PathBuf {
        let script = dir.join("sqld");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho run >> '{}'\necho 'Welcome to sqld!' >&2\necho 'Error: {error}' >&2\nexit 1\n",
                dir.join("runs").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    fn runs(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("runs"))
            .unwrap()
            .lines()
            .count()
    }

    /// Held by each test from writing its script to running it: a script still open for
    /// writing in one test's thread while the other forks would be inherited by that child
    /// until its exec, and running the script would then fail with "text file busy".
    static SCRIPTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_taken_address_is_tried_again_on_new_ports_and_its_error_told() {
        let _one_at_a_time = SCRIPTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let binary = failing_sqld(dir.path(), "Address already in use (os error 98)");
        let error = Sqld::start(&binary, dir.path()).err().unwrap();
        assert_eq!(runs(dir.path()), 5);
        let error = format!("{error:#}");
        assert!(
            error.contains("Error: Address already in use") && !error.contains("Welcome"),
            "{error}"
        );
    }

    #[test]
    fn any_other_failure_is_told_at_once() {
        let _one_at_a_time = SCRIPTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let binary = failing_sqld(dir.path(), "invalid database path");
        let error = Sqld::start(&binary, dir.path()).err().unwrap();
        assert_eq!(runs(dir.path()), 1);
        assert!(format!("{error:#}").contains("invalid database path"));
    }
}
