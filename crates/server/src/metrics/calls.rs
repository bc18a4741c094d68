//! What the call tasks measure for `/metrics` and the admin API: each call's RTP
//! reception quality (RFC 3550 §6.4.1 loss and interarrival jitter, the RTT of its
//! RTCP reports), the packet totals of every session, ended ones included, and the
//! DTMF entries that failed, by reason.
//!
//! A call task owns its RTP session, so it is the one that reads it: once per
//! [`QUALITY_INTERVAL`] it hands its session's counters and [`Quality`] to its
//! [`QualityReporter`], which adds what grew since the last time to the totals (so a
//! total never goes back when a call ends) and keeps the figures where the meeting's
//! roster and the metrics can read them. Nothing here is on a per-packet path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dialbridge_conference::ivr::{Entry, EntryFailure, FailureKind};
use dialbridge_media::{Quality, SessionStats};
use prometheus_client::metrics::counter::Counter;

use super::{Histogram, JITTER_BUCKETS, RtpCounters};

/// How often a call publishes its session's figures.
pub const QUALITY_INTERVAL: Duration = Duration::from_secs(1);

/// The figures every call publishes, shared by the call tasks, the meetings and the
/// metrics.
#[derive(Debug)]
pub struct CallQuality {
    /// RTP totals over every session, ended ones included.
    pub rtp: Arc<RtpCounters>,
    /// Each call's interarrival jitter, one observation per call per
    /// [`QUALITY_INTERVAL`] (so the histogram counts call-seconds; the crate's lock per
    /// observation is nothing at that rate).
    pub jitter: Arc<Histogram>,
    /// The last figures of every call in progress, by reporter.
    live: Mutex<HashMap<u64, Quality>>,
    next: AtomicU64,
}

impl Default for CallQuality {
    fn default() -> Self {
        CallQuality {
            rtp: Arc::default(),
            jitter: Arc::new(Histogram::new(JITTER_BUCKETS.iter().copied())),
            live: Mutex::default(),
            next: AtomicU64::new(1),
        }
    }
}

impl CallQuality {
    /// A reporter for one new call.
    pub fn reporter(self: &Arc<Self>) -> QualityReporter {
        QualityReporter {
            sink: self.clone(),
            id: self.next.fetch_add(1, Ordering::Relaxed),
            published: SessionStats::default(),
            lost: 0,
        }
    }

    /// The worst figures over the calls in progress: `(calls measured, highest loss
    /// fraction, highest jitter in ms)`.
    pub fn worst(&self) -> (usize, f64, f64) {
        let live = self.live();
        let worst = live.values().fold((0.0f64, 0.0f64), |(loss, jitter), q| {
            (loss.max(q.loss_fraction), jitter.max(q.jitter_ms))
        });
        (live.len(), worst.0, worst.1)
    }

    fn live(&self) -> MutexGuard<'_, HashMap<u64, Quality>> {
        // Every update is one insert or remove: the map is whole after a panic too.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A read handle on one call's last published figures (for the meeting's roster).
#[derive(Debug, Clone)]
pub struct QualityView {
    sink: Arc<CallQuality>,
    id: u64,
}

impl QualityView {
    /// The call's figures, `None` before its first publish or after it ended.
    pub fn current(&self) -> Option<Quality> {
        self.sink.live().get(&self.id).copied()
    }
}

/// One call's publisher. Dropping it (the call ended) forgets the call's figures; the
/// totals keep what it published.
#[derive(Debug)]
pub struct QualityReporter {
    sink: Arc<CallQuality>,
    id: u64,
    /// The session's counters as last published.
    published: SessionStats,
    /// The highest cumulative loss published: RFC 3550's count goes down when
    /// duplicates arrive, the total must not.
    lost: u64,
}

impl QualityReporter {
    /// The handle the meeting's roster reads.
    pub fn view(&self) -> QualityView {
        QualityView {
            sink: self.sink.clone(),
            id: self.id,
        }
    }

