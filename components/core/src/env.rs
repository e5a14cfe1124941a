//! What a request needs besides itself: storage, time, randomness and configuration.
//!
//! Time and ids are injected so that core tests are deterministic; components pass the
//! system clock and the system's randomness (WASI `random`, which Spin provides).

use uuid::Uuid;

use crate::db::Db;
use crate::domain::Timestamp;

/// The current instant, and waiting.
pub trait Clock {
    fn now(&self) -> Timestamp;
    /// Waits `duration` (between retries of a busy database).
    fn sleep(&self, duration: std::time::Duration);
}

/// New ids and secrets.
pub trait Ids {
    /// A new UUIDv7 (time-ordered).
    fn new_id(&self) -> Uuid;
    /// 256 bits from a cryptographically secure source, for token secrets.
    fn secret(&self) -> [u8; 32];
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_utc(chrono::Utc::now())
    }

    fn sleep(&self, duration: std::time::Duration) {
        // On wasm32-wasip2 this is a wasi:clocks monotonic-clock subscription: the instance
        // waits without spinning.
        std::thread::sleep(duration);
    }
}

/// UUIDv7 from the clock and the OS (WASI) random source.
pub struct SystemIds;

impl Ids for SystemIds {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }

    fn secret(&self) -> [u8; 32] {
        let mut secret = [0u8; 32];
        // A host that cannot give randomness cannot mint tokens safely: failing loudly (a
        // trap → 500) is right, and WASI's random never fails in Spin.
        getrandom::fill(&mut secret).expect("the platform's random source is available");
        secret
    }
}

/// Deployment configuration, read by the shells from Spin variables.
#[derive(Debug, Clone)]
pub struct Config {
    /// The bootstrap admin token (`admin_token`); `None` or empty disables it.
    pub admin_token: Option<String>,
    /// The largest accepted request body (`max_body_bytes`).
    pub max_body_bytes: usize,
    /// The key receiver secrets are derived from (`webhook_signing_key`); `None` turns
    /// receivers off (503 naming the variable).
    pub webhook_signing_key: Option<String>,
    /// The `allowed_outbound_hosts` entry deliveries go through (`webhook_allowed_hosts`);
    /// `None` is its default, any https host.
    pub webhook_allowed_hosts: Option<String>,
}

impl Config {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

    /// Builds the configuration from the raw variable values, falling back to defaults for a
    /// missing or unparsable body limit (and saying so in the log).
    pub fn from_variables(admin_token: Option<String>, max_body_bytes: Option<String>) -> Config {
        let max_body_bytes = match max_body_bytes.as_deref().map(str::trim) {
            None | Some("") => Self::DEFAULT_MAX_BODY_BYTES,
            Some(raw) => raw.parse().unwrap_or_else(|_| {
                eprintln!("cd-core: max_body_bytes {raw:?} is not a number; using the default");
                Self::DEFAULT_MAX_BODY_BYTES
            }),
        };
        Config {
            admin_token: admin_token.filter(|t| !t.is_empty()),
            max_body_bytes,
            webhook_signing_key: None,
            webhook_allowed_hosts: None,
        }
    }

    /// With the `webhook_signing_key` variable's value (components that serve receivers).
    pub fn with_webhook_signing_key(mut self, key: Option<String>) -> Config {
        self.webhook_signing_key = key;
        self
    }

    /// With the `webhook_allowed_hosts` variable's value (components that send deliveries).
    pub fn with_webhook_allowed_hosts(mut self, rule: Option<String>) -> Config {
        self.webhook_allowed_hosts = rule.filter(|r| !r.trim().is_empty());
        self
    }
}

/// Everything a handler may use.
pub struct Env<'a> {
    pub db: &'a dyn Db,
    pub clock: &'a dyn Clock,
    pub ids: &'a dyn Ids,
    pub config: Config,
}
