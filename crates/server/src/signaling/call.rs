//! One call as the signaling task sees it, and the task that runs its media side.
//!
//! The record holds the router's grant: dropping the record (BYE either way, CANCEL, a
//! failed answer, a timeout, a transport error, a panic in the call task seen through
//! its report) releases the capacity exactly once.

use std::time::{Instant, SystemTime};

use dialbridge_conference::ivr::{ConferenceId, Role};

use dialbridge_router::Grant;
use dialbridge_sip::dialog::DialogId;
use dialbridge_sip::rsip;
use dialbridge_sip::sdp::MediaSession;
use dialbridge_sip::transaction::{PeerAddr, ServerKey};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Where a call is in its life.
#[derive(Debug)]
pub(super) enum CallPhase {
    /// 180 sent; answered at `answer_at` unless CANCELled first.
    Ringing,
    /// 200 sent, waiting for the ACK (the layer retransmits the 200).
    Answered,
    /// ACK received: the call is up.
    Confirmed,
}

/// What the signaling task knows of one call.
pub(super) struct Call {
    pub phase: CallPhase,
    /// The initial INVITE (its 200 and 487 are built from it).
    pub invite: Box<rsip::Request>,
    pub invite_key: ServerKey,
    /// Where the INVITE came from: in-dialog requests we send go there too.
    pub peer: PeerAddr,
    /// SDP state of the dialog (o= versions, our answer).
    pub sdp: MediaSession,
    /// The signalling peer's IP when the call's media latches (symmetric RTP): a
    /// re-offer's address is turned into a send target the same way as the first.
    pub latching: Option<std::net::IpAddr>,
    /// Our SDP answer to the initial offer, sent in the 200.
    pub answer_sdp: String,
    /// The router's reservation: released when this record is dropped.
    pub grant: Grant,
    /// Inputs for the call task (DTMF from INFO, hold).
    pub to_task: mpsc::Sender<CallInput>,
    /// The call task, aborted when the call ends.
    pub task: AbortHandle,
    pub arrived: Instant,
    /// For the call detail record: wall-clock times, the calling party, the meeting.
    pub record: CallRecord,
}

/// What the call detail record needs beyond the grant.
#[derive(Debug, Clone)]
pub(super) struct CallRecord {
    pub calling: String,
    pub arrived: SystemTime,
    pub answered: Option<SystemTime>,
    pub joined: Option<(ConferenceId, Role, SystemTime)>,
}

impl Drop for Call {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("phase", &self.phase)
            .field("peer", &self.peer.addr)
            .field("number", &self.grant.number())
            .finish_non_exhaustive()
    }
}

/// What the signaling task tells a call's task.
#[derive(Debug, Clone)]
pub enum CallInput {
    /// A digit from SIP INFO.
    Digit(dialbridge_conference::Digit),
    /// A re-INVITE or UPDATE settled the media: on hold or not, and the address to send
    /// to when it moved.
    Media {
        held: bool,
        remote: Option<std::net::SocketAddr>,
    },
}

/// What a call's task tells the signaling task.
#[derive(Debug)]
pub(crate) enum CallReport {
    /// End the call with BYE carrying this Reason header value.
    HangUp { id: DialogId, reason: String },
    /// A call's record is committed: send what waited for it.
    Recorded(Box<super::in_dialog::AfterRecord>),
    /// The caller is in a meeting's mix (for the call detail record).
    Joined {
        id: DialogId,
        conference: ConferenceId,
        role: Role,
    },
}

/// Starts the media side of a call: its RTP session plays the welcome prompt and the
/// entry IVR runs on what the caller keys. The task reports to `reports` when the call
/// must end; it is aborted when the call ends for any other reason.
pub(super) fn spawn_call_task(
    start: crate::call_flow::CallStart,
    reports: mpsc::Sender<CallReport>,
) -> (mpsc::Sender<CallInput>, AbortHandle) {
    let (tx, rx) = mpsc::channel(32);
    let handle = tokio::spawn(crate::call_flow::run(start, rx, reports));
    (tx, handle.abort_handle())
}
