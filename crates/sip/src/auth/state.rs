//! What digest authentication must remember between requests, behind [`AuthState`] so
//! that bridge nodes behind one load balancer can share it: the nonce secret, the nonce
//! counts seen (RFC 7616 §3.4, §5.12: replay) and failed attempts per source address and
//! per user (online guessing). [`MemoryAuthState`] keeps it in this process, pure, time
//! passed in; every table is bounded.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::AuthError;

/// Whose failed attempts are counted and who is locked out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A source address (the request's, not a header's).
    Source(IpAddr),
    /// An account, by user name (only accounts we have: unknown names are not tracked,
    /// so guessing names cannot fill the table).
    User(String),
}

impl Subject {
    /// `"source"` or `"user"`, for metrics labels.
    pub fn scope(&self) -> &'static str {
        match self {
            Subject::Source(_) => "source",
            Subject::User(_) => "user",
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Source(ip) => write!(f, "source {ip}"),
            Subject::User(user) => write!(f, "user {user}"),
        }
    }
}

/// A subject refused until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockout {
    /// Who.
    pub subject: Subject,
    /// When attempts are heard again.
    pub until: SystemTime,
}

/// The answer of [`AuthState::use_nonce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceUse {
    /// First use of this nonce with this count: accept.
    Fresh,
    /// This nonce was used with this count or a higher one (or, without qop, at all):
    /// a replay, or a nonce we can no longer vouch for.
    Replayed,
}

/// The state digest authentication shares between requests (and, with a shared backend,
/// between nodes). Methods take the time, so implementations stay testable on a virtual
/// clock; wall-clock time, because nodes share no `Instant`.
///
/// The methods are infallible: the in-process implementation cannot fail. A networked
/// backend will have to decide, per method, whether an outage fails open or closed.
pub trait AuthState: Send {
    /// The key of the nonce MAC: the same for every node sharing this state, created
    /// once when there is none.
    fn nonce_secret(&mut self) -> Result<Vec<u8>, AuthError>;

    /// Checks and records one use at `now` of `nonce` (issued at `issued`, useless after
    /// `expires`) with nonce count `nc`: fresh only if `nc` is above every count seen
    /// with it. A request without qop passes `u32::MAX`, so such a nonce is good once.
    fn use_nonce(
        &mut self,
        nonce: &str,
        issued: SystemTime,
        expires: SystemTime,
        nc: u32,
        now: SystemTime,
    ) -> NonceUse;

    /// When `subject` is locked out at `now`, until when.
    fn locked_until(&mut self, subject: &Subject, now: SystemTime) -> Option<SystemTime>;

    /// Counts one failed attempt of `subject`; `Some(until)` when it starts a lock-out.
    fn record_failure(&mut self, subject: &Subject, now: SystemTime) -> Option<SystemTime>;
}

/// How many failures lock a subject out, and for how long; how much is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthPolicy {
    /// Failures within `window` that lock a subject out (the last of them is the one
    /// that locks).
    pub max_failures: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// How long a lock-out lasts. A success never lifts one.
    pub lockout: Duration,
    /// Most subjects tracked at once; beyond, the oldest is forgotten.
    pub max_tracked: usize,
    /// Most nonces remembered at once; beyond, the oldest is forgotten and every nonce
    /// issued no later than it is refused as replayed (so forgetting never lets a replay
    /// through: the client is challenged again instead).
    pub max_nonces: usize,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            max_failures: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(900),
            max_tracked: 65_536,
            max_nonces: 65_536,
        }
    }
}

/// [`AuthState`] in this process: right for one node. Nodes behind one load balancer
/// need a shared backend (their lock-outs and nonce counts would otherwise be per node)
/// and the same nonce secret.
pub struct MemoryAuthState {
    policy: AuthPolicy,
    secret: Vec<u8>,
    nonces: Fifo<String, NonceEntry>,
    /// Every nonce issued no later than this is refused unless still remembered.
    nonce_floor: Option<SystemTime>,
    subjects: Fifo<Subject, Failures>,
}

impl std::fmt::Debug for MemoryAuthState {
    // The secret stays out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAuthState")
            .field("policy", &self.policy)
            .field("nonces", &self.nonces.len())
            .field("subjects", &self.subjects.len())
            .finish_non_exhaustive()
    }
}

struct NonceEntry {
    highest_nc: u32,
    issued: SystemTime,
    expires: SystemTime,
}

/// One subject's recent failures (at most `max_failures`, newest last) and lock-out.
#[derive(Default)]
struct Failures {
    recent: VecDeque<SystemTime>,
    locked_until: Option<SystemTime>,
}

impl Failures {
    /// Nothing left worth remembering at `now`.
    fn is_spent(&self, window: Duration, now: SystemTime) -> bool {
        let locked = self.locked_until.is_some_and(|u| u > now);
        let counting = self
            .recent
            .back()
            .is_some_and(|t| now.duration_since(*t).unwrap_or_default() < window);
        !locked && !counting
    }
}

impl MemoryAuthState {
    /// A state keyed by `secret` (from configuration or a store), or a random secret of
    /// this process when `None`.
    pub fn new(policy: AuthPolicy, secret: Option<Vec<u8>>) -> Self {
        let secret = secret.unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
        MemoryAuthState {
            policy,
            secret,
            nonces: Fifo::default(),
            nonce_floor: None,
            subjects: Fifo::default(),
        }
    }

