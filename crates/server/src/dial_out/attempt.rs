//! One dial-out's attempts, without I/O: the trunks its route allows in order, which
//! one is next, how long the far end may ring, and what each final answer means —
//! try the next trunk (the trunk or the network failed: 503, 408, no answer at all,
//! 5xx) or stop with an outcome the leader hears (busy, no answer, declined).

use std::time::{Duration, Instant};

use super::DialOutState;

/// How long a dial-out may ring before the bridge gives up (CANCEL): about what a
/// phone network gives before its own no-answer treatment.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(45);

/// What a final answer to a dial-out's INVITE means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (2xx).
    Answered,
    /// This trunk could not place it: try the next one (and count it against the
    /// trunk's health).
    TrunkFailed,
    /// The far end was reached and said no: stop, with this state.
    Final(DialOutState),
}

impl Outcome {
    /// The meaning of `status`, the final answer to our INVITE (408 also stands for no
    /// answer at all, Timer B). `cancelled_for_no_answer`: our ring timeout sent the
    /// CANCEL, so its 487 means nobody answered.
    pub fn of(status: u16, cancelled_for_no_answer: bool) -> Outcome {
        match status {
            200..=299 => Outcome::Answered,
            487 if cancelled_for_no_answer => Outcome::Final(DialOutState::NoAnswer),
            486 | 600 => Outcome::Final(DialOutState::Busy),
            480 => Outcome::Final(DialOutState::NoAnswer),
            // The trunk (or what is behind it) failed, not the called party: RFC 3261
            // §21.5.4 (503) and §21.4.9 (408), and any other server failure.
            408 | 500..=599 => Outcome::TrunkFailed,
            _ => Outcome::Final(DialOutState::Declined),
        }
    }
}

/// The trunks a dial-out may still try, in its route's order.
#[derive(Debug, Clone)]
pub struct Attempts<T> {
    trunks: Vec<T>,
    next: usize,
    ring_timeout: Duration,
    /// When the current attempt gives up ringing.
    ring_until: Option<Instant>,
}

impl<T: Clone> Attempts<T> {
    /// A dial-out over `trunks` (already the allowed, healthy ones, in order).
    pub fn new(trunks: Vec<T>, ring_timeout: Duration) -> Self {
        Self {
            trunks,
            next: 0,
            ring_timeout,
            ring_until: None,
        }
    }

    /// The next trunk to try, and the ring deadline of that attempt; `None` when every
    /// trunk has been tried.
    pub fn next_trunk(&mut self, now: Instant) -> Option<T> {
        let trunk = self.trunks.get(self.next)?.clone();
        self.next += 1;
        self.ring_until = Some(now + self.ring_timeout);
        Some(trunk)
    }

    /// When the current attempt must stop ringing.
    pub fn ring_deadline(&self) -> Option<Instant> {
        self.ring_until
    }

    /// The current attempt was answered or ended: no ring deadline any more.
    pub fn stop_ringing(&mut self) {
        self.ring_until = None;
    }

    /// Whether the ring deadline has passed at `now` (and forgets it: it fires once).
    pub fn ring_timed_out(&mut self, now: Instant) -> bool {
        if self.ring_until.is_some_and(|at| now >= at) {
            self.ring_until = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_mean_what_a_leader_needs_to_hear() {
        assert_eq!(Outcome::of(200, false), Outcome::Answered);
        assert_eq!(Outcome::of(486, false), Outcome::Final(DialOutState::Busy));
        assert_eq!(Outcome::of(600, false), Outcome::Final(DialOutState::Busy));
        assert_eq!(
            Outcome::of(480, false),
            Outcome::Final(DialOutState::NoAnswer)
        );
        assert_eq!(
            Outcome::of(487, true),
            Outcome::Final(DialOutState::NoAnswer)
        );
        assert_eq!(
            Outcome::of(603, false),
            Outcome::Final(DialOutState::Declined)
        );
        assert_eq!(
            Outcome::of(404, false),
            Outcome::Final(DialOutState::Declined)
        );
        // The trunk failed, not the called party: the next trunk is tried.
        for status in [503, 408, 500, 502, 504] {
            assert_eq!(Outcome::of(status, false), Outcome::TrunkFailed, "{status}");
        }
    }

    #[test]
    fn trunks_are_tried_in_order_each_with_its_own_ring_time() {
        let t0 = Instant::now();
        let ring = Duration::from_secs(45);
        let mut a = Attempts::new(vec!["microsoft-pstn", "telco-a"], ring);
        assert_eq!(a.next_trunk(t0), Some("microsoft-pstn"));
        assert_eq!(a.ring_deadline(), Some(t0 + ring));
        assert!(!a.ring_timed_out(t0 + ring - Duration::from_millis(1)));
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(a.next_trunk(t1), Some("telco-a"));
        assert!(a.ring_timed_out(t1 + ring));
        assert!(!a.ring_timed_out(t1 + ring), "fires once");
        assert_eq!(a.next_trunk(t1), None);
    }
}