    /// Publishes the session's counters and quality (every [`QUALITY_INTERVAL`]).
    pub fn publish(&mut self, stats: SessionStats, quality: Quality) {
        self.add(stats, quality);
        // A call that receives nothing (on hold, muted at the far end's side) has
        // no jitter to speak of: its stale figure would only skew the histogram.
        if stats.received > 0 {
            // `max` also turns a NaN into 0, which would otherwise poison the sum.
            self.sink
                .jitter
                .observe(quality.jitter_ms.max(0.0) / 1000.0);
        }
        self.sink.live().insert(self.id, quality);
    }

    /// The last publish, as the call ends: the totals get the session's final counts.
    pub fn finish(mut self, stats: SessionStats, quality: Quality) {
        self.add(stats, quality);
    }

    /// Adds the counters' growth since the last publish to the totals.
    fn add(&mut self, stats: SessionStats, quality: Quality) {
        let rtp = &self.sink.rtp;
        let grow = |total: &Counter, now: u64, then: u64| {
            if now > then {
                total.inc_by(now - then);
            }
        };
        let last = self.published;
        grow(&rtp.packets_sent, stats.sent, last.sent);
        grow(&rtp.packets_received, stats.received, last.received);
        grow(&rtp.send_dropped, stats.send_dropped, last.send_dropped);
        grow(
            &rtp.receive_dropped,
            stats.receive_dropped,
            last.receive_dropped,
        );
        let lost = u64::try_from(quality.lost).unwrap_or(0);
        grow(&rtp.packets_lost, lost, self.lost);
        self.lost = self.lost.max(lost);
        // Each counter only grows; keep the highest seen so a reset never counts twice.
        self.published = SessionStats {
            sent: last.sent.max(stats.sent),
            received: last.received.max(stats.received),
            send_dropped: last.send_dropped.max(stats.send_dropped),
            receive_dropped: last.receive_dropped.max(stats.receive_dropped),
            ..stats
        };
    }
}

impl Drop for QualityReporter {
    fn drop(&mut self) {
        self.sink.live().remove(&self.id);
    }
}

/// Why a caller's keyed entry failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfFailure {
    /// A conference ID the directory does not know.
    WrongConferenceId,
    /// A leader PIN that is not the conference's.
    WrongPin,
    /// An ID or PIN ended by `#` too short to be checked at all.
    TooShort,
    /// No entry, or an unfinished one, before the digit timer ran out.
    Timeout,
    /// Entry refused without checking: the caller or the conference is in a guessing
    /// cool-down.
    LockedOut,
    /// A telephone-event payload (RFC 4733) that does not parse.
    Malformed,
}

impl DtmfFailure {
    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [DtmfFailure; 6] = [
        DtmfFailure::WrongConferenceId,
        DtmfFailure::WrongPin,
        DtmfFailure::TooShort,
        DtmfFailure::Timeout,
        DtmfFailure::LockedOut,
        DtmfFailure::Malformed,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfFailure::WrongConferenceId => "wrong_conference_id",
            DtmfFailure::WrongPin => "wrong_pin",
            DtmfFailure::TooShort => "too_short",
            DtmfFailure::Timeout => "timeout",
            DtmfFailure::LockedOut => "locked_out",
            DtmfFailure::Malformed => "malformed",
        }
    }

    fn index(self) -> usize {
        match self {
            DtmfFailure::WrongConferenceId => 0,
            DtmfFailure::WrongPin => 1,
            DtmfFailure::TooShort => 2,
            DtmfFailure::Timeout => 3,
            DtmfFailure::LockedOut => 4,
            DtmfFailure::Malformed => 5,
        }
    }

    /// The reason for a failed entry the IVR reported.
    pub fn of(failure: EntryFailure) -> DtmfFailure {
        match (failure.kind, failure.entry) {
            (FailureKind::Wrong, Entry::ConferenceId) => DtmfFailure::WrongConferenceId,
            (FailureKind::Wrong, Entry::Pin) => DtmfFailure::WrongPin,
            (FailureKind::TooShort, _) => DtmfFailure::TooShort,
            (FailureKind::TimedOut, _) => DtmfFailure::Timeout,
        }
    }
}