    /// This state begins at `now`: nonces issued before it may have been used with a
    /// state now lost (a restart keeps the secret, not the counts), so they are refused
    /// as replayed and their clients challenged again.
    pub fn started_at(mut self, now: SystemTime) -> Self {
        self.nonce_floor = Some(self.nonce_floor.map_or(now, |f| f.max(now)));
        self
    }

    /// Locks `subject` out until `until` (another node counted its failures): a
    /// later end than one it has is kept, an earlier one changes nothing.
    pub fn impose_lockout(&mut self, subject: &Subject, until: SystemTime) {
        if self.subjects.get_mut(subject).is_none() {
            self.subjects.insert(
                subject.clone(),
                Failures::default(),
                self.policy.max_tracked,
            );
        }
        if let Some(failures) = self.subjects.get_mut(subject)
            && failures.locked_until.is_none_or(|t| t < until)
        {
            failures.locked_until = Some(until);
            failures.recent.clear();
        }
    }

    /// Nonces remembered now.
    pub fn nonces_tracked(&self) -> usize {
        self.nonces.len()
    }

    /// Subjects tracked now.
    pub fn subjects_tracked(&self) -> usize {
        self.subjects.len()
    }
}

impl AuthState for MemoryAuthState {
    fn nonce_secret(&mut self) -> Result<Vec<u8>, AuthError> {
        Ok(self.secret.clone())
    }

    fn use_nonce(
        &mut self,
        nonce: &str,
        issued: SystemTime,
        expires: SystemTime,
        nc: u32,
        now: SystemTime,
    ) -> NonceUse {
        // Nonces are remembered roughly in issue order, so expired ones gather in front
        // (the cap bounds the rest).
        self.nonces.pop_front_while(|e| e.expires < now);
        if let Some(entry) = self.nonces.get_mut(nonce) {
            if nc <= entry.highest_nc {
                return NonceUse::Replayed;
            }
            entry.highest_nc = nc;
            return NonceUse::Fresh;
        }
        if self.nonce_floor.is_some_and(|floor| issued <= floor) {
            return NonceUse::Replayed;
        }
        let entry = NonceEntry {
            highest_nc: nc,
            issued,
            expires,
        };
        if let Some((_, evicted)) =
            self.nonces
                .insert(nonce.to_owned(), entry, self.policy.max_nonces)
        {
            let floor = self
                .nonce_floor
                .map_or(evicted.issued, |f| f.max(evicted.issued));
            self.nonce_floor = Some(floor);
        }
        NonceUse::Fresh
    }

    fn locked_until(&mut self, subject: &Subject, now: SystemTime) -> Option<SystemTime> {
        self.subjects
            .get_mut(subject)
            .and_then(|f| f.locked_until)
            .filter(|until| *until > now)
    }

    fn record_failure(&mut self, subject: &Subject, now: SystemTime) -> Option<SystemTime> {
        let AuthPolicy {
            max_failures,
            window,
            lockout,
            max_tracked,
            ..
        } = self.policy;
        self.subjects.pop_front_while(|f| f.is_spent(window, now));
        if self.subjects.get_mut(subject).is_none() {
            self.subjects
                .insert(subject.clone(), Failures::default(), max_tracked);
        }
        let failures = self.subjects.get_mut(subject)?;
        if let Some(until) = failures.locked_until {
            if until > now {
                return None;
            }
            failures.locked_until = None;
        }
        failures
            .recent
            .retain(|t| now.duration_since(*t).unwrap_or_default() < window);
        failures.recent.push_back(now);
        let max = usize::try_from(max_failures.max(1)).unwrap_or(usize::MAX);
        while failures.recent.len() > max {
            failures.recent.pop_front();
        }
        if failures.recent.len() < max {
            return None;
        }
        failures.recent.clear();
        // A lock-out too long for the clock lasts as long as the clock goes.
        let until = now
            .checked_add(lockout)
            .or_else(|| now.checked_add(Duration::from_secs(u32::MAX.into())))
            .unwrap_or(now);
        failures.locked_until = Some(until);
        Some(until)
    }
}

/// A map that forgets its oldest entries first: by insertion order, with a cap.
struct Fifo<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K, V> Default for Fifo<K, V> {
    fn default() -> Self {
        Fifo {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, V> Fifo<K, V> {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key)
    }

    /// Inserts a key not present; when `cap` entries are held, the oldest goes first and
    /// is returned.
    fn insert(&mut self, key: K, value: V, cap: usize) -> Option<(K, V)> {
        let mut evicted = None;
        if self.map.len() >= cap.max(1) {
            evicted = self
                .order
                .pop_front()
                .and_then(|k| self.map.remove(&k).map(|v| (k, v)));
        }
        self.order.push_back(key.clone());
        self.map.insert(key, value);
        evicted
    }

    /// Forgets entries from the oldest on while `spent` says so.
    fn pop_front_while(&mut self, spent: impl Fn(&V) -> bool) {
        while let Some(key) = self.order.front() {
            if !self.map.get(key).is_none_or(&spent) {
                break;
            }
            if let Some(key) = self.order.pop_front() {
                self.map.remove(&key);
            }
        }
    }
}
