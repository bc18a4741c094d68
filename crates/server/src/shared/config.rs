//! `[shared]`: the backends that let several bridge nodes share one truth. Absent (the
//! default), every node keeps its state in process and in its own SQLite files and needs
//! nothing else installed. `redis` names the live store (capacity leases, meeting
//! locations); `postgres` the durable one (the ledger...).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// The default namespace of the keys in Redis.
pub const DEFAULT_NAMESPACE: &str = "dialbridge";
/// The default lease time: a node that dies gives its calls' capacity back within it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// The default wait for a backend's answer before a new call is refused with 503.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);

/// `[shared]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedConfig {
    /// What every key of this deployment in Redis starts with (one Redis may serve
    /// several deployments): default `dialbridge`.
    pub namespace: String,
    /// This node's name in the shared state and its log lines (default: the host name).
    pub node: String,
    /// The live store, `redis://host:port/db`; `None`: capacity in process.
    pub redis: Option<String>,
    /// The durable store, `postgres://user@host:port/db`; `None`: SQLite files.
    pub postgres: Option<String>,
    /// How long a node's reservations outlive its last heartbeat.
    pub lease: Duration,
    /// How long a new call waits for a backend before it is refused.
    pub timeout: Duration,
}

impl SharedConfig {
    /// What the capacity keeper of this node needs.
    pub fn capacity(&self) -> dialbridge_shared::CapacitySettings {
        dialbridge_shared::CapacitySettings {
            namespace: self.namespace.clone(),
            node: self.node.clone(),
            lease: self.lease,
            timeout: self.timeout,
        }
    }

    /// Whether any shared backend is configured.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some() || self.postgres.is_some()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawShared {
    namespace: Option<String>,
    node: Option<String>,
    redis: Option<String>,
    postgres: Option<String>,
    lease_s: Option<u64>,
    timeout_ms: Option<u64>,
}

impl RawShared {
    pub(crate) fn into_config(self, path: &Path, text: &str) -> Result<SharedConfig, Error> {
        let error = |key: &str, message: &str| {
            let at = match crate::config::key_line(text, "shared", key) {
                Some(line) => format!("{}:{line}", path.display()),
                None => path.display().to_string(),
            };
            Error::Config(format!("{at}: [shared] {key} {message}"))
        };
        if let Some(url) = &self.redis
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(error("redis", "must be a redis:// or rediss:// URL"));
        }
        if let Some(url) = &self.postgres
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(error("postgres", "must be a postgres:// URL"));
        }
        let lease = self.lease_s.map_or(DEFAULT_LEASE, Duration::from_secs);
        // A heartbeat every third of the lease: a second is the least that leaves room
        // for one late heartbeat on a busy machine.
        if !(1..=3600).contains(&lease.as_secs()) {
            return Err(error("lease_s", "must be from 1 to 3600"));
        }
        let timeout = self
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        if !(10..=30_000).contains(&timeout.as_millis()) {
            return Err(error("timeout_ms", "must be from 10 to 30000"));
        }
        let node = match self.node {
            Some(node)
                if node.is_empty() || node.len() > 64 || node.contains(char::is_whitespace) =>
            {
                return Err(error("node", "must be 1 to 64 characters without spaces"));
            }
            Some(node) => node,
            None => host_name(),
        };
        let namespace = self
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let fits = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if namespace.is_empty() || namespace.len() > 64 || !namespace.chars().all(fits) {
            return Err(error(
                "namespace",
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(SharedConfig {
            namespace,
            node,
            redis: self.redis,
            postgres: self.postgres,
            lease,
            timeout,
        })
    }
}

/// The machine's host name, or `dialbridge` when it has none readable.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dialbridge".to_string())
}
