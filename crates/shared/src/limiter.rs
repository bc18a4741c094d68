//! Failure limits shared between nodes (`[shared] redis`): a guesser who spreads wrong
//! PINs, conference IDs or passwords over the nodes behind a load balancer meets one
//! count, not one per node. Each node still decides at once from its own counters (no
//! call waits on Redis); it also reports every failure here, Redis counts them across
//! nodes in a window, and when a key reaches its limit every node hears of the block
//! (a Redis channel) and takes it into its own counters.
//!
//! Eventually consistent: a block reaches the other nodes within a round trip, and
//! failures made during a Redis outage are counted by their own node only. A block
//! published while a node was disconnected from the channel is not replayed to it.

use std::future::poll_fn;
use std::pin::pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_core::Stream;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use crate::SharedError;

/// KEYS: the window counter, the block; ARGV: window ms, limit, block ms, the key as
/// published, now (unix ms), the channel. Counts one failure; at the limit, blocks the
/// key, starts a new window and publishes `until_ms key`. Returns 1 when it blocked.
const FAIL: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n < tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
local ends = tonumber(ARGV[5]) + tonumber(ARGV[3])
redis.call('PUBLISH', ARGV[6], ends .. ' ' .. ARGV[4])
return 1
";

/// How many failures of one key, in what window, block it for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub block: Duration,
}

/// A handle that reports failures; cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedLimiter {
    failures: mpsc::UnboundedSender<(String, LimitPolicy)>,
}

impl SharedLimiter {
    /// Starts the reporter and the listener on `url` (inside a tokio runtime), its keys
    /// and channel under `namespace:limit:`: `blocked` hears every block any node's
    /// failures caused (its own included), with its end.
    pub fn start(
        url: &str,
        namespace: &str,
        timeout: Duration,
        blocked: impl Fn(&str, SystemTime) + Send + 'static,
    ) -> Result<SharedLimiter, SharedError> {
        let (client, conn) = crate::connection::connect(url, timeout)?;
        let (failures, rx) = mpsc::unbounded_channel();
        let prefix = format!("{namespace}:limit:");
        let channel = format!("{prefix}blocked");
        tokio::spawn(report(conn, prefix, channel.clone(), rx));
        tokio::spawn(listen(client, channel, blocked));
        Ok(SharedLimiter { failures })
    }

    /// Counts one failure of `key` under `policy` on every node (sent, not awaited).
    pub fn failure(&self, key: String, policy: LimitPolicy) {
        let _ = self.failures.send((key, policy));
    }
}

/// Runs the failure script for each report, in order; a report Redis cannot take is
/// dropped (its node counted it already).
async fn report(
    mut conn: ConnectionManager,
    prefix: String,
    channel: String,
    mut failures: mpsc::UnboundedReceiver<(String, LimitPolicy)>,
) {
    let script = redis::Script::new(FAIL);
    while let Some((key, policy)) = failures.recv().await {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let outcome = script
            .key(format!("{prefix}count:{key}"))
            .key(format!("{prefix}block:{key}"))
            .arg(policy.window.as_millis().max(1))
            .arg(policy.max_failures.max(1))
            .arg(policy.block.as_millis().max(1))
            .arg(&key)
            .arg(now)
            .arg(&channel)
            .invoke_async::<i64>(&mut conn)
            .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "shared limits: a failure not counted across nodes");
        }
    }
}

/// Listens for blocks, reconnecting after a second whenever the subscription is lost.
async fn listen(
    client: redis::Client,
    channel: String,
    blocked: impl Fn(&str, SystemTime) + Send + 'static,
) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    let mut messages = pin!(pubsub.on_message());
                    while let Some(message) = poll_fn(|cx| messages.as_mut().poll_next(cx)).await {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        if let Some((until, key)) = parse(&payload) {
                            blocked(key, until);
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "shared limits: not subscribed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `until_ms key` as the script publishes it.
fn parse(payload: &str) -> Option<(SystemTime, &str)> {
    let (until, key) = payload.split_once(' ')?;
    let until = UNIX_EPOCH + Duration::from_millis(until.parse().ok()?);
    Some((until, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_block_reads_back_with_its_key_whole() {
        let (until, key) = parse("1700000000000 guard:caller:telco-a/+4420 7946")
            .unwrap_or_else(|| unreachable!());
        assert_eq!(key, "guard:caller:telco-a/+4420 7946");
        assert_eq!(until, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(parse("soon key"), None);
        assert_eq!(parse("nothing"), None);
    }
}
