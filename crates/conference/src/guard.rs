//! The guessing defence: wrong conference IDs and leader PINs counted per caller and
//! per conference. A caller past its threshold is refused for a cool-down; a
//! conference whose PIN is guessed at from many callers is *under attack*: every PIN
//! check for it is slowed, but none is refused, so the real organiser keying the right
//! PIN still gets in. Security events and logs name the caller and the conference's
//! tenant, never a keyed digit.
//!
//! Callers are keyed (by the bridge) on what a guesser cannot choose freely: the trunk
//! and the identity it asserts, or a softphone's digest user.
//!
//! Wiring with the IVR (done by the caller): before performing
//! [`Action::VerifyPin`](crate::ivr::Action::VerifyPin), ask
//! [`GuessGuard::pin_entry`]: answer [`PinResult::Refused`](crate::ivr::PinResult::Refused)
//! when refused, else check the PIN after the delay it says; report every `NotFound`
//! and `Invalid` answer here. The counters survive a restart through
//! [`GuessGuard::take_changes`] and [`GuessGuard::restore`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant, SystemTime};

use crate::ivr::ConferenceKey;

/// Thresholds of the guessing defence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// Wrong IDs plus wrong PINs from one caller, within `window`, before the
    /// caller is refused.
    pub max_failures_per_caller: u32,
    /// Wrong PINs for one conference (from anyone), within `window`, before it is
    /// under attack (its PIN checks slowed by `attack_delay`).
    pub max_pin_failures_per_conference: u32,
    /// The counting window.
    pub window: Duration,
    /// How long entry stays refused (and a conference under attack).
    pub cooldown: Duration,
    /// How long each PIN check for a conference under attack waits: a guesser's rate
    /// falls to one per this long per call, the organiser waits once.
    pub attack_delay: Duration,
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
            attack_delay: Duration::from_secs(3),
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
    /// A conference's leader PIN was guessed at too often; its PIN checks are slowed
    /// until `until`.
    ConferenceUnderAttack {
        /// Which.
        conference: ConferenceKey,
        /// Failures counted in the window.
        failures: u32,
        /// End of the cool-down.
        until: Instant,
    },
}

/// What to do with a leader PIN keyed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinEntry {
    /// The caller is locked out: refuse without checking.
    Refused,
    /// Check it, after `delay` (zero unless the conference is under attack).
    Check {
        /// How long to wait before checking.
        delay: Duration,
    },
}

/// Whose counter a [`GuardRecord`] is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GuardScope {
    /// A caller's wrong IDs and PINs.
    Caller(CallerKey),
    /// A conference's wrong PINs.
    Conference(ConferenceKey),
}

/// One counter in wall-clock time, to be stored and restored across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRecord {
    /// Whose.
    pub scope: GuardScope,
    /// Failures counted in the current window.
    pub failures: u32,
    /// When the current window began.
    pub window_start: SystemTime,
    /// Until when the caller is refused (the conference under attack).
    pub blocked_until: Option<SystemTime>,
}

