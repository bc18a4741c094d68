//! The guessing defence: wrong conference IDs and leader PINs counted per caller and
//! per conference; past a threshold, entry is refused for a cool-down and a security
//! event is raised. Events and logs name the caller and the conference's tenant,
//! never a keyed digit.
//!
//! Wiring with the IVR (done by the caller): before performing
//! [`Action::VerifyPin`](crate::ivr::Action::VerifyPin), ask
//! [`GuessGuard::pin_entry_allowed`] and answer
//! [`PinResult::Refused`](crate::ivr::PinResult::Refused) if not; report every
//! `NotFound` and `Invalid` answer here.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::ivr::ConferenceKey;

/// Thresholds of the guessing defence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// Wrong IDs plus wrong PINs from one caller, within `window`, before the
    /// caller is refused.
    pub max_failures_per_caller: u32,
    /// Wrong PINs for one conference (from anyone), within `window`, before its
    /// leader PIN entry is refused.
    pub max_pin_failures_per_conference: u32,
    /// The counting window.
    pub window: Duration,
    /// How long entry stays refused.
    pub cooldown: Duration,
    /// Most callers (and most conferences) tracked at once; memory stays bounded
    /// when an attacker rotates caller identities, and the per-conference count
    /// still catches them.
    pub max_tracked: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_failures_per_caller: 10,
            max_pin_failures_per_conference: 20,
            window: Duration::from_secs(600),
            cooldown: Duration::from_secs(900),
            max_tracked: 10_000,
        }
    }
}

/// Who is calling, as the caller of this module identifies them: the asserted
/// number, the From URI, or the source address of a softphone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallerKey(pub String);

/// A threshold crossed; for the security log and the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityEvent {
    /// A caller keyed too many wrong IDs or PINs; refused until `until`.
    CallerBlocked {
        /// Who.
        caller: CallerKey,
        /// Failures counted in the window.
        failures: u32,
        /// End of the cool-down.
        until: Instant,
    },
    /// A conference's leader PIN was guessed at too often; its PIN entry is
    /// refused until `until`.
    ConferencePinEntryBlocked {
        /// Which.
        conference: ConferenceKey,
        /// Failures counted in the window.
        failures: u32,
        /// End of the cool-down.
        until: Instant,
    },
}

/// Counts guesses; one per bridge node.
#[derive(Debug)]
pub struct GuessGuard {
    config: GuardConfig,
    callers: HashMap<CallerKey, Counter>,
    conferences: HashMap<ConferenceKey, Counter>,
    events: VecDeque<SecurityEvent>,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

impl Counter {
    fn blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|t| now < t)
    }

    /// Still worth keeping: blocked, or failures inside the window.
    fn live(&self, now: Instant, window: Duration) -> bool {
        self.blocked(now) || now.saturating_duration_since(self.window_start) < window
    }

    /// Counts one failure; returns the count when it reaches `max` (newly blocked).
    fn fail(&mut self, now: Instant, cfg: &GuardConfig, max: u32) -> Option<u32> {
        if self.blocked(now) {
            return None;
        }
        if now.saturating_duration_since(self.window_start) >= cfg.window {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures += 1;
        if self.failures >= max {
            self.blocked_until = Some(now + cfg.cooldown);
            self.failures = 0;
            self.window_start = now;
            return Some(max);
        }
        None
    }
}

/// Security events kept for [`GuessGuard::poll_event`]; older ones are dropped
/// (they were logged already).
const MAX_EVENTS: usize = 64;

