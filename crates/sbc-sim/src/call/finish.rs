//! The end of a call: stop the media, analyse what was heard, and compare everything
//! with what the caller expected.

use std::time::{Duration, Instant};

use super::Call;
use crate::audio_check;
use crate::outcome::{CallOutcome, EndedBy, MediaCounts};

impl Call<'_> {
    pub(super) async fn finish(mut self) -> CallOutcome {
        let report = match self.media.take() {
            Some(m) => Some(m.finish().await),
            None => None,
        };
        let ended = Instant::now();
        let expect = &self.config.expect;
        let status = self.status.as_ref().map(|(c, _)| *c);
        match status {
            Some(s) if s != expect.status => {
                let reason = self
                    .status
                    .as_ref()
                    .map(|(_, r)| r.as_str())
                    .unwrap_or_default();
                self.failures
                    .push(format!("expected {}, got {s} {reason}", expect.status));
            }
            None if self.failures.is_empty() => {
                self.failures.push("no final response".into());
            }
            _ => {}
        }
        let ended_by = self.ended_by.unwrap_or(EndedBy::Caller);
        let answered = status.is_some_and(|s| (200..300).contains(&s));
        if answered && expect.bridge_hangs_up && ended_by != EndedBy::Bridge {
            self.failures.push("expected the bridge to hang up".into());
        }
        if answered && !expect.bridge_hangs_up && ended_by == EndedBy::Bridge {
            self.failures.push("the bridge hung up early".into());
        }
        let record_rate = self.config.codec.record_rate().hz();
        let (media, analysis, heard, heard_rate, response) = match report {
            Some(r) => {
                let tone = expect.audio.iter().find_map(|e| match e {
                    audio_check::Expectation::Tone(f) => Some(*f),
                    _ => None,
                });
                // Nothing recorded (no check asked for, no --record): nothing to analyse.
                let rate = if r.heard_rate == 0 {
                    record_rate
                } else {
                    r.heard_rate
                };
                let analysis = (self.config.record_limit > 0)
                    .then(|| audio_check::analyse_at(&r.heard, rate, tone));
                let counts = MediaCounts {
                    sent: r.sent,
                    events_sent: r.events_sent,
                    received: r.received,
                    events_received: r.events_received,
                    dropped: r.dropped,
                    pacing: r.pacing,
                };
                (counts, analysis, r.heard, rate, r.response_after_mark)
            }
            None => (MediaCounts::default(), None, Vec::new(), record_rate, None),
        };
        let mut audio_ok = None;
        if let Some(a) = &analysis {
            for e in &expect.audio {
                let result = e.check(a);
                audio_ok = Some(audio_ok.unwrap_or(true) && result.is_ok());
                if let Err(why) = result {
                    self.failures.push(why);
                }
            }
        }
        let connected = self.answered_at.map(|t| ended.saturating_duration_since(t));
        // The bridge always sends media (silence at least) once it has answered.
        if media.received == 0 && connected.is_some_and(|c| c > Duration::from_secs(1)) {
            self.failures.push("no RTP received".into());
        }
        CallOutcome {
            call_id: self.session.call_id().to_owned(),
            status,
            reason: self.status.map(|(_, r)| r),
            setup: self.setup,
            dtmf_to_response: response,
            ended_by,
            codec: self.negotiated,
            connected,
            media,
            analysis,
            audio_ok,
            failures: self.failures,
            heard,
            heard_rate,
        }
    }
}
