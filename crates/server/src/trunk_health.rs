//! The health of each trunk's outbound target, as OPTIONS probes (RFC 3261 §11) and
//! dial-out INVITEs find it: a pure state machine fed with `now`, which says which
//! trunk is due a probe ([`TrunkHealth::poll_probe`]), takes the answers, the timeouts
//! and the dial-outs' failures, and says whether a trunk may be dialled out through
//! ([`TrunkHealth::is_up`]). The signaling task owns it and sends the probes
//! (`signaling/probe.rs`); what it finds is published on a [`HealthBoard`] for the admin
//! API, the dashboard and `/metrics`.
//!
//! It lives in the server, not the router, because what an answer means is SIP (a 503
//! is not a 404), and the router speaks none; it is keyed by the router's [`TrunkId`].
//!
//! ```text
//!   Unprobed ──answer──> Up <──up_after successes── Down
//!      │                  │                          ^
//!      └──────────────────┴── down_after failures ───┘  (a 503: at once)
//! ```
//!
//! A trunk is presumed up until its first probe has answered or failed: at start (or
//! when its target changes) the first probe goes out at once, so the presumption lasts
//! one round trip, while presuming it down would refuse every dial-out until then (and,
//! with probing off, for ever).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dialbridge_router::TrunkId;
use tokio::sync::watch;

/// When to probe, how long to wait, and how many results in a row change the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Between two probes of a trunk (one is in flight at a time). Zero: no probing,
    /// every trunk stays up.
    pub interval: Duration,
    /// A probe with no final answer by then has failed.
    pub timeout: Duration,
    /// Failures in a row that mark a trunk down (a 503 does at once).
    pub down_after: u32,
    /// Successes in a row that mark a down trunk up.
    pub up_after: u32,
}

impl Default for HealthConfig {
    /// 15 s between probes; the timeout of the OPTIONS' own transaction (Timer F,
    /// 64*T1 = 32 s); down after 2 failures, up after 1 success.
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(32),
            down_after: 2,
            up_after: 1,
        }
    }
}

/// A trunk's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Nothing found yet: presumed up.
    Unprobed,
    /// Answering.
    Up,
    /// Not answering, or unavailable: dial-outs skip it.
    Down,
}

impl HealthState {
    /// Whether dial-outs may use the trunk.
    pub fn is_up(self) -> bool {
        self != HealthState::Down
    }

    /// `up` or `down`, for the API and the dashboard.
    pub fn as_str(self) -> &'static str {
        if self.is_up() { "up" } else { "down" }
    }
}

/// What the last probe (or dial-out) of a trunk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// A final answer to OPTIONS, with its status.
    Answered(u16),
    /// No final answer to OPTIONS in time.
    TimedOut,
    /// A dial-out INVITE answered 503 or 408, or not at all.
    InviteFailed,
}

impl Finding {
    /// `200`, `503`, `timeout` or `invite_failed`, for the API.
    pub fn label(self) -> String {
        match self {
            Finding::Answered(status) => status.to_string(),
            Finding::TimedOut => "timeout".to_string(),
            Finding::InviteFailed => "invite_failed".to_string(),
        }
    }
}

/// How a final answer to OPTIONS counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target's SIP stack answered and is not refusing service.
    Alive,
    /// A failure, counted towards `down_after`.
    Failure,
    /// Unavailable (503): down at once.
    Unavailable,
}

/// The verdict on a final answer to OPTIONS. 2xx is alive. 503 (RFC 3261 §21.5.4: the
/// server is overloaded or in maintenance) is down at once. 408, 500, 502, 504 and 6xx
/// say the target cannot serve: failures. Any other answer (3xx; 4xx, as from an SBC
/// that refuses OPTIONS from us or for that URI; 501, one that does not implement
/// them) comes from a live SIP stack that still takes INVITEs: alive. (Kamailio's
/// dispatcher takes only 200 unless `ds_ping_reply_codes` lists more; marking such a
/// trunk down would stop every dial-out through a working trunk.)
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Alive,
        503 => Verdict::Unavailable,
        408 | 500 | 502 | 504..=599 | 600..=699 => Verdict::Failure,
        _ => Verdict::Alive,
    }
}

/// One OPTIONS sent: which trunk, where, and which of its probes (a late answer to an
/// older probe is not taken for this one's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The trunk probed.
    pub trunk: TrunkId,
    /// Its outbound target.
    pub target: SocketAddr,
    id: u64,
}

/// The health of every trunk with an outbound target.
#[derive(Debug)]
pub struct TrunkHealth {
    config: HealthConfig,
    trunks: BTreeMap<TrunkId, Entry>,
    next_id: u64,
    /// Bumped by every visible change, so the owner publishes only when there is one.
    generation: u64,
}

