//! The load report: calls attempted, answered and refused (by SIP status), setup
//! latency percentiles (INVITE to 2xx), DTMF-to-response latency, audio checks, and
//! whether sbc-sim's own 20 ms RTP senders kept time (packets due, sent, on time, ticks
//! missed), as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::outcome::{CallOutcome, EndedBy};
use crate::pacing::Pacing;

/// Most distinct failure reasons kept (the rest are counted as "other").
pub const MAX_REASONS: usize = 32;

/// Latency percentiles, milliseconds (nearest-rank method).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Nearest-rank percentiles of `samples` (sorted in place); `None` when empty.
pub fn percentiles(samples: &mut [Duration]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let n = samples.len();
    let at = |p: f64| -> f64 {
        // Nearest rank: the smallest sample with at least p% of samples at or below it.
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
        let d = samples.get(rank.min(n) - 1).copied().unwrap_or_default();
        d.as_secs_f64() * 1000.0
    };
    Some(Percentiles {
        count: n,
        p50_ms: at(50.0),
        p90_ms: at(90.0),
        p99_ms: at(99.0),
        max_ms: at(100.0),
    })
}

/// Counts gathered from call outcomes.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    attempted: u64,
    answered: u64,
    passed: u64,
    statuses: BTreeMap<u16, u64>,
    no_final: u64,
    ended_by: BTreeMap<&'static str, u64>,
    setup: Vec<Duration>,
    dtmf: Vec<Duration>,
    audio_checked: u64,
    audio_passed: u64,
    reasons: BTreeMap<String, u64>,
    not_started: u64,
    wall: Duration,
    launch: Duration,
    /// RTP packets sent, all calls.
    rtp_sent: u64,
    pacing: Pacing,
}

/// Whether sbc-sim's RTP senders kept their 20 ms clocks, all calls together: a
/// generator short of CPU sends late or skips ticks, and then measures itself rather
/// than the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RtpPacing {
    /// Packets the calls' send ticks owed (one per 20 ms while sending).
    pub packets_due: u64,
    /// Packets sent (late ones included).
    pub packets_sent: u64,
    /// Packets sent within 20 ms of their tick's time.
    pub packets_on_time: u64,
    /// Ticks that ran more than 20 ms after their time.
    pub ticks_late: u64,
    /// Ticks that never ran (skipped after falling behind).
    pub ticks_skipped: u64,
    /// Late and skipped ticks.
    pub ticks_missed: u64,
    /// Packets sent on time, per cent of those due (`None`: none due).
    pub delivered_pct: Option<f64>,
}

/// The report as printed with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Calls started.
    pub attempted: u64,
    /// Calls answered with a 2xx.
    pub answered: u64,
    /// Calls refused, by final status.
    pub refused: BTreeMap<u16, u64>,
    /// Calls without any final response.
    pub no_final_response: u64,
    /// Calls that went as expected.
    pub passed: u64,
    /// Calls not started (time limit reached first).
    pub not_started: u64,
    /// How calls ended.
    pub ended_by: BTreeMap<&'static str, u64>,
    /// INVITE to 2xx.
    pub setup_latency: Option<Percentiles>,
    /// Last key to the bridge's audible answer.
    pub dtmf_to_response_latency: Option<Percentiles>,
    /// Calls with audio expectations.
    pub audio_checked: u64,
    /// Of which passed.
    pub audio_passed: u64,
    /// Failure reasons and their counts.
    pub failures: BTreeMap<String, u64>,
    /// Wall-clock time of the run, seconds.
    pub wall_seconds: f64,
    /// Calls started per second, over the time from the first start to the last.
    pub rate: f64,
    /// Whether our own RTP senders kept time.
    pub rtp: RtpPacing,
}

impl LoadReport {
    /// Folds one call in.
    pub fn add(&mut self, call: &CallOutcome) {
        self.attempted += 1;
        match call.status {
            Some(s) if (200..300).contains(&s) => self.answered += 1,
            Some(s) => *self.statuses.entry(s).or_default() += 1,
            None => self.no_final += 1,
        }
        if call.passed() {
            self.passed += 1;
        }
        *self.ended_by.entry(ended_name(call.ended_by)).or_default() += 1;
        if let Some(d) = call.setup {
            self.setup.push(d);
        }
        if let Some(d) = call.dtmf_to_response {
            self.dtmf.push(d);
        }
        if let Some(ok) = call.audio_ok {
            self.audio_checked += 1;
            self.audio_passed += u64::from(ok);
        }
        self.rtp_sent += call.media.sent;
        self.pacing.add(&call.media.pacing);
        for reason in &call.failures {
            // Numbers vary per call; the first words say what kind of failure it was.
            let kind: String = reason
                .split(':')
                .next()
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect();
            if self.reasons.len() < MAX_REASONS || self.reasons.contains_key(&kind) {
                *self.reasons.entry(kind).or_default() += 1;
            } else {
                *self.reasons.entry("other".into()).or_default() += 1;
            }
        }
    }

