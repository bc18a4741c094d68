//! What a meeting in progress shows of itself: the roster views the admin API and the
//! dashboard serialise, and the errors of a live action (mute, kick, lock, record). The
//! meeting runtime (`conferences.rs`) builds them; the admin API depends on this module,
//! never the meeting runtime on the admin API.

use dialbridge_conference::ivr::Role;
use serde::{Deserialize, Serialize};

use crate::cdr::{RoleName, Timestamp, role_str};

/// One conference in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Conference)]
pub struct ConferenceView {
    pub tenant: String,
    pub conference_id: String,
    pub organiser: Option<String>,
    pub locked: bool,
    /// Being recorded now.
    pub recording: bool,
    pub participants: Vec<ParticipantView>,
}

/// One caller in a conference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Participant)]
pub struct ParticipantView {
    /// The id the mute and kick routes take.
    pub id: u64,
    #[serde(
        serialize_with = "serialize_role",
        deserialize_with = "deserialize_role"
    )]
    #[schema(value_type = RoleName)]
    pub role: Role,
    /// Who called (From user part).
    pub calling: String,
    /// The number dialled.
    pub dialled: String,
    pub joined: Timestamp,
    pub muted: bool,
    /// Talking right now (level above the mixer's voice threshold).
    pub talking: bool,
    /// Waiting for the leader, not yet mixed.
    pub in_lobby: bool,
    /// How the caller's audio reaches the bridge; null until first measured.
    pub quality: Option<ParticipantQuality>,
}

/// Reception quality of one caller's RTP (RFC 3550 §6.4.1), as last published by the
/// call (about once a second), rounded to a tenth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParticipantQuality {
    /// Share of the caller's packets lost over the last RTCP report interval, percent.
    pub loss_percent: f64,
    /// The caller's packets lost since the call began.
    pub packets_lost: i64,
    /// Interarrival jitter of the caller's stream, ms.
    pub jitter_ms: f64,
    /// Round-trip time from the caller's RTCP reports, ms; `None` until one arrived.
    pub rtt_ms: Option<f64>,
}

impl From<dialbridge_media::Quality> for ParticipantQuality {
    fn from(q: dialbridge_media::Quality) -> Self {
        let tenth = |v: f64| (v * 10.0).round() / 10.0;
        ParticipantQuality {
            loss_percent: tenth(q.loss_fraction * 100.0),
            packets_lost: q.lost,
            jitter_ms: tenth(q.jitter_ms),
            rtt_ms: q.rtt_ms.map(tenth),
        }
    }
}

fn serialize_role<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role_str(*role))
}

fn deserialize_role<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
    let name = String::deserialize(d)?;
    [Role::Leader, Role::Participant]
        .into_iter()
        .find(|r| role_str(*r) == name)
        .ok_or_else(|| serde::de::Error::custom(format!("no role {name:?}")))
}

/// A conference's recording after a start or stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Recording)]
pub struct RecordingView {
    pub tenant: String,
    pub conference_id: String,
    /// Being recorded now.
    pub recording: bool,
    /// The WAV file (16 kHz mono), on the bridge's disk.
    pub file: String,
    /// Seconds in the file, once stopped.
    pub seconds: Option<f64>,
}

/// Why a live action could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum LiveError {
    #[error("no participant {0} is in a conference")]
    NoSuchParticipant(u64),
    #[error("no conference {id} is in progress in tenant {tenant}")]
    NoSuchConference { tenant: String, id: String },
    /// The conference task is gone or not answering.
    #[error("conferences unavailable: {0}")]
    Unavailable(String),
    /// The request contradicts the conference's state (already or not recording).
    #[error("{0}")]
    Conflict(String),
    /// The bridge could not write (a recording file).
    #[error("{0}")]
    Storage(String),
}
