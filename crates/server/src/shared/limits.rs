//! Failure limits across nodes (`[shared] redis`): the softphones' digest failures and the
//! PIN-guessing guard's wrong IDs and PINs are reported to the shared limiter as well as
//! counted here, and a block any node's failures caused comes back to every node and
//! enters its own state: the digest lock-outs through [`SharingAuthState`], the guard's
//! counters when the guard is next used ([`SharedLimits::take_guard_blocks`]). Each
//! node still decides at once from its own state; nothing waits on Redis.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use dialbridge_conference::guard::{CallerKey, GuardConfig, GuardScope};
use dialbridge_conference::ivr::{ConferenceId, ConferenceKey, TenantId};
use dialbridge_shared::{LimitPolicy, SharedLimiter};
use dialbridge_sip::auth::{AuthError, AuthState, MemoryAuthState, NonceUse, Subject};

use crate::Error;
use crate::config::Config;

/// The limiter and the blocks heard from it, waiting to enter this node's state.
#[derive(Debug, Clone)]
pub struct SharedLimits {
    limiter: SharedLimiter,
    blocks: Arc<Blocks>,
    guard: GuardConfig,
}

#[derive(Debug, Default)]
struct Blocks {
    auth: Mutex<Vec<(Subject, SystemTime)>>,
    guard: Mutex<Vec<(GuardScope, SystemTime)>>,
}

impl SharedLimits {
    /// Starts the limiter on `[shared] redis`; `None` without it.
    pub fn start(config: &Config) -> Result<Option<SharedLimits>, Error> {
        let Some(url) = &config.shared.redis else {
            return Ok(None);
        };
        let blocks = Arc::new(Blocks::default());
        let heard = blocks.clone();
        let namespace = &config.shared.namespace;
        let limiter =
            SharedLimiter::start(url, namespace, config.shared.timeout, move |key, until| {
                heard.take(key, until);
            })
            .map_err(|e| Error::Config(format!("{}: [shared] {e}", config.path.display())))?;
        Ok(Some(SharedLimits {
            limiter,
            blocks,
            guard: config.guard,
        }))
    }

    /// A caller keyed a conference ID that is not there, or a wrong PIN.
    pub fn caller_failed(&self, caller: &CallerKey) {
        let policy = LimitPolicy {
            max_failures: self.guard.max_failures_per_caller,
            window: self.guard.window,
            block: self.guard.cooldown,
        };
        self.limiter
            .failure(scope_key(&GuardScope::Caller(caller.clone())), policy);
    }

    /// A wrong PIN for `conference` (besides the caller's own failure).
    pub fn conference_failed(&self, conference: &ConferenceKey) {
        let policy = LimitPolicy {
            max_failures: self.guard.max_pin_failures_per_conference,
            window: self.guard.window,
            block: self.guard.cooldown,
        };
        self.limiter.failure(
            scope_key(&GuardScope::Conference(conference.clone())),
            policy,
        );
    }

    /// The guard blocks heard since the last call, for the guard to take in.
    pub fn take_guard_blocks(&self) -> Vec<(GuardScope, SystemTime)> {
        self.blocks
            .guard
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }

    /// This node's digest state, sharing its failures and hearing others' lock-outs.
    pub fn auth_state(&self, inner: MemoryAuthState, config: &Config) -> SharingAuthState {
        let policy = config.auth.policy();
        SharingAuthState {
            inner,
            limiter: self.limiter.clone(),
            blocks: self.blocks.clone(),
            policy: LimitPolicy {
                max_failures: policy.max_failures,
                window: policy.window,
                block: policy.lockout,
            },
        }
    }
}

impl Blocks {
    /// A block heard from the channel, filed by what it is about.
    fn take(&self, key: &str, until: SystemTime) {
        if let Some(subject) = subject_of(key) {
            if let Ok(mut auth) = self.auth.lock() {
                auth.push((subject, until));
            }
        } else if let Some(scope) = scope_of(key)
            && let Ok(mut guard) = self.guard.lock()
        {
            guard.push((scope, until));
        }
    }
}