    /// Calls that were never started (time limit).
    pub fn add_not_started(&mut self, n: u64) {
        self.not_started += n;
    }

    /// Sets the run's wall-clock time.
    pub fn set_wall(&mut self, wall: Duration) {
        self.wall = wall;
    }

    /// Sets the time from the first call's start to the last one's.
    pub fn set_launch(&mut self, launch: Duration) {
        self.launch = launch;
    }

    /// Calls folded in.
    pub fn attempted(&self) -> u64 {
        self.attempted
    }

    /// Calls that went as expected.
    pub fn passed(&self) -> u64 {
        self.passed
    }

    /// The summary (percentiles computed now).
    pub fn summary(&self) -> Summary {
        let wall = self.wall.as_secs_f64();
        Summary {
            attempted: self.attempted,
            answered: self.answered,
            refused: self.statuses.clone(),
            no_final_response: self.no_final,
            passed: self.passed,
            not_started: self.not_started,
            ended_by: self.ended_by.clone(),
            setup_latency: percentiles(&mut self.setup.clone()),
            dtmf_to_response_latency: percentiles(&mut self.dtmf.clone()),
            audio_checked: self.audio_checked,
            audio_passed: self.audio_passed,
            failures: self.reasons.clone(),
            wall_seconds: wall,
            // n starts span n - 1 intervals.
            rate: match self.attempted {
                0 | 1 => 0.0,
                n if self.launch > Duration::ZERO => (n - 1) as f64 / self.launch.as_secs_f64(),
                _ => 0.0,
            },
            rtp: RtpPacing {
                packets_due: self.pacing.packets_due,
                packets_sent: self.rtp_sent,
                packets_on_time: self.pacing.packets_on_time,
                ticks_late: self.pacing.ticks_late,
                ticks_skipped: self.pacing.ticks_skipped,
                ticks_missed: self.pacing.ticks_missed(),
                delivered_pct: self.pacing.delivered_pct(),
            },
        }
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let s = self.summary();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "calls: {} attempted, {} answered, {} passed, {} without final response, {} not started",
            s.attempted, s.answered, s.passed, s.no_final_response, s.not_started
        );
        let _ = writeln!(
            out,
            "time: {:.1} s, calls started at {:.1}/s",
            s.wall_seconds, s.rate
        );
        if !s.refused.is_empty() {
            let refused: Vec<String> = s
                .refused
                .iter()
                .map(|(code, n)| {
                    format!(
                        "{code} {} x{n}",
                        dialbridge_sip::message::reason_phrase(*code)
                    )
                })
                .collect();
            let _ = writeln!(out, "refused: {}", refused.join(", "));
        }
        let ended: Vec<String> = s.ended_by.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "ended by: {}", ended.join(", "));
        write_percentiles(&mut out, "setup (INVITE → 200)", s.setup_latency);
        write_percentiles(&mut out, "DTMF → response", s.dtmf_to_response_latency);
        if s.audio_checked > 0 {
            let _ = writeln!(
                out,
                "audio checks: {}/{} passed",
                s.audio_passed, s.audio_checked
            );
        }
        let r = &s.rtp;
        let _ = writeln!(
            out,
            "our RTP: {} packets due, {} sent, {} on time ({}), ticks missed {} ({} late, {} skipped)",
            r.packets_due,
            r.packets_sent,
            r.packets_on_time,
            r.delivered_pct
                .map_or_else(|| "—".to_owned(), |p| format!("{p:.2} %")),
            r.ticks_missed,
            r.ticks_late,
            r.ticks_skipped
        );
        for (reason, n) in &s.failures {
            let _ = writeln!(out, "failure x{n}: {reason}");
        }
        out
    }
}

fn write_percentiles(out: &mut String, name: &str, p: Option<Percentiles>) {
    match p {
        Some(p) => {
            let _ = writeln!(
                out,
                "{name}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} calls)",
                p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms, p.count
            );
        }
        None => {
            let _ = writeln!(out, "{name}: not measured");
        }
    }
}

