//! Whether a call's far end is still there, judged from its media: a caller that
//! vanished (crashed, unplugged, its SBC rebooted) sends no BYE, so without this its
//! number, bridge and trunk capacity and its RTP ports stay taken for good.
//!
//! Pure: the call's media task feeds it the session's packet counters and the time,
//! and hears back once that the call has gone silent for too long.

use std::time::{Duration, Instant};

/// How long a call may receive nothing (no RTP, no RTCP) before it is ended; zero
/// never ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTimeouts {
    /// While the call is up and not on hold.
    pub active: Duration,
    /// While the far end holds the call: a holding phone may send nothing but RTCP, and
    /// some send nothing at all, so the wait is longer (the session timer still catches
    /// one that vanished).
    pub held: Duration,
}

impl Default for MediaTimeouts {
    fn default() -> Self {
        Self {
            active: Duration::from_secs(30),
            held: Duration::from_secs(600),
        }
    }
}

/// The watch over one call's media.
#[derive(Debug, Clone)]
pub struct Liveness {
    timeouts: MediaTimeouts,
    /// RTP and RTCP packets received so far, as last observed.
    packets: u64,
    /// When a packet was last seen to arrive (or the watch began, or the hold changed).
    last_heard: Instant,
    held: bool,
    /// Reported once: the owner ends the call.
    reported: bool,
}

impl Liveness {
    /// Starts watching at `now` (the media is opened: the caller has the full timeout to
    /// send its first packet).
    pub fn new(timeouts: MediaTimeouts, now: Instant) -> Self {
        Self {
            timeouts,
            packets: 0,
            last_heard: now,
            held: false,
            reported: false,
        }
    }

    /// The far end put the call on hold or took it off: the wait starts again under the
    /// other timeout (a phone resuming may take a moment to send again).
    pub fn set_held(&mut self, held: bool, now: Instant) {
        if held != self.held {
            self.held = held;
            self.last_heard = now;
        }
    }

    /// The session's received RTP + RTCP count at `now`. `Some(silence)` — once — when
    /// nothing arrived for longer than the timeout: the call must end.
    pub fn observe(&mut self, packets: u64, now: Instant) -> Option<Duration> {
        if packets != self.packets {
            self.packets = packets;
            self.last_heard = now;
            return None;
        }
        let silence = now.saturating_duration_since(self.last_heard);
        let timeout = self.timeout();
        if self.reported || timeout.is_zero() || silence < timeout {
            return None;
        }
        self.reported = true;
        Some(silence)
    }

    /// The timeout that applies now.
    fn timeout(&self) -> Duration {
        if self.held {
            self.timeouts.held
        } else {
            self.timeouts.active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn watch(t0: Instant) -> Liveness {
        Liveness::new(
            MediaTimeouts {
                active: 30 * SEC,
                held: 120 * SEC,
            },
            t0,
        )
    }

    #[test]
    fn silence_past_the_timeout_is_reported_once() {
        let t0 = Instant::now();
        let mut w = watch(t0);
        assert_eq!(w.observe(50, t0 + 10 * SEC), None);
        // Nothing new for 29 s: still alive.
        assert_eq!(w.observe(50, t0 + 39 * SEC), None);
        assert_eq!(w.observe(50, t0 + 40 * SEC), Some(30 * SEC));
        assert_eq!(w.observe(50, t0 + 41 * SEC), None);
    }

    #[test]
    fn any_packet_rtp_or_rtcp_keeps_it_alive() {
        let t0 = Instant::now();
        let mut w = watch(t0);
        for (i, packets) in [1, 1, 2, 2, 3].into_iter().enumerate() {
            let at = t0 + (i as u32 + 1) * 25 * SEC;
            assert_eq!(w.observe(packets, at), None, "at {i}");
        }
    }

    #[test]
    fn a_caller_that_never_sends_is_ended_after_the_timeout() {
        let t0 = Instant::now();
        let mut w = watch(t0);
        assert_eq!(w.observe(0, t0 + 29 * SEC), None);
        assert_eq!(w.observe(0, t0 + 30 * SEC), Some(30 * SEC));
    }

    #[test]
    fn a_zero_timeout_never_ends_the_call() {
        let t0 = Instant::now();
        let mut w = Liveness::new(
            MediaTimeouts {
                active: Duration::ZERO,
                held: Duration::ZERO,
            },
            t0,
        );
        assert_eq!(w.observe(0, t0 + 100_000 * SEC), None);
    }

    #[test]
    fn on_hold_the_longer_timeout_counts_and_resuming_restarts_the_wait() {
        let t0 = Instant::now();
        let mut w = watch(t0);
        w.set_held(true, t0 + 5 * SEC);
        assert_eq!(w.observe(0, t0 + 100 * SEC), None);
        assert_eq!(w.observe(0, t0 + 125 * SEC), Some(120 * SEC));

        let mut w = watch(t0);
        w.set_held(true, t0);
        w.set_held(false, t0 + 100 * SEC);
        assert_eq!(w.observe(0, t0 + 129 * SEC), None);
        assert_eq!(w.observe(0, t0 + 130 * SEC), Some(30 * SEC));
    }
}
