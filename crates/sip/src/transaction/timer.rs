//! RFC 3261 timer values (§17.1.1.1, Table 4 of §A) and the doubling retransmit interval.

use std::time::{Duration, Instant};

/// The base timer values of RFC 3261 Table 4. Every other timer derives from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64*T1: Timers B, F, H, J (unreliable), L and M, and the 2xx give-up of §13.3.1.4.
    pub fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D: at least 32 s over an unreliable transport, zero over a reliable one.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.t1_x64())
        }
    }

    /// Timers I and K: T4 over an unreliable transport, zero over a reliable one.
    pub fn t4_or_zero(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: 64*T1 over an unreliable transport, zero over a reliable one.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1_x64()
        }
    }
}

/// The shortest retransmission interval, whatever the configured T1.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// A retransmission timer that starts at T1 and doubles on each firing, optionally capped
/// (at T2 for Timers E and G and the 2xx retransmission; uncapped for Timer A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// When the timer fires next.
    pub at: Instant,
    interval: Duration,
    cap: Option<Duration>,
}

impl Backoff {
    pub fn start(now: Instant, first: Duration, cap: Option<Duration>) -> Self {
        // A zero T1 (a bad config) must not make the timer fire forever at one instant.
        let first = first.max(MIN_INTERVAL);
        Self {
            at: now + first,
            interval: first,
            cap,
        }
    }

    /// Called when the timer fired: schedule the next firing, doubled (and capped).
    pub fn fire(&mut self, now: Instant) {
        let doubled = self.interval.saturating_mul(2);
        self.interval = match self.cap {
            Some(cap) => doubled.min(cap),
            None => doubled,
        }
        .max(MIN_INTERVAL);
        self.at = now + self.interval;
    }

    /// Restart at a fixed interval (Timer E in Proceeding fires every T2).
    pub fn reset_to(&mut self, now: Instant, interval: Duration) {
        self.interval = interval.max(MIN_INTERVAL);
        self.at = now + self.interval;
    }
}

/// The earliest of a few optional deadlines.
pub(crate) fn earliest(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().min().copied()
}

/// True when an optional deadline has passed.
pub(crate) fn due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_cap() {
        let t = Timers::default();
        let base = Instant::now();
        let mut b = Backoff::start(base, t.t1, Some(t.t2));
        let mut intervals = Vec::new();
        let mut now = base;
        for _ in 0..6 {
            let step = b.at - now;
            intervals.push(step.as_millis());
            now = b.at;
            b.fire(now);
        }
        assert_eq!(intervals, vec![500, 1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn zero_t1_still_makes_progress() {
        let base = Instant::now();
        let mut b = Backoff::start(base, Duration::ZERO, Some(Duration::ZERO));
        assert!(b.at > base);
        b.fire(b.at);
        assert!(b.at > base + MIN_INTERVAL);
    }

    #[test]
    fn derived_timers() {
        let t = Timers::default();
        assert_eq!(t.t1_x64(), Duration::from_secs(32));
        assert_eq!(t.timer_d(false), Duration::from_secs(32));
        assert_eq!(t.timer_d(true), Duration::ZERO);
        assert_eq!(t.t4_or_zero(false), Duration::from_secs(5));
        assert_eq!(t.timer_j(true), Duration::ZERO);
    }
}
