//! A call's invite session, whichever side placed it: a caller's call the bridge
//! answered ([`UasSession`], with its INVITE's server transaction), or a dial-out the
//! bridge placed and the far end answered ([`UacSession`]). The signaling task drives
//! both through the same few verbs; what only an answering side has (ACK of our 2xx,
//! CANCEL, the ring time) is reached through [`Leg::uas_mut`].

use std::time::Instant;

use dialbridge_sip::rsip;
use dialbridge_sip::session::{Hangup, Output, UacPhase, UacSession, UasPhase, UasSession};
use dialbridge_sip::transaction::ServerKey;

/// One call's invite session.
#[derive(Debug)]
pub(super) enum Leg {
    /// A call we answered, and the server transaction of its INVITE.
    In {
        session: Box<UasSession>,
        invite_key: ServerKey,
    },
    /// A dial-out, answered: only confirmed sessions become calls.
    Out(Box<UacSession>),
}

impl Leg {
    /// The answering side, for what only it has.
    pub fn uas_mut(&mut self) -> Option<&mut UasSession> {
        match self {
            Leg::In { session, .. } => Some(session),
            Leg::Out(_) => None,
        }
    }

    /// The INVITE's server transaction of a call we answered.
    pub fn invite_key(&self) -> Option<&ServerKey> {
        match self {
            Leg::In { invite_key, .. } => Some(invite_key),
            Leg::Out(_) => None,
        }
    }

    /// A call we answered still ringing or not yet answered (its INVITE transaction
    /// still matters).
    pub fn is_unanswered(&self) -> bool {
        match self {
            Leg::In { session, .. } => {
                matches!(
                    session.phase(),
                    UasPhase::Proceeding | UasPhase::Ringing { .. }
                )
            }
            Leg::Out(_) => false,
        }
    }

    /// Over: a BYE came or went.
    pub fn is_terminated(&self) -> bool {
        match self {
            Leg::In { session, .. } => session.phase() == UasPhase::Terminated,
            Leg::Out(session) => session.phase() == UacPhase::Terminated,
        }
    }

    /// A request from the peer in the dialog, and its response (`None` for an ACK).
    pub fn handle_request(
        &mut self,
        request: &rsip::Request,
        now: Instant,
    ) -> Option<rsip::Response> {
        match self {
            Leg::In { session, .. } => session.handle_request(request, now),
            Leg::Out(session) => session.handle_request(request, now),
        }
    }

    /// The peer's RFC 3326 Reason, when it hung up with one.
    pub fn remote_reason(&self) -> Option<&str> {
        match self {
            Leg::In { session, .. } => session.remote_reason(),
            Leg::Out(session) => session.remote_reason(),
        }
    }

    /// A final response to one of our in-dialog requests.
    pub fn handle_response(&mut self, response: &rsip::Response, now: Instant) {
        match self {
            Leg::In { session, .. } => session.handle_response(response, now),
            Leg::Out(session) => session.handle_response(response, now),
        }
    }

    /// One of our in-dialog requests got no answer.
    pub fn handle_request_timeout(&mut self) {
        match self {
            Leg::In { session, .. } => session.handle_request_timeout(),
            Leg::Out(session) => session.handle_request_timeout(),
        }
    }

    /// The next deadline (ring time, session timer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Leg::In { session, .. } => session.poll_timeout(),
            Leg::Out(session) => session.poll_timeout(),
        }
    }

    /// Fires what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Leg::In { session, .. } => session.handle_timeout(now),
            Leg::Out(session) => session.handle_timeout(now),
        }
    }

    /// What to send and what happened, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        match self {
            Leg::In { session, .. } => session.poll_output(),
            Leg::Out(session) => session.poll_output(),
        }
    }

    /// Ends the call from our side with `reason`: a final response of `status` while a
    /// call we answer is unanswered, else BYE.
    pub fn hang_up(&mut self, status: u16, reason: &str, now: Instant) -> Option<Hangup> {
        match self {
            Leg::In { session, .. } => session.hang_up_with(status, reason, now),
            Leg::Out(session) => session.hang_up(reason, now).map(Hangup::Bye),
        }
    }
}
