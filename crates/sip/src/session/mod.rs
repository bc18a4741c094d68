//! Invite sessions (RFC 3261 §13–15): a dialog, its offer/answer (RFC 3264) and its
//! session timer (RFC 4028) as one value the transaction user drives.
//!
//! [`UasSession`] is a call the bridge answers: ring, answer (now or when its time comes),
//! ACK or no ACK, CANCEL, re-INVITE and UPDATE (hold, resume, a new address, a bare
//! refresh), BYE either way with an RFC 3326 Reason, our own refreshes and their
//! failure. Like the transactions it does no I/O and reads no clock: requests, responses
//! and `now` come in through `handle_*`; what to send and what happened come out of
//! [`UasSession::poll_output`], the next deadline out of `poll_timeout`. The transaction
//! layer beneath it stays the TU's: the session never retransmits.

mod uas;

pub use uas::{Hangup, UasPhase, UasSession, refusal};

use std::net::SocketAddr;

use rsip::{Request, Response};

/// How a session ended, or why it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The peer sent BYE ([`UasSession::remote_reason`] has its Reason header, if any).
    RemoteBye,
    /// The caller cancelled before the answer (§9.2).
    Cancelled,
    /// Our 2xx never got its ACK (§13.3.1.4).
    NoAck,
    /// No session refresh came in time (RFC 4028 §10).
    Expired,
    /// A 481 or 408 to one of our in-dialog requests, or no answer at all (§12.2.1.2).
    PeerGone,
}

/// What happened in a session, for the TU to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Our 2xx to the INVITE went out (now or when the ring time was over).
    Answered,
    /// The ACK came: the call is up.
    Confirmed,
    /// An offer in the dialog changed the media: on hold or not, and where the peer now
    /// wants RTP and RTCP (`None` for a `c=0.0.0.0` hold).
    MediaChanged {
        /// RFC 3264 §8.4: the peer wants none of our media.
        hold: bool,
        /// The peer's RTP address, unless it is unspecified.
        remote_rtp: Option<SocketAddr>,
        /// The peer's RTCP address, unless it is unspecified.
        remote_rtcp: Option<SocketAddr>,
    },
    /// The session must end from our side ([`UasSession::hang_up`]): no ACK came, or the
    /// session timer expired.
    MustEnd(SessionEnd),
    /// The peer ended the session, or is gone: nothing more is owed but the response
    /// already given.
    Ended(SessionEnd),
}

/// What a session wants done.
#[derive(Debug, Clone)]
pub enum Output {
    /// A response to the INVITE's server transaction (the 200 when the ring time is
    /// over).
    RespondInvite(Response),
    /// A request of ours (a session refresh) for a new client transaction.
    Request(Request),
    /// The ACK for a 2xx to our re-INVITE, sent outside any transaction (§13.2.2.4).
    Ack(Request),
    /// Something the TU acts on.
    Event(SessionEvent),
}

#[cfg(test)]
mod tests;
