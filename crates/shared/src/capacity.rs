//! Capacity shared between nodes (`[shared] redis`): a call's number, bridge and trunk
//! reservations taken in Redis in one atomic step ([`crate::scripts::acquire`]) as a
//! [`Lease`] that this node keeps alive. A node that dies stops renewing its heartbeat, and
//! within the lease time the others stop counting what it held; a live node never loses a
//! reservation: when its heartbeat finds it was taken for dead (late, or Redis lost its
//! data), it restates everything it holds at once.
//!
//! One task, the keeper, owns the connection and runs every operation of this node in
//! order: acquisitions, releases, heartbeats and restatements never overtake each other,
//! so the node's own view and Redis's agree after every step. A reply that never came
//! (timeout, connection lost) leaves the outcome unknown; the lease is then given back
//! by the idempotent release until Redis confirms it, so nothing leaks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use dialbridge_router::Limits;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

use crate::SharedError;
use crate::scripts;

/// Why shared capacity did not grant a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedRefusal {
    /// The number carries as many calls as its capacity, on all nodes together.
    NumberBusy,
    /// ... the bridge.
    BridgeOverloaded,
    /// ... the trunk.
    TrunkOverloaded,
    /// Redis did not answer in time: never admitted without the check.
    Unavailable,
}

impl SharedRefusal {
    /// Every refusal, in the order of [`SharedRefusals::counts`].
    pub const ALL: [SharedRefusal; 4] = [
        SharedRefusal::NumberBusy,
        SharedRefusal::BridgeOverloaded,
        SharedRefusal::TrunkOverloaded,
        SharedRefusal::Unavailable,
    ];

    /// Its `/metrics` label.
    pub fn as_str(self) -> &'static str {
        match self {
            SharedRefusal::NumberBusy => "number",
            SharedRefusal::BridgeOverloaded => "bridge",
            SharedRefusal::TrunkOverloaded => "trunk",
            SharedRefusal::Unavailable => "unavailable",
        }
    }
}

/// Refusals counted for `/metrics`.
#[derive(Debug, Default)]
pub struct SharedRefusals {
    counts: [AtomicU64; 4],
}