/// [`MemoryAuthState`] whose failures count on every node, and which takes the
/// lock-outs other nodes' failures caused before it answers whether one is locked out.
pub struct SharingAuthState {
    inner: MemoryAuthState,
    limiter: SharedLimiter,
    blocks: Arc<Blocks>,
    policy: LimitPolicy,
}

impl std::fmt::Debug for SharingAuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharingAuthState").finish_non_exhaustive()
    }
}

impl SharingAuthState {
    fn take_blocks(&mut self) {
        let heard = self
            .blocks
            .auth
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        for (subject, until) in heard {
            self.inner.impose_lockout(&subject, until);
        }
    }
}

impl AuthState for SharingAuthState {
    fn nonce_secret(&mut self) -> Result<Vec<u8>, AuthError> {
        self.inner.nonce_secret()
    }

    fn use_nonce(
        &mut self,
        nonce: &str,
        issued: SystemTime,
        expires: SystemTime,
        nc: u32,
        now: SystemTime,
    ) -> NonceUse {
        self.inner.use_nonce(nonce, issued, expires, nc, now)
    }

    fn locked_until(&mut self, subject: &Subject, now: SystemTime) -> Option<SystemTime> {
        self.take_blocks();
        self.inner.locked_until(subject, now)
    }

    fn record_failure(&mut self, subject: &Subject, now: SystemTime) -> Option<SystemTime> {
        self.limiter.failure(subject_key(subject), self.policy);
        self.inner.record_failure(subject, now)
    }
}

fn subject_key(subject: &Subject) -> String {
    match subject {
        Subject::Source(ip) => format!("auth:source:{ip}"),
        Subject::User(user) => format!("auth:user:{user}"),
    }
}

fn subject_of(key: &str) -> Option<Subject> {
    let rest = key.strip_prefix("auth:")?;
    if let Some(ip) = rest.strip_prefix("source:") {
        return ip.parse::<IpAddr>().ok().map(Subject::Source);
    }
    rest.strip_prefix("user:")
        .map(|user| Subject::User(user.to_string()))
}

fn scope_key(scope: &GuardScope) -> String {
    match scope {
        GuardScope::Caller(CallerKey(caller)) => format!("guard:caller:{caller}"),
        GuardScope::Conference(c) => format!("guard:conference:{}/{}", c.tenant, c.id),
    }
}

fn scope_of(key: &str) -> Option<GuardScope> {
    let rest = key.strip_prefix("guard:")?;
    if let Some(caller) = rest.strip_prefix("caller:") {
        return Some(GuardScope::Caller(CallerKey(caller.to_string())));
    }
    let (tenant, id) = rest.strip_prefix("conference:")?.rsplit_once('/')?;
    Some(GuardScope::Conference(ConferenceKey {
        tenant: TenantId::new(tenant),
        id: ConferenceId::parse(id).ok()?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_as_what_it_was_made_from() {
        for subject in [
            Subject::Source("192.0.2.7".parse().unwrap_or_else(|_| unreachable!())),
            Subject::Source("2001:db8::1".parse().unwrap_or_else(|_| unreachable!())),
            Subject::User("alice".into()),
        ] {
            assert_eq!(subject_of(&subject_key(&subject)), Some(subject));
        }
        let conference = ConferenceKey {
            tenant: TenantId::new("contoso"),
            id: ConferenceId::parse("123456789").unwrap_or_else(|_| unreachable!()),
        };
        for scope in [
            GuardScope::Caller(CallerKey("telco-a/+33 1 70/x".into())),
            GuardScope::Conference(conference),
        ] {
            assert_eq!(scope_of(&scope_key(&scope)), Some(scope));
        }
        assert_eq!(subject_of("guard:caller:x"), None);
        assert_eq!(scope_of("auth:user:x"), None);
        assert_eq!(subject_of("auth:source:not-an-ip"), None);
    }
}
