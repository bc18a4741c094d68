//! What a leg between two nodes says besides audio: the satellite's members joining,
//! leaving and keying digits on the way up to the home, and the home's word to each of
//! them on the way down. Carried as JSON in the leg's INFO requests, a batch (an array)
//! per INFO and one INFO at a time, so they arrive once and in order.

use dialbridge_conference::Digit;
use dialbridge_conference::ivr::{PromptId, Role};
use dialbridge_conference::room::RejectReason;
use serde::{Deserialize, Serialize};

use crate::dial_out::{DialOutId, DialOutRefusal};
use crate::meeting_view::{ConferenceView, LiveError, RecordingView};

/// The Content-Type of a leg's INFO bodies.
pub const CONTENT_TYPE: &str = "application/vnd.dialbridge.leg+json";

/// The header of a leg's INVITE naming the meeting: `tenant/conference-id`.
pub const MEETING_HEADER: &str = "X-Dialbridge-Meeting";

/// A satellite's message to the home about one of its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Up {
    /// A caller admitted on the satellite asks to join, as it asked the satellite.
    Join {
        member: u64,
        role: Role,
        wait_for_leader: bool,
        calling: String,
        dialled: String,
        organiser: Option<String>,
        organiser_id: Option<String>,
        join_leave_tones: Option<bool>,
    },
    /// The member's call ended.
    Leave { member: u64 },
    /// The member keyed a digit in the meeting.
    Digit { member: u64, digit: Digit },
    /// The satellite's admin API asks the meeting something; [`Down::Answer`] says.
    Ask { req: u64, ask: Ask },
}

/// What a satellite's admin API asks of a meeting homed elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ask {
    Describe,
    /// Mute or unmute a member of the meeting, on whichever node.
    Mute {
        member: u64,
        muted: bool,
    },
    /// End a member's call, on whichever node.
    Kick {
        member: u64,
    },
    Lock {
        locked: bool,
    },
    Record {
        on: bool,
    },
    DialOut {
        number: String,
    },
}

/// The home's answer to an [`Ask`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    View(ConferenceView),
    /// Whether the meeting knew the member muted or kicked.
    Done(bool),
    /// No such meeting on the home (it ended): the asker hears it is unavailable.
    Gone,
    Locked,
    Recording(Result<RecordingView, LiveError>),
    DialOut(Result<DialOutId, DialOutRefusal>),
}

/// The home's word to one member on a satellite: [`crate::conferences::ToMember`]
/// without the room, which is the satellite's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Down {
    Admitted { member: u64 },
    Rejected { member: u64, reason: RejectReason },
    Muted { member: u64, muted: bool },
    Play { member: u64, prompt: PromptId },
    Count { member: u64, count: usize },
    Kicked { member: u64 },
    Answer { req: u64, answer: Answer },
}

/// An INFO body read back; `Err` names what is wrong with it.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<Vec<T>, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch as the link writes one: each message's JSON, in a JSON array.
    fn encode<T: Serialize>(batch: &[T]) -> Vec<u8> {
        let parts: Vec<String> = batch
            .iter()
            .map(|m| serde_json::to_string(m).unwrap())
            .collect();
        format!("[{}]", parts.join(",")).into_bytes()
    }

    #[test]
    fn batches_read_back_as_written_and_junk_is_an_error() {
        let batch = vec![
            Up::Join {
                member: 7,
                role: Role::Leader,
                wait_for_leader: true,
                calling: "+14155550100".into(),
                dialled: "+14255550100".into(),
                organiser: Some("Adele".into()),
                organiser_id: None,
                join_leave_tones: Some(false),
            },
            Up::Digit {
                member: 7,
                digit: Digit::Star,
            },
            Up::Leave { member: 7 },
        ];
        assert_eq!(decode::<Up>(&encode(&batch)).unwrap(), batch);
        let down = vec![Down::Rejected {
            member: 3,
            reason: RejectReason::MeetingLocked,
        }];
        assert_eq!(decode::<Down>(&encode(&down)).unwrap(), down);
        assert!(decode::<Up>(&encode::<Up>(&[])).unwrap().is_empty());
        assert!(decode::<Up>(b"[{\"op\":\"explode\"}]").is_err());
        assert!(decode::<Down>(b"\xff").is_err());
    }
}
