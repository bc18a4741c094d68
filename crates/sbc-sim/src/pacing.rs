//! Whether the caller kept its 20 ms send clock: per call, the packets its ticks owed
//! the bridge, how many went out on time, and the ticks that ran late or never ran —
//! a load generator short of CPU falls behind here before the bridge does, and a load
//! run whose generator fell behind measured the generator, not the bridge.
//!
//! [`TickMeter`] is pure arithmetic on times since the clock's start (the media task
//! reads the clock and hands them in), so it allocates nothing per packet and can be
//! tested without a runtime.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One call's (or, summed, one load run's) send clock.
///
/// A tick is *due* when its time comes while we are to send (not on hold); each due
/// tick owes one packet. A tick that runs more than one period after its time is
/// *late* (its packet, if sent, counts as sent but not on time); a tick the clock
/// skipped after falling behind, or that never ran before the media stopped although
/// more than one period overdue, is *skipped*.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pacing {
    /// Ticks due while sending: the packets we should have sent.
    pub packets_due: u64,
    /// Packets sent within one period of their tick's time.
    pub packets_on_time: u64,
    /// Due ticks that ran more than one period after their time.
    pub ticks_late: u64,
    /// Due ticks that never ran.
    pub ticks_skipped: u64,
}

impl Pacing {
    /// Adds another call's counts.
    pub fn add(&mut self, other: &Pacing) {
        self.packets_due += other.packets_due;
        self.packets_on_time += other.packets_on_time;
        self.ticks_late += other.ticks_late;
        self.ticks_skipped += other.ticks_skipped;
    }

    /// Ticks late or skipped.
    pub fn ticks_missed(&self) -> u64 {
        self.ticks_late + self.ticks_skipped
    }

    /// Packets sent on time, per cent of those due; `None` when none were due.
    pub fn delivered_pct(&self) -> Option<f64> {
        (self.packets_due > 0)
            .then(|| 100.0 * self.packets_on_time as f64 / self.packets_due as f64)
    }
}

/// Counts a periodic send clock's ticks into a [`Pacing`]. Times are since the
/// clock's start; tick `k` is due at `k × period`.
#[derive(Debug, Clone, Copy)]
pub struct TickMeter {
    period_ns: u128,
    /// The index of the next tick not yet accounted for.
    next: u64,
    pacing: Pacing,
}

impl TickMeter {
    /// A meter for a clock of this period (a zero period counts as 1 ns).
    pub fn new(period: Duration) -> Self {
        TickMeter {
            period_ns: period.as_nanos().max(1),
            next: 0,
            pacing: Pacing::default(),
        }
    }

    fn index(&self, at: Duration) -> u64 {
        u64::try_from(at.as_nanos() / self.period_ns).unwrap_or(u64::MAX)
    }

    /// The tick due at `due` runs at `now`; `sending`: whether it owes a packet (the
    /// ticks skipped since the last one are counted as owing one if this one does).
    /// Returns whether the tick is on time: its packet, once sent, is passed to
    /// [`TickMeter::sent`] with it.
    pub fn on_tick(&mut self, due: Duration, now: Duration, sending: bool) -> bool {
        let index = self.index(due);
        // A tick at or before one already counted (the clock never does this) counts
        // as itself, with nothing skipped.
        let skipped = index.saturating_sub(self.next);
        self.next = index.max(self.next).saturating_add(1);
        let late = now.saturating_sub(due).as_nanos() > self.period_ns;
        if sending {
            self.pacing.packets_due += skipped + 1;
            self.pacing.ticks_skipped += skipped;
            self.pacing.ticks_late += u64::from(late);
        }
        !late
    }

    /// The packet of the tick just counted went out (`on_time`: what
    /// [`TickMeter::on_tick`] said of it).
    pub fn sent(&mut self, on_time: bool) {
        self.pacing.packets_on_time += u64::from(on_time);
    }