impl SharedRefusals {
    fn count(&self, refusal: SharedRefusal) {
        if let Some(i) = SharedRefusal::ALL.iter().position(|r| *r == refusal)
            && let Some(c) = self.counts.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(label, count)` of every refusal.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SharedRefusal::ALL
            .iter()
            .zip(&self.counts)
            .map(|(r, c)| (r.as_str(), c.load(Ordering::Relaxed)))
    }
}

/// The counters one call takes and their limits.
#[derive(Debug, Clone)]
pub struct Claim {
    /// `(key, limit, what refusing at it means)`.
    counters: Vec<(String, u32, SharedRefusal)>,
}

impl Claim {
    /// An inbound call's: its number, bridge and trunk.
    pub fn call(number: &str, bridge: &str, trunk: &str, limits: Limits) -> Claim {
        let mut counters = Vec::with_capacity(3);
        if let Some(limit) = limits.number {
            counters.push((key("number", number), limit, SharedRefusal::NumberBusy));
        }
        counters.push((
            key("bridge", bridge),
            limits.bridge,
            SharedRefusal::BridgeOverloaded,
        ));
        counters.push((
            key("trunk", trunk),
            limits.trunk,
            SharedRefusal::TrunkOverloaded,
        ));
        Claim { counters }
    }
}

impl Claim {
    /// A dial-out's: its bridge and trunk (it holds no number of ours).
    pub fn dial_out(bridge: &str, trunk: &str, limits: Limits) -> Claim {
        Claim::call(
            "",
            bridge,
            trunk,
            Limits {
                number: None,
                ..limits
            },
        )
    }
}

/// A counter's name in a claim; the keeper puts its namespace in front.
fn key(kind: &str, name: &str) -> String {
    format!("cap:{kind}:{name}")
}

/// What a node's keeper needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacitySettings {
    /// Every key of this deployment starts `namespace:` (one Redis may serve several).
    pub namespace: String,
    /// This node's name (its instances in Redis are `node:random`).
    pub node: String,
    /// How long a node's reservations outlive its last heartbeat.
    pub lease: Duration,
    /// How long an operation waits for Redis before it is refused.
    pub timeout: Duration,
}

/// A handle on this node's keeper. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedCapacity {
    ops: mpsc::UnboundedSender<Op>,
    timeout: Duration,
    ready: Arc<AtomicBool>,
    refusals: Arc<SharedRefusals>,
    instance: Arc<str>,
}

/// A reservation held in Redis; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    id: u64,
    ops: mpsc::UnboundedSender<Op>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The keeper is gone only when the process stops; the lease then expires with it.
        let _ = self.ops.send(Op::Release(self.id));
    }
}

#[derive(Debug)]
enum Op {
    Acquire {
        id: u64,
        claim: Claim,
        reply: oneshot::Sender<Result<(), SharedRefusal>>,
    },
    Release(u64),
    /// Answered once every operation sent before it is done.
    Flush(oneshot::Sender<()>),
}

impl SharedCapacity {
    /// Starts this node's keeper on `url` (inside a tokio runtime). It connects lazily:
    /// with Redis down, calls are refused until it answers, and the node starts anyway.
    pub fn start(url: &str, config: &CapacitySettings) -> Result<SharedCapacity, SharedError> {
        let (_, conn) = crate::connection::connect(url, config.timeout)?;
        let instance = format!("{}:{:016x}", config.node, rand::random::<u64>());
        tracing::info!(node = %config.node, instance, lease_s = config.lease.as_secs(), "shared capacity: Redis");
        let (ops, rx) = mpsc::unbounded_channel();
        let ready = Arc::new(AtomicBool::new(false));
        let keeper = Keeper {
            conn,
            instance: instance.clone(),
            prefix: format!("{}:", config.namespace),
            lease: config.lease,
            timeout: config.timeout,
            held: HashMap::new(),
            unsure: HashMap::new(),
            restate: true,
            available: true,
            scripts: Arc::new(Scripts {
                acquire: redis::Script::new(&scripts::acquire()),
                release: redis::Script::new(scripts::RELEASE),
                heartbeat: redis::Script::new(&scripts::heartbeat()),
                restate: redis::Script::new(scripts::RESTATE),
            }),
            ready: ready.clone(),
        };
        tokio::spawn(keeper.run(rx));
        Ok(SharedCapacity {
            ops,
            timeout: config.timeout,
            ready,
            refusals: Arc::default(),
            instance: instance.into(),
        })
    }

    /// This process's instance (`node:random`), alive while its heartbeat is.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Takes every counter of `claim` or none. Waits at most the configured timeout. A
    /// refusal is counted for `/metrics`.
    pub async fn acquire(&self, claim: Claim) -> Result<Lease, SharedRefusal> {
        self.try_acquire(claim)
            .await
            .inspect_err(|refusal| self.refusals.count(*refusal))
    }

    /// Refusals so far, for `/metrics`.
    pub fn refusals(&self) -> &SharedRefusals {
        &self.refusals
    }

    async fn try_acquire(&self, claim: Claim) -> Result<Lease, SharedRefusal> {
        let id = rand::random::<u64>();
        let (reply, answer) = oneshot::channel();
        self.ops
            .send(Op::Acquire { id, claim, reply })
            .map_err(|_| SharedRefusal::Unavailable)?;
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(Ok(()))) => Ok(Lease {
                id,
                ops: self.ops.clone(),
            }),
            Ok(Ok(Err(refusal))) => Err(refusal),
            // The keeper gives back a lease whose asker stopped waiting.
            Ok(Err(_)) | Err(_) => Err(SharedRefusal::Unavailable),
        }
    }
}

impl SharedCapacity {
    /// Whether the last heartbeat found Redis answering and taking reservations.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Waits until every lease dropped before this call has been given back (or, with
    /// Redis away, queued to be): for a drain, and for tests that count.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.ops.send(Op::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }
}

/// This node's side of the shared counters.
struct Keeper {
    conn: ConnectionManager,
    /// `node:random`: a restarted process is a new instance, so what the old one held
    /// expires with its heartbeat.
    instance: String,
    /// `namespace:`, in front of every key.
    prefix: String,
    lease: Duration,
    timeout: Duration,
    /// Leases held, with their counters.
    held: HashMap<u64, Vec<String>>,
    /// Leases whose acquisition or release got no answer: given back until confirmed.
    unsure: HashMap<u64, Vec<String>>,
    /// Redis must be told everything held before anything else.
    restate: bool,
    /// Whether Redis answered the last operation (for one log line per outage).
    available: bool,
    scripts: Arc<Scripts>,
    /// Redis answers and takes reservations (not settling): what `/metrics` shows.
    ready: Arc<AtomicBool>,
}

/// The scripts, each hashed once (a claim sends only the hash: EVALSHA).
struct Scripts {
    acquire: redis::Script,
    release: redis::Script,
    heartbeat: redis::Script,
    restate: redis::Script,
}

impl Keeper {
    async fn run(mut self, mut ops: mpsc::UnboundedReceiver<Op>) {
        let mut heartbeat = tokio::time::interval(self.heartbeat_every());
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                op = ops.recv() => match op {
                    Some(Op::Acquire { id, claim, reply }) => self.acquire(id, claim, reply).await,
                    Some(Op::Release(id)) => self.release(id).await,
                    Some(Op::Flush(done)) => {
                        let _ = done.send(());
                    }
                    None => return,
                },
                _ = heartbeat.tick() => self.heartbeat().await,
            }
        }
    }

    async fn acquire(
        &mut self,
        id: u64,
        claim: Claim,
        reply: oneshot::Sender<Result<(), SharedRefusal>>,
    ) {
        if reply.is_closed() {
            return; // the call gave up waiting (or is gone) before its turn
        }
        if !self.available {
            // Refused at once until a heartbeat finds Redis back: a queue of calls each
            // waiting out the timeout would hold up the releases behind them.
            let _ = reply.send(Err(SharedRefusal::Unavailable));
            return;
        }
        if self.restate && !self.restate_all().await {
            let _ = reply.send(Err(SharedRefusal::Unavailable));
            return;
        }
        let scripts = self.scripts.clone();
        let mut invocation = scripts.acquire.prepare_invoke();
        let keys: Vec<String> = claim
            .counters
            .iter()
            .map(|(k, _, _)| format!("{}{k}", self.prefix))
            .collect();
        for key in &keys {
            invocation.key(key);
        }
        invocation
            .arg(&self.prefix)
            .arg(&self.instance)
            .arg(id)
            .arg(self.lease_ms())
            .arg(self.grace_ms());
        for (_, limit, _) in &claim.counters {
            invocation.arg(*limit);
        }
        let outcome = self
            .run_script(invocation.invoke_async::<i64>(&mut self.conn.clone()))
            .await;
        let answer = match outcome {
            Some(0) => {
                self.held.insert(id, keys);
                Ok(())
            }
            Some(-1) => {
                self.ready.store(false, Ordering::Relaxed); // settling: nothing taken
                Err(SharedRefusal::Unavailable)
            }
            Some(full) => {
                let at = usize::try_from(full - 1).ok();
                let refusal = at
                    .and_then(|i| claim.counters.get(i))
                    .map_or(SharedRefusal::Unavailable, |(_, _, r)| *r);
                Err(refusal)
            }
            None => {
                // It may have been taken: give it back until Redis confirms.
                self.unsure.insert(id, keys);
                Err(SharedRefusal::Unavailable)
            }
        };
        if reply.send(answer).is_err() && self.held.contains_key(&id) {
            self.release(id).await; // taken for a call that stopped waiting
        }
    }

    async fn release(&mut self, id: u64) {
        let Some(keys) = self.held.remove(&id) else {
            return;
        };
        if !self.available || !self.give_back(id, &keys).await {
            self.unsure.insert(id, keys);
        }
    }

    /// Runs the release script; whether Redis confirmed it.
    async fn give_back(&mut self, id: u64, keys: &[String]) -> bool {
        let scripts = self.scripts.clone();
        let mut invocation = scripts.release.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation.arg(&self.prefix).arg(&self.instance).arg(id);
        let outcome = self
            .run_script(invocation.invoke_async::<i64>(&mut self.conn.clone()))
            .await;
        outcome.is_some()
    }

    async fn heartbeat(&mut self) {
        let scripts = self.scripts.clone();
        let mut invocation = scripts.heartbeat.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(&self.instance)
            .arg(self.lease_ms())
            .arg(self.grace_ms());
        let answer = self
            .run_script(invocation.invoke_async::<i64>(&mut self.conn.clone()))
            .await;
        let Some(answer) = answer else {
            self.ready.store(false, Ordering::Relaxed);
            return;
        };
        // Bit 1: settling after Redis came back empty; bit 0: this instance was gone.
        self.ready.store(answer & 2 == 0, Ordering::Relaxed);
        if answer & 1 == 1 {
            if !self.held.is_empty() || !self.restate {
                tracing::warn!(
                    held = self.held.len(),
                    "shared capacity: Redis had lost this node's reservations; restating them"
                );
            }
            self.restate = true;
        }
        if self.restate {
            self.restate_all().await;
        }
        let unsure: Vec<(u64, Vec<String>)> = self.unsure.drain().collect();
        for (id, keys) in unsure {
            if !self.give_back(id, &keys).await {
                self.unsure.insert(id, keys);
            }
        }
    }

    /// Tells Redis everything this node holds, in one step; whether it did.
    async fn restate_all(&mut self) -> bool {
        let mut counts: HashMap<&str, u32> = HashMap::new();
        // Counters of leases in doubt are cleared too (count 0 unless held).
        for keys in self.unsure.values() {
            for key in keys {
                counts.entry(key.as_str()).or_insert(0);
            }
        }
        for keys in self.held.values() {
            for key in keys {
                *counts.entry(key.as_str()).or_insert(0) += 1;
            }
        }
        let scripts = self.scripts.clone();
        let mut invocation = scripts.restate.prepare_invoke();
        for key in counts.keys() {
            invocation.key(*key);
        }
        invocation
            .arg(&self.prefix)
            .arg(&self.instance)
            .arg(self.lease_ms());
        for count in counts.values() {
            invocation.arg(*count);
        }
        for id in self.held.keys() {
            invocation.arg(*id);
        }
        let done = self
            .run_script(invocation.invoke_async::<i64>(&mut self.conn.clone()))
            .await
            .is_some();
        if done {
            self.unsure.clear();
            self.restate = false;
        }
        done
    }

    /// Awaits a script with the timeout; `None` (logged once per outage) when Redis did
    /// not answer.
    async fn run_script(
        &mut self,
        call: impl std::future::Future<Output = redis::RedisResult<i64>>,
    ) -> Option<i64> {
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in time".to_string()),
        };
        match outcome {
            Ok(value) => {
                if !self.available {
                    tracing::warn!("shared capacity: Redis answers again; new calls are admitted");
                    self.available = true;
                }
                Some(value)
            }
            Err(error) => {
                if self.available {
                    tracing::error!(%error, "shared capacity: Redis unavailable; new calls are refused (503) until it answers, calls in progress go on");
                    self.available = false;
                }
                // What Redis holds of ours is in doubt after an outage.
                self.restate = true;
                self.ready.store(false, Ordering::Relaxed);
                None
            }
        }
    }

    /// How often the heartbeat runs: a third of the lease, so one late heartbeat costs
    /// nothing; at least every second, which is also how soon a node finds Redis back.
    fn heartbeat_every(&self) -> Duration {
        (self.lease / 3).min(Duration::from_secs(1))
    }

    /// Two heartbeats: every live node restates before a Redis that came back empty
    /// takes new reservations.
    fn grace_ms(&self) -> u64 {
        u64::try_from(2 * self.heartbeat_every().as_millis()).unwrap_or(u64::MAX)
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }
}
