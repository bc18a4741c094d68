//! Where each meeting lives when callers of it land on several nodes: its home, the one
//! node that holds its room (roles, lobby, lock) and mixes it; the others join it through
//! a leg. The home is a Redis key naming the home's instance, claimed by the first node
//! whose caller joins and taken over when that instance is dead (its heartbeat key, kept
//! by [`crate::SharedCapacity`], expired) or when a node's leg to it failed.
//!
//! Each node also records where its legs are answered (`links`, instance → address), so
//! a node can reach a home and a home can tell a node's leg from a stranger's.

use std::net::SocketAddr;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::{SharedError, SharedRefusal};

/// KEYS: the home key, the links hash; ARGV: prefix, this instance, its link address,
/// an instance known to be dead (or ""). Returns the home and its link address: an
/// existing live home, or this instance, which it records as the home.
const CLAIM: &str = r#"
local prefix, me, link, dead = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', KEYS[2], me, link)
local home = redis.call('GET', KEYS[1])
if home and home ~= me and home ~= dead
   and redis.call('EXISTS', prefix .. 'node:' .. home) == 1 then
  local at = redis.call('HGET', KEYS[2], home)
  if at then return {home, at} end
end
redis.call('SET', KEYS[1], me)
return {me, link}
"#;

/// KEYS: the home key; ARGV: this instance. Forgets the home only if it is still ours.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// The node a meeting lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// Its instance (`node:random`).
    pub instance: String,
    /// Where its legs are answered.
    pub link: SocketAddr,
}

/// This node's view of the meeting homes. Cheap to clone.
#[derive(Clone)]
pub struct MeetingHomes {
    conn: ConnectionManager,
    prefix: String,
    instance: String,
    link: SocketAddr,
    timeout: Duration,
    claim: std::sync::Arc<redis::Script>,
    release: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for MeetingHomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeetingHomes")
            .field("instance", &self.instance)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl MeetingHomes {
    /// Homes in Redis at `url` under `namespace`, for `instance` (the capacity keeper's,
    /// whose heartbeat says this node is alive) answering legs at `link`.
    pub fn start(
        url: &str,
        namespace: &str,
        instance: &str,
        link: SocketAddr,
        timeout: Duration,
    ) -> Result<MeetingHomes, SharedError> {
        let (_, conn) = crate::connection::connect(url, timeout)?;
        Ok(MeetingHomes {
            conn,
            prefix: format!("{namespace}:"),
            instance: instance.to_string(),
            link,
            timeout,
            claim: std::sync::Arc::new(redis::Script::new(CLAIM)),
            release: std::sync::Arc::new(redis::Script::new(RELEASE)),
        })
    }

    /// This node's instance.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The Redis key of `meeting`'s home (`tenant:conference`).
    pub fn key(&self, meeting: &str) -> String {
        format!("{}home:{meeting}", self.prefix)
    }

    /// The meeting's home: the live one recorded, or this node, now recorded. `dead`
    /// names a home this node could not reach, taken over even if its heartbeat lives.
    pub async fn claim(&self, meeting: &str, dead: Option<&str>) -> Result<Home, SharedRefusal> {
        let mut conn = self.conn.clone();
        let mut invocation = self.claim.key(self.key(meeting));
        invocation
            .key(format!("{}links", self.prefix))
            .arg(&self.prefix)
            .arg(&self.instance)
            .arg(self.link.to_string())
            .arg(dead.unwrap_or(""));
        let answer: (String, String) = self.bounded(invocation.invoke_async(&mut conn)).await?;
        let link = answer.1.parse().map_err(|_| SharedRefusal::Unavailable)?;
        Ok(Home {
            instance: answer.0,
            link,
        })
    }

    /// Forgets `meeting`'s home if it is this node (its meeting ended).
    pub async fn release(&self, meeting: &str) {
        let mut conn = self.conn.clone();
        let mut invocation = self.release.key(self.key(meeting));
        invocation.arg(&self.instance);
        let done: Result<i64, _> = self.bounded(invocation.invoke_async(&mut conn)).await;
        if done.is_err() {
            tracing::warn!(meeting, "could not release the meeting's home in Redis");
        }
    }

    /// Whether a leg from `from` comes from a node of this deployment (any instance's
    /// recorded link address with that IP and port).
    pub async fn is_node(&self, from: SocketAddr) -> Result<bool, SharedRefusal> {
        let mut conn = self.conn.clone();
        let links: Vec<String> = self
            .bounded(redis::AsyncCommands::hvals(
                &mut conn,
                format!("{}links", self.prefix),
            ))
            .await?;
        Ok(links
            .iter()
            .filter_map(|l| l.parse::<SocketAddr>().ok())
            .any(|l| l == from))
    }

    /// A number no other node of this deployment got (for ids unique across nodes).
    pub async fn node_number(&self) -> Result<u64, SharedRefusal> {
        let mut conn = self.conn.clone();
        self.bounded(redis::AsyncCommands::incr(
            &mut conn,
            format!("{}node-numbers", self.prefix),
            1u64,
        ))
        .await
    }

    async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SharedRefusal> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "meeting homes: Redis");
                Err(SharedRefusal::Unavailable)
            }
            Err(_) => Err(SharedRefusal::Unavailable),
        }
    }
}