    /// The clock stops at `now`: the ticks that never ran although more than one period
    /// overdue are skipped (owing packets if `sending`); those due within the last
    /// period are not counted at all. Returns the counts.
    pub fn finish(&mut self, now: Duration, sending: bool) -> Pacing {
        // Tick k is more than a period overdue when (k + 1) × period < now, roughly:
        // k < now / period, i.e. the first now / period ticks.
        let overdue = self.index(now).saturating_sub(self.next);
        self.next += overdue;
        if sending {
            self.pacing.packets_due += overdue;
            self.pacing.ticks_skipped += overdue;
        }
        self.pacing
    }

    /// The counts so far.
    pub fn pacing(&self) -> Pacing {
        self.pacing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Runs tick `k` at `k × 20 + lateness` ms and sends its packet.
    fn tick(meter: &mut TickMeter, k: u64, lateness: u64) {
        let on_time = meter.on_tick(ms(k * 20), ms(k * 20 + lateness), true);
        meter.sent(on_time);
    }

    #[test]
    fn a_steady_clock_delivers_everything() {
        let mut m = TickMeter::new(ms(20));
        for k in 0..50 {
            tick(&mut m, k, k % 3);
        }
        // The media stops 10 ms after tick 49: nothing overdue.
        let p = m.finish(ms(49 * 20 + 10), true);
        assert_eq!(
            p,
            Pacing {
                packets_due: 50,
                packets_on_time: 50,
                ticks_late: 0,
                ticks_skipped: 0
            }
        );
        assert_eq!(p.ticks_missed(), 0);
        assert_eq!(p.delivered_pct(), Some(100.0));
    }

    #[test]
    fn late_and_skipped_ticks_are_missed() {
        let mut m = TickMeter::new(ms(20));
        tick(&mut m, 0, 0);
        tick(&mut m, 1, 20); // exactly one period late: still on time
        tick(&mut m, 2, 21); // late: sent, not on time
        // The clock fell 50 ms behind at tick 3: tokio's Skip runs 3 late, then 6.
        tick(&mut m, 3, 50);
        tick(&mut m, 6, 1);
        // Tick 7's packet could not be sent (a full socket buffer).
        assert!(m.on_tick(ms(140), ms(141), true));
        tick(&mut m, 8, 0);
        let p = m.pacing();
        assert_eq!(
            (
                p.packets_due,
                p.packets_on_time,
                p.ticks_late,
                p.ticks_skipped
            ),
            (9, 4, 2, 2)
        );
        assert_eq!(p.ticks_missed(), 4);
        let pct = p.delivered_pct().unwrap_or_default();
        assert!((pct - 400.0 / 9.0).abs() < 1e-9, "{pct}");
    }

    #[test]
    fn ticks_that_never_ran_before_the_end_are_skipped() {
        let mut m = TickMeter::new(ms(20));
        tick(&mut m, 0, 0);
        tick(&mut m, 1, 0);
        // Stopped at 45 ms: tick 2 (due at 40) is 5 ms overdue, not counted.
        let mut early = m;
        assert_eq!(early.finish(ms(45), true).ticks_skipped, 0);
        // Stopped at 105 ms without a tick since 20 ms: ticks 2, 3 and 4 never ran
        // (tick 5, due at 100, is within its period).
        let p = m.finish(ms(105), true);
        assert_eq!((p.packets_due, p.ticks_skipped), (5, 3));
    }

    #[test]
    fn ticks_on_hold_owe_nothing() {
        let mut m = TickMeter::new(ms(20));
        tick(&mut m, 0, 0);
        // On hold: late and skipped ticks owe no packet.
        assert!(!m.on_tick(ms(60), ms(100), false));
        tick(&mut m, 4, 0);
        let p = m.finish(ms(200), false);
        assert_eq!(
            (p.packets_due, p.packets_on_time, p.ticks_missed()),
            (2, 2, 0)
        );
        assert_eq!(Pacing::default().delivered_pct(), None);
    }

    #[test]
    fn counts_add_up() {
        let mut total = Pacing::default();
        let one = Pacing {
            packets_due: 10,
            packets_on_time: 8,
            ticks_late: 1,
            ticks_skipped: 1,
        };
        total.add(&one);
        total.add(&one);
        assert_eq!(
            (
                total.packets_due,
                total.packets_on_time,
                total.ticks_missed()
            ),
            (20, 16, 4)
        );
    }
}
