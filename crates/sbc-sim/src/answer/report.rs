//! The report of one answered (or refused, or cancelled) call: one JSON line, and
//! whether the call went as the plan said. Pure: built from the call's facts and what
//! its media task counted and heard.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::callee::{Answer, EndedBy, Facts, KeyAt, Plan};
use crate::audio_check::{self, Expectation};
use crate::outcome::MediaCounts;
use crate::rtp::MediaReport;

/// One call, as `sbc-sim answer` prints it (one JSON line on stdout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReport {
    /// The INVITE's Call-ID.
    pub call_id: String,
    /// The calling user (From), or its URI when it has no user part.
    pub from: String,
    /// The dialled number (the Request-URI's user part).
    pub to: String,
    /// The final status we gave the INVITE: 200, the refusal, 487 once cancelled, 480
    /// when the run's time was up while ringing; `None` when none was given.
    pub status: Option<u16>,
    /// From the INVITE to our 200, ms.
    pub answered_after_ms: Option<f64>,
    /// The codec agreed (`PCMU/8000`), its payload type, and telephone-event's.
    pub codec: Option<String>,
    /// The codec's payload type.
    pub payload_type: Option<u8>,
    /// The telephone-event payload type, when the offer had one.
    pub telephone_event: Option<u8>,
    /// The digits we keyed.
    pub keyed: Option<String>,
    /// When keying began, ms after our 200.
    pub keyed_after_ms: Option<f64>,
    /// What we heard after keying (after the answer without keys).
    pub heard: Option<Heard>,
    /// From the INVITE to the end, ms.
    pub duration_ms: f64,
    /// From our 200 to the end, ms.
    pub connected_ms: Option<f64>,
    /// Who ended the call.
    pub ended_by: EndedBy,
    /// The Reason header (RFC 3326) of the caller's BYE or CANCEL.
    pub reason: Option<String>,
    /// RTP packets sent and received.
    pub rtp: MediaCounts,
    /// Whether the call went as told: answered (or refused) as told, the ACK came, the
    /// keys went out, the expected tone was heard.
    pub passed: bool,
    /// Why not.
    pub failures: Vec<String>,
}

/// What the phone heard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heard {
    /// Audio analysed, s.
    pub seconds: f64,
    /// Of which above the silence floor, ms.
    pub audible_ms: u64,
    /// The expected tone when it was heard, else the steadiest tone there was, Hz.
    pub tone_hz: Option<f64>,
    /// That tone's longest run, ms.
    pub tone_run_ms: u64,
    /// Its level, dBFS (the mean RMS of the blocks it dominated).
    pub tone_dbfs: Option<f64>,
    /// `--expect-tone`, and whether it was heard (a steady run of 500 ms or more).
    pub expected_hz: Option<f64>,
    /// Whether it was.
    pub expected_heard: Option<bool>,
}

impl CallReport {
    /// The report of a call that went by `facts` under `plan`, with what its media task
    /// counted and heard, expecting to hear `expect_tone`, at `now` (its end).
    pub fn new(
        facts: &Facts,
        plan: &Plan,
        media: Option<&MediaReport>,
        expect_tone: Option<f64>,
        now: Instant,
    ) -> CallReport {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let ended_at = facts.ended.map_or(now, |(_, at)| at);
        let heard = media
            .filter(|_| facts.answered.is_some())
            .map(|m| heard(&m.heard, m.heard_rate, expect_tone));
        let connected = facts
            .answered
            .map(|a| ended_at.saturating_duration_since(a));
        let rtp = media.map_or_else(MediaCounts::default, |m| MediaCounts {
            sent: m.sent,
            events_sent: m.events_sent,
            received: m.received,
            events_received: m.events_received,
            dropped: m.dropped,
            pacing: m.pacing,
        });
        let mut failures = facts.failures.clone();
        failures.extend(judge(facts, plan, heard.as_ref(), connected, &rtp));
        CallReport {
            call_id: facts.call_id.clone(),
            from: facts.from.clone(),
            to: facts.to.clone(),
            status: facts.status,
            answered_after_ms: facts
                .answered
                .map(|a| ms(a.saturating_duration_since(facts.arrived))),
            codec: facts
                .media
                .map(|m| format!("{}/{}", m.codec.encoding_name(), m.codec.clock_rate())),
            payload_type: facts.media.map(|m| m.payload_type),
            telephone_event: facts.media.and_then(|m| m.telephone_event),
            keyed: facts.keyed.as_ref().map(|(k, _)| k.clone()),
            keyed_after_ms: facts
                .keyed
                .as_ref()
                .zip(facts.answered)
                .map(|((_, at), answered)| ms(at.saturating_duration_since(answered))),
            heard,
            duration_ms: ms(ended_at.saturating_duration_since(facts.arrived)),
            connected_ms: connected.map(ms),
            ended_by: facts.ended.map_or(EndedBy::Timeout, |(by, _)| by),
            reason: facts.reason.clone(),
            rtp,
            passed: failures.is_empty(),
            failures,
        }
    }

