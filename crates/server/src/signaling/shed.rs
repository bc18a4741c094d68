//! Shedding a flood of new calls before any costly work: a new INVITE past the
//! configured call rate, or arriving while the signaling task is already behind (many
//! messages waiting in its queue), gets 503 with Retry-After at once — no transaction,
//! no routing, no RTP port — so the calls already up keep their signaling and media,
//! and the bridge is itself again the moment the flood stops.
//!
//! Pure: the task passes in the time and the queue's length.

use std::time::Instant;

/// When to shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShedConfig {
    /// New calls per second taken at most (0: no fixed limit, only the backlog counts).
    pub max_call_rate: u32,
    /// Messages waiting for the signaling task above which new calls are shed.
    pub max_backlog: usize,
}

impl Default for ShedConfig {
    fn default() -> Self {
        Self {
            max_call_rate: 0,
            max_backlog: 512,
        }
    }
}

/// A token bucket over new calls, and the backlog check.
#[derive(Debug, Clone)]
pub struct Shedder {
    config: ShedConfig,
    /// Calls that may start now (at most `burst`).
    tokens: f64,
    burst: f64,
    last: Instant,
}

impl Shedder {
    /// A full bucket at `now`: a quarter of a second's calls (at least 10) may come at once.
    pub fn new(config: ShedConfig, now: Instant) -> Self {
        let burst = (f64::from(config.max_call_rate) / 4.0).max(10.0);
        Self {
            config,
            tokens: burst,
            burst,
            last: now,
        }
    }

    /// Whether a new call arriving at `now`, with `backlog` messages waiting behind it,
    /// may go on.
    pub fn admit(&mut self, now: Instant, backlog: usize) -> bool {
        if backlog > self.config.max_backlog {
            return false;
        }
        if self.config.max_call_rate == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens =
            (self.tokens + elapsed * f64::from(self.config.max_call_rate)).min(self.burst);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rate_holds_over_time_after_a_burst() {
        let t0 = Instant::now();
        let mut s = Shedder::new(
            ShedConfig {
                max_call_rate: 100,
                max_backlog: 512,
            },
            t0,
        );
        // The burst: 25 at once.
        let burst = (0..100).filter(|_| s.admit(t0, 0)).count();
        assert_eq!(burst, 25);
        // Then 100 a second, however many arrive: 1000 offered over 2 s.
        let admitted = (0..1000)
            .filter(|i| s.admit(t0 + Duration::from_millis(2 * i + 2), 0))
            .count();
        assert!((199..=201).contains(&admitted), "{admitted}");
        // Back to normal once the flood stops.
        assert!(s.admit(t0 + Duration::from_secs(10), 0));
    }

    #[test]
    fn a_backlog_sheds_even_without_a_rate() {
        let t0 = Instant::now();
        let mut s = Shedder::new(ShedConfig::default(), t0);
        assert!(
            (0..10_000).all(|_| s.admit(t0, 10)),
            "no rate limit by default"
        );
        assert!(!s.admit(t0, 513));
        assert!(s.admit(t0, 512));
    }
}