/// Failed DTMF entries since start, by reason: a counter each, so counting one is an
/// index and an atomic add (the crate's labelled `Family` would hash and lock).
#[derive(Debug, Default)]
pub struct DtmfFailures([Counter; 6]);

impl DtmfFailures {
    /// Counts one failure.
    pub fn count(&self, failure: DtmfFailure) {
        if let Some(c) = self.0.get(failure.index()) {
            c.inc();
        }
    }

    /// Failures of one reason so far.
    pub fn get(&self, failure: DtmfFailure) -> u64 {
        self.0.get(failure.index()).map_or(0, Counter::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(sent: u64, received: u64) -> SessionStats {
        SessionStats {
            sent,
            received,
            ..SessionStats::default()
        }
    }

    fn quality(lost: i64, jitter_ms: f64) -> Quality {
        Quality {
            lost,
            jitter_ms,
            loss_fraction: 0.1,
            ..Quality::default()
        }
    }

    #[test]
    fn totals_grow_by_what_each_call_adds_and_never_go_back() {
        let sink = Arc::new(CallQuality::default());
        let load = Counter::get;
        let mut a = sink.reporter();
        let mut b = sink.reporter();
        let view = a.view();
        assert_eq!(view.current(), None);
        a.publish(stats(50, 45), quality(5, 12.0));
        b.publish(stats(10, 10), quality(0, 2.0));
        assert_eq!(load(&sink.rtp.packets_received), 55);
        assert_eq!(load(&sink.rtp.packets_lost), 5);
        assert_eq!(view.current(), Some(quality(5, 12.0)));
        assert_eq!(sink.worst(), (2, 0.1, 12.0));
        // A duplicate brings RFC 3550's cumulative loss down: the total stays.
        a.publish(stats(100, 96), quality(4, 10.0));
        assert_eq!(load(&sink.rtp.packets_received), 106);
        assert_eq!(load(&sink.rtp.packets_lost), 5);
        a.finish(stats(120, 110), quality(9, 10.0));
        assert_eq!(load(&sink.rtp.packets_received), 120);
        assert_eq!(load(&sink.rtp.packets_sent), 130);
        assert_eq!(load(&sink.rtp.packets_lost), 9);
        // The ended call is off the roster; its packets stay in the totals.
        assert_eq!(view.current(), None);
        assert_eq!(sink.worst(), (1, 0.1, 2.0));
        drop(b);
        assert_eq!(sink.worst().0, 0);
        assert_eq!(load(&sink.rtp.packets_received), 120);
        // Three publishes with packets received: three jitter observations.
        assert_eq!(sink.jitter.count(), 3);
    }

    #[test]
    fn a_silent_call_adds_no_jitter_sample() {
        let sink = Arc::new(CallQuality::default());
        let mut r = sink.reporter();
        r.publish(stats(50, 0), quality(0, 30.0));
        assert_eq!(sink.jitter.count(), 0);
    }

    #[test]
    fn a_nan_or_negative_jitter_is_sampled_as_zero() {
        let sink = Arc::new(CallQuality::default());
        let mut r = sink.reporter();
        r.publish(stats(50, 50), quality(0, f64::NAN));
        r.publish(stats(100, 100), quality(0, -3.0));
        assert_eq!(sink.jitter.count(), 2);
        assert_eq!(sink.jitter.sum(), 0.0);
    }

    #[test]
    fn failures_count_by_reason() {
        let f = DtmfFailures::default();
        f.count(DtmfFailure::WrongPin);
        f.count(DtmfFailure::WrongPin);
        f.count(DtmfFailure::Timeout);
        let counts: Vec<_> = DtmfFailure::ALL.iter().map(|r| f.get(*r)).collect();
        assert_eq!(counts, [0, 2, 0, 1, 0, 0]);
        assert_eq!(DtmfFailure::ALL[0].as_str(), "wrong_conference_id");
    }
}