    /// The report of an INVITE refused before any call was made of it (no SDP offer,
    /// no codec we speak, a header missing), with our `status`.
    pub fn refused(call_id: &str, from: &str, to: &str, status: u16, why: &str) -> CallReport {
        CallReport {
            call_id: call_id.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            status: Some(status),
            answered_after_ms: None,
            codec: None,
            payload_type: None,
            telephone_event: None,
            keyed: None,
            keyed_after_ms: None,
            heard: None,
            duration_ms: 0.0,
            connected_ms: None,
            ended_by: EndedBy::Answerer,
            reason: None,
            rtp: MediaCounts::default(),
            passed: false,
            failures: vec![format!("INVITE refused: {status} {why}")],
        }
    }

    /// One JSON line.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What `heard` (sampled at `rate` Hz) holds, looking for `expect_tone`.
fn heard(samples: &[i16], rate: u32, expect_tone: Option<f64>) -> Heard {
    let rate = rate.max(1);
    let analysis = audio_check::analyse_at(samples, rate, expect_tone);
    let expected_heard = expect_tone.map(|hz| Expectation::Tone(hz).check(&analysis).is_ok());
    let tone = match (expect_tone, expected_heard) {
        (Some(hz), Some(true)) => audio_check::tone_level(samples, rate, hz),
        _ => audio_check::strongest_tone(samples, rate),
    };
    Heard {
        seconds: samples.len() as f64 / f64::from(rate),
        // Blocks are 100 ms.
        audible_ms: analysis.audible_blocks as u64 * 100,
        tone_hz: tone.map(|t| t.hz),
        tone_run_ms: tone.map_or(0, |t| t.run as u64 * 100),
        tone_dbfs: tone.map(|t| (t.dbfs * 10.0).round() / 10.0),
        expected_hz: expect_tone,
        expected_heard,
    }
}

/// How the call differed from its plan.
fn judge(
    facts: &Facts,
    plan: &Plan,
    heard: Option<&Heard>,
    connected: Option<Duration>,
    rtp: &MediaCounts,
) -> Vec<String> {
    let mut failures = Vec::new();
    let status = facts.status;
    match plan.answer {
        Answer::Accept if status != Some(200) => failures.push(match status {
            Some(487) => "the caller cancelled before our answer".to_owned(),
            other => format!("told to answer 200, gave {other:?}"),
        }),
        Answer::Refuse(code) if status != Some(code) => failures.push(match status {
            Some(487) => "the caller cancelled before our refusal".to_owned(),
            other => format!("told to refuse with {code}, gave {other:?}"),
        }),
        Answer::Never if status != Some(487) => failures.push(format!(
            "told never to answer: the caller should have cancelled (status {status:?})"
        )),
        _ => {}
    }
    if facts.answered.is_none() {
        return failures;
    }
    if !facts.confirmed {
        failures.push("no ACK for our 200".into());
    }
    if let Some(keys) = &plan.keys
        && facts.keyed.is_none()
    {
        failures.push(match plan.key_at {
            KeyAt::AfterPrompt => {
                format!("never keyed {keys}: no prompt followed by silence was heard")
            }
            KeyAt::After(_) => format!("never keyed {keys}: the call ended first"),
        });
    }
    if let Some(h) = heard
        && h.expected_heard == Some(false)
    {
        failures.push(format!(
            "expected a {} Hz tone: not heard (steadiest tone {:?} Hz for {} ms, {} ms audible of {:.1} s)",
            h.expected_hz.unwrap_or_default(),
            h.tone_hz,
            h.tone_run_ms,
            h.audible_ms,
            h.seconds
        ));
    }
    // A caller that answered sends media (silence at least).
    if rtp.received == 0 && connected.is_some_and(|c| c > Duration::from_secs(1)) {
        failures.push("no RTP received".into());
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RemoteMedia;
    use dialbridge_media::{AudioCodec, Codec};

    fn facts(at: Instant) -> Facts {
        Facts {
            call_id: "c1".into(),
            from: "+14255550100".into(),
            to: "+14255557000".into(),
            status: Some(200),
            arrived: at,
            answered: Some(at + Duration::from_millis(1000)),
            confirmed: true,
            media: Some(RemoteMedia {
                addr: "127.0.0.1:40000".parse().unwrap(),
                codec: AudioCodec::G711(Codec::Pcma),
                payload_type: 8,
                telephone_event: Some(101),
                send: true,
            }),
            keyed: Some(("1".into(), at + Duration::from_millis(3000))),
            keys_sent: Some(true),
            ended: Some((EndedBy::Caller, at + Duration::from_millis(9000))),
            reason: Some("Q.850;cause=16".into()),
            failures: Vec::new(),
        }
    }

    fn plan(answer: Answer, keys: Option<&str>) -> Plan {
        Plan {
            ring: Duration::from_millis(1000),
            answer,
            keys: keys.map(str::to_owned),
            key_at: KeyAt::AfterPrompt,
            hold: Duration::from_secs(5),
        }
    }

    fn media(heard: Vec<i16>) -> MediaReport {
        MediaReport {
            heard,
            heard_rate: 8000,
            sent: 400,
            received: 390,
            events_sent: 7,
            ..MediaReport::default()
        }
    }

    fn sine(hz: f64, ms: u32) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| (6000.0 * (std::f64::consts::TAU * hz * f64::from(i) / 8000.0).sin()) as i16)
            .collect()
    }