/// Counts guesses; one per bridge node, its counters kept in a store.
#[derive(Debug)]
pub struct GuessGuard {
    config: GuardConfig,
    callers: HashMap<CallerKey, Counter>,
    conferences: HashMap<ConferenceKey, Counter>,
    events: VecDeque<SecurityEvent>,
    /// Counters changed since the last [`GuessGuard::take_changes`].
    changed: HashSet<GuardScope>,
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
            changed: HashSet::new(),
        }
    }

    /// Takes back stored counters (read at start); `now` and `wall` are the same
    /// moment on the two clocks. Expired ones are skipped.
    pub fn restore(&mut self, records: Vec<GuardRecord>, now: Instant, wall: SystemTime) {
        let to_instant = |t: SystemTime| match wall.duration_since(t) {
            Ok(ago) => now.checked_sub(ago).unwrap_or(now),
            Err(ahead) => now + ahead.duration(),
        };
        for record in records {
            let counter = Counter {
                failures: record.failures,
                window_start: to_instant(record.window_start),
                blocked_until: record.blocked_until.map(to_instant),
            };
            if !counter.live(now, self.config.window) {
                continue;
            }
            match record.scope {
                GuardScope::Caller(c) => self.callers.insert(c, counter),
                GuardScope::Conference(c) => self.conferences.insert(c, counter),
            };
        }
    }

    /// The counters changed since the last call, in wall-clock time, for the store.
    /// A counter no longer kept comes back with no failures and no block (delete it).
    pub fn take_changes(&mut self, now: Instant, wall: SystemTime) -> Vec<GuardRecord> {
        let to_wall = |t: Instant| wall - now.saturating_duration_since(t);
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|scope| {
                let counter = match &scope {
                    GuardScope::Caller(c) => self.callers.get(c),
                    GuardScope::Conference(c) => self.conferences.get(c),
                };
                GuardRecord {
                    failures: counter.map_or(0, |c| c.failures),
                    window_start: counter.map_or(wall, |c| to_wall(c.window_start)),
                    blocked_until: counter
                        .and_then(|c| c.blocked_until)
                        .map(|t| wall + t.saturating_duration_since(now)),
                    scope,
                }
            })
            .collect()
    }

    /// The thresholds.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// Whether the caller may key a conference ID now.
    pub fn id_entry_allowed(&self, caller: &CallerKey, now: Instant) -> bool {
        !self.callers.get(caller).is_some_and(|c| c.blocked(now))
    }

    /// What to do with a leader PIN this caller keyed for this conference now: a
    /// locked-out caller is refused; a conference under attack slows every check but
    /// refuses none, so that its organiser is never locked out by someone else.
    pub fn pin_entry(
        &self,
        caller: &CallerKey,
        conference: &ConferenceKey,
        now: Instant,
    ) -> PinEntry {
        if !self.id_entry_allowed(caller, now) {
            return PinEntry::Refused;
        }
        let attacked = self
            .conferences
            .get(conference)
            .is_some_and(|c| c.blocked(now));
        PinEntry::Check {
            delay: if attacked {
                self.config.attack_delay
            } else {
                Duration::ZERO
            },
        }
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
        self.changed
            .insert(GuardScope::Conference(conference.clone()));
        if let Some(failures) = counter.fail(now, &cfg, cfg.max_pin_failures_per_conference) {
            let until = now + cfg.cooldown;
            tracing::warn!(
                target: "dialbridge::security",
                tenant = %conference.tenant,
                failures,
                "a conference's leader PIN is under attack: its PIN checks are slowed"
            );
            self.event(SecurityEvent::ConferenceUnderAttack {
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
            self.changed.insert(GuardScope::Caller(caller.clone()));
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
        self.changed.insert(GuardScope::Caller(caller.clone()));
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

    const CHECK_NOW: PinEntry = PinEntry::Check {
        delay: Duration::ZERO,
    };

    fn caller(n: u32) -> CallerKey {
        CallerKey(format!("sip:+1425555{n:04}@trunk"))
    }

    fn small() -> GuardConfig {
        GuardConfig {
            max_failures_per_caller: 3,
            max_pin_failures_per_conference: 5,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
            attack_delay: Duration::from_secs(3),
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
        assert_eq!(g.pin_entry(&a, &c, t0), CHECK_NOW);
        assert_eq!(g.poll_event(), None);
        g.handle_wrong_id(&a, t0);
        assert_eq!(g.pin_entry(&a, &c, t0), PinEntry::Refused);
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
        assert_eq!(g.pin_entry(&caller(2), &c, t0), CHECK_NOW);
        assert_eq!(
            g.pin_entry(&a, &c, until - Duration::from_secs(1)),
            PinEntry::Refused
        );
        assert_eq!(g.pin_entry(&a, &c, until), CHECK_NOW);
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
    fn a_conference_under_attack_slows_every_pin_check_and_refuses_none() {
        let t0 = Instant::now();
        let mut g = GuessGuard::new(small());
        let c = conf("987654321");
        for n in 0..5 {
            g.handle_wrong_pin(&caller(n), &c, t0);
        }
        // Every caller made one guess only, but the conference is now under attack:
        // everyone's PIN check for it waits (the organiser's too, once), nobody is
        // refused for it; other conferences are not slowed.
        let slowed = PinEntry::Check {
            delay: small().attack_delay,
        };
        assert_eq!(g.pin_entry(&caller(42), &c, t0), slowed);
        assert_eq!(g.pin_entry(&caller(1), &c, t0), slowed);
        assert_eq!(g.pin_entry(&caller(42), &conf("123456789"), t0), CHECK_NOW);
        let end = t0 + small().cooldown;
        assert_eq!(g.pin_entry(&caller(42), &c, end), CHECK_NOW);
        let events: Vec<_> = std::iter::from_fn(|| g.poll_event()).collect();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, SecurityEvent::ConferenceUnderAttack { failures: 5, .. }))
        );
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
    fn counters_survive_a_restart_through_their_records() {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut g = GuessGuard::new(small());
        let (a, b, c) = (caller(1), caller(2), conf("123456789"));
        for _ in 0..3 {
            g.handle_wrong_id(&a, t0);
        }
        g.handle_wrong_pin(&b, &c, t0);
        let mut records = g.take_changes(t0, wall);
        records.sort_by_key(|r| format!("{:?}", r.scope));
        assert_eq!(records.len(), 3, "{records:?}");
        assert!(g.take_changes(t0, wall).is_empty(), "taken once");
        let blocked = records
            .iter()
            .find(|r| r.scope == GuardScope::Caller(a.clone()))
            .unwrap();
        assert_eq!(
            blocked.blocked_until,
            Some(wall + small().cooldown),
            "in wall-clock time"
        );

        // A new process, a minute later on both clocks.
        let (t1, wall1) = (Instant::now(), wall + Duration::from_secs(60));
        let mut after = GuessGuard::new(small());
        after.restore(records, t1, wall1);
        assert!(!after.id_entry_allowed(&a, t1), "still locked out");
        let left = small().cooldown - Duration::from_secs(60);
        assert!(after.id_entry_allowed(&a, t1 + left));
        // b's one failure is 60 s old: out of the 60 s window, so it was not kept.
        assert!(!after.callers.contains_key(&b));
    }

    #[test]
    fn with_the_ivr() {
        use crate::Digit;
        use crate::ivr::{Action, Ivr, IvrConfig, LookupResult, PinResult};

        let t0 = Instant::now();
        let mut g = GuessGuard::new(small());
        let c = conf("123456789");
        // Earlier calls from other numbers guessed this conference's PIN: it is under
        // attack, and its organiser keys the right PIN.
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
                let r = match g.pin_entry(&me, conference, t0) {
                    PinEntry::Check { delay } if delay > Duration::ZERO => PinResult::Valid,
                    other => panic!("the organiser is not slowed or is refused: {other:?}"),
                };
                ivr.handle_pin_result(r, t0);
            }
            last = Some(a);
        }
        assert!(matches!(last, Some(Action::Join { .. })), "{last:?}");
    }
}
