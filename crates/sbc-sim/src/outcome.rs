//! What one call did and whether it went as expected: the caller's expectations and
//! the outcome the call task returns (printed as text or JSON, folded into a load
//! report).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audio_check::{Analysis, Expectation};
use crate::codec::CallCodec;
use crate::pacing::Pacing;
use crate::rtp::RemoteMedia;

/// What the caller expects of the call.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// The final status of the INVITE (200 unless testing a refusal).
    pub status: u16,
    /// The bridge ends the call (BYE) before we do.
    pub bridge_hangs_up: bool,
    /// Audio checks on what was heard.
    pub audio: Vec<Expectation>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            status: 200,
            bridge_hangs_up: false,
            audio: Vec::new(),
        }
    }
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// We sent BYE (or CANCEL).
    Caller,
    /// The bridge sent BYE.
    Bridge,
    /// The bridge refused the INVITE with a final status.
    Refused,
    /// No answer or no final response in time.
    Timeout,
    /// A local error stopped the call (socket, SDP).
    Error,
}

/// Counters from the media task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaCounts {
    /// RTP packets sent.
    pub sent: u64,
    /// RFC 4733 packets among them.
    pub events_sent: u64,
    /// Audio packets received.
    pub received: u64,
    /// Telephone-event packets received.
    pub events_received: u64,
    /// Packets dropped (not RTP, unknown payload type).
    pub dropped: u64,
    /// Whether the 20 ms send clock kept time: packets due, on time, ticks missed.
    #[serde(default)]
    pub pacing: Pacing,
}

/// The codec an SDP answer settled, as the call reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NegotiatedCodec {
    /// Which of ours it is.
    pub codec: CallCodec,
    /// The `a=rtpmap` encoding name (`PCMU`, `G722`, `opus`).
    pub encoding: &'static str,
    /// The payload type we send with (the answer's numbering).
    pub payload_type: u8,
    /// The RTP clock rate, Hz.
    pub clock_rate: u32,
    /// The telephone-event payload type, if negotiated.
    pub telephone_event: Option<u8>,
}

impl NegotiatedCodec {
    /// What `remote` says.
    pub fn of(remote: &RemoteMedia) -> Self {
        NegotiatedCodec {
            codec: CallCodec::of(remote.codec),
            encoding: remote.codec.encoding_name(),
            payload_type: remote.payload_type,
            clock_rate: remote.codec.clock_rate(),
            telephone_event: remote.telephone_event,
        }
    }
}

/// The outcome of one call.
#[derive(Debug, Clone, Serialize)]
pub struct CallOutcome {
    /// Its Call-ID.
    pub call_id: String,
    /// The INVITE's final status (the last INVITE's, after a challenge).
    pub status: Option<u16>,
    /// Its reason phrase.
    pub reason: Option<String>,
    /// First INVITE sent to the 2xx received.
    #[serde(serialize_with = "ser_ms")]
    pub setup: Option<Duration>,
    /// Last key sent to the first audio heard after a quiet frame (the bridge's answer
    /// to the keys: the joined prompt or the next IVR prompt).
    #[serde(serialize_with = "ser_ms")]
    pub dtmf_to_response: Option<Duration>,
    /// Who ended it.
    pub ended_by: EndedBy,
    /// The codec the SDP answer chose (the latest, after a re-INVITE).
    pub codec: Option<NegotiatedCodec>,
    /// From the 2xx to the end.
    #[serde(serialize_with = "ser_ms")]
    pub connected: Option<Duration>,
    /// Media counters.
    pub media: MediaCounts,
    /// What the audio analysis found (answered calls).
    pub analysis: Option<Analysis>,
    /// Whether the audio expectations were met (`None`: none, or not answered).
    pub audio_ok: Option<bool>,
    /// Every way the call differed from what was expected; empty when it passed.
    pub failures: Vec<String>,
    /// The heard audio (mono at `heard_rate`), for `--record`.
    #[serde(skip)]
    pub heard: Vec<i16>,
    /// The rate of `heard`, Hz: 8000 for G.711, 16000 for G.722 and Opus.
    pub heard_rate: u32,
}

impl CallOutcome {
    /// A call that could not even be placed (an address or user that makes no SIP URI).
    pub fn not_placed(reason: String) -> Self {
        CallOutcome {
            call_id: String::new(),
            status: None,
            reason: None,
            setup: None,
            dtmf_to_response: None,
            ended_by: EndedBy::Error,
            codec: None,
            connected: None,
            media: MediaCounts::default(),
            analysis: None,
            audio_ok: None,
            failures: vec![reason],
            heard: Vec::new(),
            heard_rate: 8000,
        }
    }

    /// True when the call went as expected.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Whether the INVITE got a 2xx.
    pub fn answered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

fn ser_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}