fn ended_name(e: EndedBy) -> &'static str {
    match e {
        EndedBy::Caller => "caller",
        EndedBy::Bridge => "bridge",
        EndedBy::Refused => "refused",
        EndedBy::Timeout => "timeout",
        EndedBy::Error => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::MediaCounts;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let p = percentiles(&mut v).unwrap();
        assert_eq!(
            (p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        let p = percentiles(&mut [ms(7)]).unwrap();
        assert_eq!((p.p50_ms, p.p99_ms, p.max_ms), (7.0, 7.0, 7.0));
        // 10 samples: p99 is the largest, p90 the 9th, p50 the 5th.
        let mut v: Vec<Duration> = [5, 1, 9, 3, 7, 2, 8, 4, 10, 6]
            .into_iter()
            .map(ms)
            .collect();
        let p = percentiles(&mut v).unwrap();
        assert_eq!((p.p50_ms, p.p90_ms, p.p99_ms), (5.0, 9.0, 10.0));
        assert!(percentiles(&mut []).is_none());
    }

    fn outcome(status: Option<u16>, setup: Option<u64>, failures: &[&str]) -> CallOutcome {
        CallOutcome {
            call_id: "x".into(),
            status,
            reason: None,
            setup: setup.map(ms),
            dtmf_to_response: None,
            ended_by: if status == Some(200) {
                EndedBy::Caller
            } else {
                EndedBy::Refused
            },
            codec: None,
            connected: None,
            media: MediaCounts::default(),
            analysis: None,
            audio_ok: status.filter(|s| *s == 200).map(|_| failures.is_empty()),
            failures: failures.iter().map(|s| s.to_string()).collect(),
            heard: Vec::new(),
            heard_rate: 8000,
        }
    }

    #[test]
    fn counts_by_status_and_renders() {
        let mut r = LoadReport::default();
        r.add(&outcome(Some(200), Some(10), &[]));
        r.add(&outcome(
            Some(200),
            Some(30),
            &["expected audio: 0 of 10 blocks"],
        ));
        r.add(&outcome(
            Some(486),
            None,
            &["expected 200, got 486 Busy Here"],
        ));
        r.add(&outcome(None, None, &["no final response"]));
        r.set_wall(Duration::from_secs(2));
        r.set_launch(Duration::from_millis(1500));
        let s = r.summary();
        assert_eq!(
            (s.attempted, s.answered, s.passed, s.no_final_response),
            (4, 2, 1, 1)
        );
        assert_eq!(s.refused.get(&486), Some(&1));
        assert_eq!(s.setup_latency.map(|p| p.max_ms), Some(30.0));
        assert_eq!((s.audio_checked, s.audio_passed), (2, 1));
        assert_eq!(s.failures.get("expected audio"), Some(&1));
        assert_eq!(s.rate, 2.0, "4 starts over 1.5 s");
        let text = r.text();
        assert!(text.contains("486 Busy Here x1"), "{text}");
        assert!(text.contains("setup (INVITE → 200): p50 10.0 ms"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["refused"]["486"], 1);
        assert_eq!(json["rtp"]["packets_due"], 0);
        assert!(json["rtp"]["delivered_pct"].is_null());
    }

    #[test]
    fn sums_our_rtp_pacing() {
        let mut r = LoadReport::default();
        for (due, on_time, late, skipped) in [(500, 500, 0, 0), (500, 497, 2, 1)] {
            let mut call = outcome(Some(200), Some(10), &[]);
            call.media.sent = due - skipped;
            call.media.pacing = Pacing {
                packets_due: due,
                packets_on_time: on_time,
                ticks_late: late,
                ticks_skipped: skipped,
            };
            r.add(&call);
        }
        let s = r.summary();
        assert_eq!(
            (
                s.rtp.packets_due,
                s.rtp.packets_sent,
                s.rtp.packets_on_time,
                s.rtp.ticks_missed
            ),
            (1000, 999, 997, 3)
        );
        assert_eq!(s.rtp.delivered_pct, Some(99.7));
        let text = r.text();
        assert!(
            text.contains("our RTP: 1000 packets due, 999 sent, 997 on time (99.70 %), ticks missed 3 (2 late, 1 skipped)"),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["rtp"]["ticks_skipped"], 1);
    }
}
