//! The Lua scripts that make capacity exact across nodes: Redis runs each atomically, so a
//! check of every limit and the taking of all of them is one step no other node can come
//! between.
//!
//! Layout (`P` is the key prefix): a counter (one per number, bridge and trunk) is a hash
//! `P cap:<kind>:<name>` from node instance to the reservations it holds there; a node
//! instance is alive while `P node:<instance>` exists (a heartbeat renews it, its TTL
//! is the lease time); `P leases:<instance>` is the set of its lease ids, so giving one
//! back twice, or once more after a lost reply, counts once. Fields of dead instances
//! are not counted and are removed by the next acquisition that meets them. The scripts
//! name the node keys they read from their prefix argument: fine on one Redis server,
//! not on a Redis Cluster.
//!
//! A Redis that comes back empty (restarted without persistence) would undercount the
//! calls in progress until every live node restated them. So the first script to find
//! `P epoch` missing sets it and opens a grace of two heartbeats (`P settling`), during
//! which acquisitions answer -1 (refused as unavailable) and heartbeats restate.

/// Lua shared by the scripts that look at the epoch: whether new reservations must wait.
const SETTLING: &str = r"
local function settling(prefix, grace)
  if redis.call('EXISTS', prefix .. 'epoch') == 0 then
    redis.call('SET', prefix .. 'epoch', '1')
    redis.call('SET', prefix .. 'settling', '1', 'PX', grace)
  end
  return redis.call('EXISTS', prefix .. 'settling') == 1
end
";

/// KEYS: the counters; ARGV: prefix, instance, lease id, lease time in ms, grace in ms,
/// then one limit per counter. Returns 0 when taken, -1 while Redis settles after
/// coming back empty, else the 1-based index of the first counter at its limit
/// (nothing taken). A lease id already held is taken again at no cost (a retry).
pub(super) fn acquire() -> String {
    format!("{SETTLING}{ACQUIRE}")
}

const ACQUIRE: &str = r"
local prefix, me, lease = ARGV[1], ARGV[2], ARGV[3]
local leases = prefix .. 'leases:' .. me
if settling(prefix, ARGV[5]) then return -1 end
if redis.call('SISMEMBER', leases, lease) == 1 then return 0 end
local alive = {}
for i, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  local total = 0
  for j = 1, #fields, 2 do
    local node = fields[j]
    if alive[node] == nil then
      alive[node] = node == me or redis.call('EXISTS', prefix .. 'node:' .. node) == 1
    end
    if alive[node] then
      total = total + tonumber(fields[j + 1])
    else
      redis.call('HDEL', key, node)
    end
  end
  if total >= tonumber(ARGV[5 + i]) then return i end
end
redis.call('SADD', leases, lease)
if redis.call('PTTL', leases) < 0 then redis.call('PEXPIRE', leases, ARGV[4]) end
for _, key in ipairs(KEYS) do redis.call('HINCRBY', key, me, 1) end
return 0
";

/// KEYS: the lease's counters; ARGV: prefix, instance, lease id. Gives the lease back
/// once: a second call (or one for a lease never taken) changes nothing.
pub(super) const RELEASE: &str = r"
local prefix, me, lease = ARGV[1], ARGV[2], ARGV[3]
if redis.call('SREM', prefix .. 'leases:' .. me, lease) == 0 then return 0 end
for _, key in ipairs(KEYS) do
  if redis.call('HINCRBY', key, me, -1) <= 0 then redis.call('HDEL', key, me) end
end
return 1
";

/// KEYS: none; ARGV: prefix, instance, lease time in ms, grace in ms. Renews the
/// instance's life and its lease set; returns 1 when the instance was not alive any more
/// (first start, the server lost its data, or the heartbeat came too late and others may
/// have dropped its counts), so the node must restate what it holds; plus 2 while Redis
/// settles.
pub(super) fn heartbeat() -> String {
    format!("{SETTLING}{HEARTBEAT}")
}

const HEARTBEAT: &str = r"
local prefix, me, ttl = ARGV[1], ARGV[2], ARGV[3]
local wait = 0
if settling(prefix, ARGV[4]) then wait = 2 end
local was = redis.call('SET', prefix .. 'node:' .. me, '1', 'PX', ttl, 'GET')
redis.call('PEXPIRE', prefix .. 'leases:' .. me, ttl)
if was then return wait end
return wait + 1
";

/// KEYS: every counter the instance may have a field in; ARGV: prefix, instance, lease
/// time in ms, then one count per counter, then the lease ids it holds. Restates the
/// instance's reservations as the node knows them, in one step.
pub(super) const RESTATE: &str = r"
local prefix, me, ttl = ARGV[1], ARGV[2], ARGV[3]
local leases = prefix .. 'leases:' .. me
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[3 + i])
  if count > 0 then redis.call('HSET', key, me, count) else redis.call('HDEL', key, me) end
end
redis.call('DEL', leases)
for j = 4 + #KEYS, #ARGV do redis.call('SADD', leases, ARGV[j]) end
redis.call('PEXPIRE', leases, ttl)
redis.call('SET', prefix .. 'node:' .. me, '1', 'PX', ttl)
return 1
";