    #[test]
    fn a_call_that_went_as_told_reports_every_fact_in_one_line() {
        let t0 = Instant::now();
        let m = media([vec![0; 4000], sine(1000.0, 2000)].concat());
        let r = CallReport::new(
            &facts(t0),
            &plan(Answer::Accept, Some("1")),
            Some(&m),
            Some(1000.0),
            t0,
        );
        assert!(r.passed, "{:?}", r.failures);
        assert_eq!((r.status, r.ended_by), (Some(200), EndedBy::Caller));
        assert_eq!(r.answered_after_ms, Some(1000.0));
        assert_eq!(r.keyed.as_deref(), Some("1"));
        assert_eq!(r.keyed_after_ms, Some(2000.0));
        assert_eq!((r.duration_ms, r.connected_ms), (9000.0, Some(8000.0)));
        assert_eq!(r.codec.as_deref(), Some("PCMA/8000"));
        assert_eq!((r.payload_type, r.telephone_event), (Some(8), Some(101)));
        let heard = r.heard.clone().unwrap();
        assert_eq!((heard.tone_hz, heard.tone_run_ms), (Some(1000.0), 2000));
        assert_eq!(
            (heard.expected_hz, heard.expected_heard),
            (Some(1000.0), Some(true))
        );
        assert_eq!(heard.seconds, 2.5);
        let line = r.json_line();
        assert!(!line.contains('\n'));
        let back: CallReport = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["to"], "+14255557000");
        assert_eq!(json["ended_by"], "caller");
        // A sine of peak 6000 has an RMS of 6000/sqrt(2): -17.8 dBFS.
        assert_eq!(json["heard"]["tone_dbfs"], -17.8);
    }

    #[test]
    fn a_call_that_did_not_go_as_told_says_why() {
        let t0 = Instant::now();
        // The wrong tone, no key, no ACK.
        let mut f = facts(t0);
        f.keyed = None;
        f.confirmed = false;
        let m = media(sine(440.0, 2000));
        let r = CallReport::new(
            &f,
            &plan(Answer::Accept, Some("1")),
            Some(&m),
            Some(1000.0),
            t0,
        );
        assert!(!r.passed);
        assert_eq!(r.failures.len(), 3, "{:?}", r.failures);
        assert!(r.failures[0].contains("no ACK"));
        assert!(r.failures[1].contains("never keyed 1"));
        assert!(
            r.failures[2].contains("1000 Hz") && r.failures[2].contains("Some(440.0)"),
            "{}",
            r.failures[2]
        );
        assert_eq!(r.heard.unwrap().tone_hz, Some(440.0));
        // Told to refuse 486, but the caller cancelled first.
        let mut f = facts(t0);
        f.status = Some(487);
        f.answered = None;
        let r = CallReport::new(&f, &plan(Answer::Refuse(486), None), None, None, t0);
        assert_eq!(r.failures, ["the caller cancelled before our refusal"]);
        assert_eq!(r.heard, None);
        // Told never to answer, and cancelled: as told.
        let r = CallReport::new(&f, &plan(Answer::Never, None), None, None, t0);
        assert!(r.passed && r.connected_ms.is_none(), "{:?}", r.failures);
        // Silence on an answered call that lasted: no RTP at all.
        let mut m = media(Vec::new());
        m.received = 0;
        let r = CallReport::new(&facts(t0), &plan(Answer::Accept, None), Some(&m), None, t0);
        assert_eq!(r.failures, ["no RTP received"]);
        let r = CallReport::refused("c2", "a", "b", 488, "no common codec");
        assert!(!r.passed && r.failures[0].contains("488"));
    }
}