#[derive(Debug)]
struct Entry {
    name: Arc<str>,
    target: SocketAddr,
    state: HealthState,
    failures: u32,
    successes: u32,
    /// When the next probe is due (once none is in flight).
    next_probe: Instant,
    /// The probe in flight and when it fails for want of an answer.
    in_flight: Option<(u64, Instant)>,
    last: Option<(Finding, Instant)>,
    changed: Option<Instant>,
    options_sent: u64,
    options_failed: u64,
}

impl TrunkHealth {
    /// No trunks yet: [`TrunkHealth::set_targets`] gives them.
    pub fn new(config: HealthConfig) -> TrunkHealth {
        TrunkHealth {
            config,
            trunks: BTreeMap::new(),
            next_id: 0,
            generation: 0,
        }
    }

    /// The trunks to watch, as the plan has them now (after a reload too): new ones are
    /// presumed up and probed at once, those whose target changed start afresh (their
    /// counters kept), those gone are forgotten.
    pub fn set_targets(&mut self, targets: &[(TrunkId, Arc<str>, SocketAddr)], now: Instant) {
        let before = self.trunks.len();
        self.trunks
            .retain(|id, _| targets.iter().any(|(t, _, _)| t == id));
        let mut changed = self.trunks.len() != before;
        for (id, name, target) in targets {
            match self.trunks.get_mut(id) {
                Some(entry) if entry.target == *target => {
                    if entry.name != *name {
                        entry.name = name.clone();
                        changed = true;
                    }
                }
                Some(entry) => {
                    let (sent, failed) = (entry.options_sent, entry.options_failed);
                    *entry = Entry::new(name.clone(), *target, now);
                    (entry.options_sent, entry.options_failed) = (sent, failed);
                    changed = true;
                }
                None => {
                    self.trunks
                        .insert(*id, Entry::new(name.clone(), *target, now));
                    changed = true;
                }
            }
        }
        if changed {
            self.generation += 1;
        }
    }

    /// The next probe due at `now`, if any: counted as sent and in flight until its
    /// answer, its timeout, or `now + timeout`.
    pub fn poll_probe(&mut self, now: Instant) -> Option<Probe> {
        if self.config.interval.is_zero() {
            return None;
        }
        let (trunk, entry) = self
            .trunks
            .iter_mut()
            .find(|(_, e)| e.in_flight.is_none() && e.next_probe <= now)?;
        self.next_id += 1;
        entry.in_flight = Some((self.next_id, now + self.config.timeout));
        entry.next_probe = now + self.config.interval;
        entry.options_sent += 1;
        self.generation += 1;
        Some(Probe {
            trunk: *trunk,
            target: entry.target,
            id: self.next_id,
        })
    }

    /// When [`TrunkHealth::poll_probe`] or [`TrunkHealth::handle_timeout`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.config.interval.is_zero() {
            return None;
        }
        self.trunks
            .values()
            .map(|e| e.in_flight.map_or(e.next_probe, |(_, deadline)| deadline))
            .min()
    }

    /// Fails the probes whose answer is overdue at `now`, and hands them back (their
    /// transactions are no longer of use).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Probe> {
        let config = self.config;
        let mut overdue = Vec::new();
        for (trunk, entry) in &mut self.trunks {
            let Some((id, deadline)) = entry.in_flight else {
                continue;
            };
            if deadline <= now {
                entry.in_flight = None;
                entry.fail(Finding::TimedOut, false, now, &config);
                overdue.push(Probe {
                    trunk: *trunk,
                    target: entry.target,
                    id,
                });
            }
        }
        if !overdue.is_empty() {
            self.generation += 1;
        }
        overdue
    }

    /// A response to `probe`: provisional ones are ignored, a final one counts as
    /// [`verdict`] says (an answer to a probe no longer in flight, too late, is ignored).
    pub fn handle_options_answer(&mut self, probe: &Probe, status: u16, now: Instant) {
        if status < 200 {
            return;
        }
        let config = self.config;
        let Some(entry) = self.in_flight(probe) else {
            return;
        };
        entry.in_flight = None;
        let finding = Finding::Answered(status);
        match verdict(status) {
            Verdict::Alive => entry.succeed(finding, now, &config),
            Verdict::Failure => entry.fail(finding, false, now, &config),
            Verdict::Unavailable => entry.fail(finding, true, now, &config),
        }
        self.generation += 1;
    }

    /// `probe`'s transaction timed out (Timer F) before our own timeout did.
    pub fn handle_options_timeout(&mut self, probe: &Probe, now: Instant) {
        let config = self.config;
        let Some(entry) = self.in_flight(probe) else {
            return;
        };
        entry.in_flight = None;
        entry.fail(Finding::TimedOut, false, now, &config);
        self.generation += 1;
    }

    /// A dial-out INVITE through `trunk` was answered 503 or 408, or not at all: a
    /// failure like a probe's, and the trunk is probed again at once to confirm it.
    pub fn report_invite_failure(&mut self, trunk: TrunkId, now: Instant) {
        let config = self.config;
        let Some(entry) = self.trunks.get_mut(&trunk) else {
            return;
        };
        entry.fail(Finding::InviteFailed, false, now, &config);
        entry.next_probe = entry.next_probe.min(now);
        self.generation += 1;
    }

    /// Whether dial-outs may go through `trunk`: not found down. A trunk not watched
    /// (probing off, or no target yet) is presumed up.
    pub fn is_up(&self, trunk: TrunkId) -> bool {
        self.trunks.get(&trunk).is_none_or(|e| e.state.is_up())
    }

    /// The trunks of `route` that are up, in its order: where a dial-out tries next.
    pub fn available(&self, route: &[TrunkId]) -> Vec<TrunkId> {
        route.iter().copied().filter(|t| self.is_up(*t)).collect()
    }

    /// Changes with every visible change (state, findings, counters).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every watched trunk, for the API and metrics, its instants read on the wall
    /// clock (`wall` is the wall-clock time of `now`).
    pub fn report(&self, now: Instant, wall: SystemTime) -> Vec<TrunkHealthView> {
        let at = |instant: Instant| wall.checked_sub(now.saturating_duration_since(instant));
        self.trunks
            .iter()
            .map(|(id, e)| TrunkHealthView {
                trunk: *id,
                name: e.name.clone(),
                target: e.target,
                state: e.state,
                consecutive_failures: e.failures,
                last_finding: e.last.map(|(finding, _)| finding),
                last_finding_at: e.last.and_then(|(_, t)| at(t)),
                last_change_at: e.changed.and_then(at),
                options_sent: e.options_sent,
                options_failed: e.options_failed,
            })
            .collect()
    }

    fn in_flight(&mut self, probe: &Probe) -> Option<&mut Entry> {
        self.trunks
            .get_mut(&probe.trunk)
            .filter(|e| e.in_flight.is_some_and(|(id, _)| id == probe.id))
    }
}

