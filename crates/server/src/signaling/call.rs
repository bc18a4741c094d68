//! One call as the signaling task holds it: its invite session, the router's grant, its
//! media task and what its detail record needs.
//!
//! Dropping a [`Call`] (BYE either way, CANCEL, a failed answer, a timeout, a transport
//! error, a panic in the call task seen through its report) releases the grant's capacity
//! exactly once and stops its media task.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use dialbridge_conference::ivr::{ConferenceId, Role};
use dialbridge_router::Grant;
use dialbridge_sip::session::UasSession;
use dialbridge_sip::transaction::{PeerAddr, ServerKey};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::call_flow::CallInput;

/// What the signaling task knows of one call.
pub(super) struct Call {
    /// The invite session: dialog, offer/answer, session timer, answer time.
    pub session: UasSession,
    pub invite_key: ServerKey,
    /// Where the INVITE came from: in-dialog requests we send go there too.
    pub peer: PeerAddr,
    /// The signalling peer's IP when the call's media latches (symmetric RTP): a
    /// re-offer's address is turned into a send target the same way as the first.
    pub latching: Option<IpAddr>,
    /// The router's reservation: released when this record is dropped.
    pub grant: Grant,
    /// Inputs for the call task (DTMF from INFO, hold).
    pub to_task: mpsc::Sender<CallInput>,
    /// The call task, aborted when the call ends.
    pub task: AbortHandle,
    pub arrived: Instant,
    /// The session deadline this call is filed under in the signaling task's timers.
    pub armed: Option<Instant>,
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
            .field("phase", &self.session.phase())
            .field("peer", &self.peer.addr)
            .field("number", &self.grant.number())
            .finish_non_exhaustive()
    }
}