impl GuessGuard {
    /// A guard with the given thresholds.
    pub fn new(config: GuardConfig) -> Self {
        Self {
            config,
            callers: HashMap::new(),
            conferences: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether the caller may key a conference ID now.
    pub fn id_entry_allowed(&self, caller: &CallerKey, now: Instant) -> bool {
        !self.callers.get(caller).is_some_and(|c| c.blocked(now))
    }

    /// Whether this caller may have a leader PIN checked for this conference now.
    pub fn pin_entry_allowed(
        &self,
        caller: &CallerKey,
        conference: &ConferenceKey,
        now: Instant,
    ) -> bool {
        self.id_entry_allowed(caller, now)
            && !self
                .conferences
                .get(conference)
                .is_some_and(|c| c.blocked(now))
    }

    /// A conference ID the directory did not find (or too short).
    pub fn handle_wrong_id(&mut self, caller: &CallerKey, now: Instant) {
        self.fail_caller(caller, now);
    }

    /// A leader PIN that did not match.
    pub fn handle_wrong_pin(
        &mut self,
        caller: &CallerKey,
        conference: &ConferenceKey,
        now: Instant,
    ) {
        self.fail_caller(caller, now);
        let cfg = self.config;
        let Some(counter) = entry(&mut self.conferences, conference, now, &cfg) else {
            return;
        };
        if let Some(failures) = counter.fail(now, &cfg, cfg.max_pin_failures_per_conference) {
            let until = now + cfg.cooldown;
            tracing::warn!(
                target: "dialbridge::security",
                tenant = %conference.tenant,
                failures,
                "leader PIN entry blocked for a conference after repeated wrong PINs"
            );
            self.event(SecurityEvent::ConferencePinEntryBlocked {
                conference: conference.clone(),
                failures,
                until,
            });
        }
    }

    /// A correct PIN: the caller's count starts again. The conference's does not,
    /// so a real leader's login cannot mask someone else's guessing.
    pub fn handle_pin_ok(&mut self, caller: &CallerKey) {
        if let Some(c) = self.callers.get_mut(caller)
            && c.blocked_until.is_none()
        {
            c.failures = 0;
        }
    }

    /// The next security event.
    pub fn poll_event(&mut self) -> Option<SecurityEvent> {
        self.events.pop_front()
    }

    fn fail_caller(&mut self, caller: &CallerKey, now: Instant) {
        let cfg = self.config;
        let Some(counter) = entry(&mut self.callers, caller, now, &cfg) else {
            return;
        };
        if let Some(failures) = counter.fail(now, &cfg, cfg.max_failures_per_caller) {
            let until = now + cfg.cooldown;
            tracing::warn!(
                target: "dialbridge::security",
                caller = %caller.0,
                failures,
                "caller blocked after repeated wrong conference IDs or PINs"
            );
            self.event(SecurityEvent::CallerBlocked {
                caller: caller.clone(),
                failures,
                until,
            });
        }
    }

    fn event(&mut self, e: SecurityEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }
}

/// The counter for `key`, created if there is room: when the map is full, idle
/// counters are pruned first; if all are live, the new key goes uncounted.
fn entry<'a, K: Eq + Hash + Clone>(
    map: &'a mut HashMap<K, Counter>,
    key: &K,
    now: Instant,
    cfg: &GuardConfig,
) -> Option<&'a mut Counter> {
    if !map.contains_key(key) && map.len() >= cfg.max_tracked {
        map.retain(|_, c| c.live(now, cfg.window));
        if map.len() >= cfg.max_tracked {
            return None;
        }
    }
    Some(map.entry(key.clone()).or_insert(Counter {
        failures: 0,
        window_start: now,
        blocked_until: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::{ConferenceId, TenantId};

    fn conf(id: &str) -> ConferenceKey {
        ConferenceKey {
            tenant: TenantId::new("contoso"),
            id: ConferenceId::parse(id).unwrap(),
        }
    }

    fn caller(n: u32) -> CallerKey {
        CallerKey(format!("sip:+1425555{n:04}@trunk"))
    }

    fn small() -> GuardConfig {
        GuardConfig {
            max_failures_per_caller: 3,
            max_pin_failures_per_conference: 5,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
            max_tracked: 4,
        }
    }

    #[test]
    fn caller_blocked_after_wrong_ids_and_pins_then_cools_down() {
        let t0 = Instant::now();
        let mut g = GuessGuard::new(small());
        let (a, c) = (caller(1), conf("123456789"));
        g.handle_wrong_id(&a, t0);
        g.handle_wrong_pin(&a, &c, t0);
        assert!(g.pin_entry_allowed(&a, &c, t0));
        assert_eq!(g.poll_event(), None);
        g.handle_wrong_id(&a, t0);
        assert!(!g.pin_entry_allowed(&a, &c, t0));
        assert!(!g.id_entry_allowed(&a, t0));
        let until = t0 + Duration::from_secs(300);
        assert_eq!(
            g.poll_event(),
            Some(SecurityEvent::CallerBlocked {
                caller: a.clone(),
                failures: 3,
                until
            })
        );
        // Another caller is not affected.
        assert!(g.pin_entry_allowed(&caller(2), &c, t0));
        assert!(!g.pin_entry_allowed(&a, &c, until - Duration::from_secs(1)));
        assert!(g.pin_entry_allowed(&a, &c, until));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t0 = Instant::now();
        let mut g = GuessGuard::new(small());
        let a = caller(1);
        for i in 0..10u64 {
            g.handle_wrong_id(&a, t0 + Duration::from_secs(40 * i));
        }
        assert!(g.id_entry_allowed(&a, t0 + Duration::from_secs(400)));
        assert_eq!(g.poll_event(), None);
    }

    #[test]
    fn conference_blocked_when_many_callers_guess_its_pin() {
        let t0 = Instant::now();
        let mut g = GuessGuard::new(small());
        let c = conf("987654321");
        for n in 0..5 {
            g.handle_wrong_pin(&caller(n), &c, t0);
        }
        // Every caller made one guess only, but the conference is now closed to
        // PIN entry, for everyone; other conferences are not.
        assert!(!g.pin_entry_allowed(&caller(42), &c, t0));
        assert!(g.pin_entry_allowed(&caller(42), &conf("123456789"), t0));
        let events: Vec<_> = std::iter::from_fn(|| g.poll_event()).collect();
        assert!(events.iter().any(|e| matches!(
            e,
            SecurityEvent::ConferencePinEntryBlocked { failures: 5, .. }
        )));
        // Debug output of an event carries no keyed digit: there is none to carry.
        assert!(!format!("{events:?}").contains("13579"));
    }

    #[test]
    fn correct_pin_resets_the_caller_count() {
        let t0 = Instant::now();
        let mut g = GuessGuard::new(small());
        let (a, c) = (caller(1), conf("123456789"));
        g.handle_wrong_pin(&a, &c, t0);
        g.handle_wrong_pin(&a, &c, t0);
        g.handle_pin_ok(&a);
        g.handle_wrong_pin(&a, &c, t0);
        g.handle_wrong_pin(&a, &c, t0);
        assert!(g.id_entry_allowed(&a, t0));
    }

    #[test]
    fn tracking_is_bounded() {
        let t0 = Instant::now();
        let mut g = GuessGuard::new(small());
        for n in 0..100 {
            g.handle_wrong_id(&caller(n), t0);
        }
        assert!(g.callers.len() <= 4);
        // Once the old entries go idle, new callers are tracked again.
        let later = t0 + Duration::from_secs(61);
        for _ in 0..3 {
            g.handle_wrong_id(&caller(500), later);
        }
        assert!(!g.id_entry_allowed(&caller(500), later));
    }

    #[test]
    fn with_the_ivr() {
        use crate::Digit;
        use crate::ivr::{Action, Ivr, IvrConfig, LookupResult, PinResult, PromptId};

        let t0 = Instant::now();
        let mut g = GuessGuard::new(small());
        let c = conf("123456789");
        // Earlier calls from other numbers guessed this conference's PIN.
        for n in 10..15 {
            g.handle_wrong_pin(&caller(n), &c, t0);
        }
        let me = caller(1);
        let mut ivr = Ivr::new(IvrConfig::new(TenantId::new("contoso")), t0);
        for ch in "123456789#".chars() {
            ivr.handle_digit(Digit::from_char(ch).unwrap(), t0);
        }
        ivr.handle_lookup_result(LookupResult::Found(c.clone()), t0);
        for ch in "13579#".chars() {
            ivr.handle_digit(Digit::from_char(ch).unwrap(), t0);
        }
        let mut last = None;
        while let Some(a) = ivr.poll_action() {
            if let Action::VerifyPin { conference, .. } = &a {
                let r = if g.pin_entry_allowed(&me, conference, t0) {
                    PinResult::Valid
                } else {
                    PinResult::Refused
                };
                ivr.handle_pin_result(r, t0);
            }
            last = Some(a);
        }
        assert_eq!(
            last,
            Some(Action::PlayPrompt {
                prompt: PromptId::Goodbye,
                barge_in: false
            })
        );
    }
}