impl Entry {
    fn new(name: Arc<str>, target: SocketAddr, now: Instant) -> Entry {
        Entry {
            name,
            target,
            state: HealthState::Unprobed,
            failures: 0,
            successes: 0,
            next_probe: now,
            in_flight: None,
            last: None,
            changed: None,
            options_sent: 0,
            options_failed: 0,
        }
    }

    fn succeed(&mut self, finding: Finding, now: Instant, config: &HealthConfig) {
        self.failures = 0;
        self.successes = self.successes.saturating_add(1);
        self.last = Some((finding, now));
        match self.state {
            HealthState::Unprobed => self.state = HealthState::Up,
            HealthState::Down if self.successes >= config.up_after => {
                self.state = HealthState::Up;
                self.changed = Some(now);
                tracing::info!(trunk = %self.name, target = %self.target, "trunk up");
            }
            HealthState::Up | HealthState::Down => {}
        }
    }

    fn fail(&mut self, finding: Finding, at_once: bool, now: Instant, config: &HealthConfig) {
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        if finding != Finding::InviteFailed {
            self.options_failed += 1;
        }
        self.last = Some((finding, now));
        if self.state != HealthState::Down && (at_once || self.failures >= config.down_after) {
            self.state = HealthState::Down;
            self.changed = Some(now);
            tracing::warn!(
                trunk = %self.name,
                target = %self.target,
                finding = %finding.label(),
                failures = self.failures,
                "trunk down: dial-outs skip it"
            );
        } else if self.state == HealthState::Unprobed {
            self.state = HealthState::Up;
        }
    }
}

/// One trunk's health as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkHealthView {
    pub trunk: TrunkId,
    pub name: Arc<str>,
    pub target: SocketAddr,
    pub state: HealthState,
    pub consecutive_failures: u32,
    pub last_finding: Option<Finding>,
    pub last_finding_at: Option<SystemTime>,
    /// When it last went up or down.
    pub last_change_at: Option<SystemTime>,
    pub options_sent: u64,
    pub options_failed: u64,
}

/// Where the signaling task publishes the trunks' health and the admin API and the
/// metrics read it: the latest report, replaced whole. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HealthBoard(Arc<watch::Sender<Arc<[TrunkHealthView]>>>);

impl Default for HealthBoard {
    fn default() -> Self {
        HealthBoard(Arc::new(watch::Sender::new(Arc::from([]))))
    }
}

impl HealthBoard {
    /// Replaces the report.
    pub fn publish(&self, report: Vec<TrunkHealthView>) {
        self.0.send_replace(report.into());
    }

    /// The latest report: every watched trunk (none before the first publication).
    pub fn current(&self) -> Arc<[TrunkHealthView]> {
        self.0.borrow().clone()
    }

    /// The latest report of the trunk called `name`.
    pub fn trunk(&self, name: &str) -> Option<TrunkHealthView> {
        self.current().iter().find(|t| &*t.name == name).cloned()
    }
}

#[cfg(test)]
mod tests;
