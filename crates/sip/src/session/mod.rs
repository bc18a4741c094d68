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
//!
//! [`UacSession`] is a call we place, in the same style: the INVITE with our offer (and
//! again with credentials after a 401/407), the 2xx ACKed and its answer read, CANCEL
//! while it rings and BYE once answered (each with a Reason), the peer's BYE and
//! offers (hold, or none: ours goes in the 200 and the answer comes in the ACK), and
//! requests of ours with a body (INFO).

mod uac;
mod uas;

pub use uac::{UacPhase, UacSession};
pub use uas::{Hangup, UasPhase, UasSession, refusal};

use std::net::SocketAddr;

use rsip::{Method, Request, Response};

use crate::sdp::{MediaSession, Negotiated, SessionDescription};

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
    /// Our call was refused (3xx–6xx, or no answer to the INVITE at all: 408).
    Refused(u16),
    /// The answer's SDP does not fit our offer: we ACKed and sent BYE (§13.2.2.4).
    BadAnswer,
}

/// What happened in a session, for the TU to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Our 2xx to the INVITE went out (now or when the ring time was over); on the
    /// calling side, the 2xx came.
    Answered,
    /// The calling side's INVITE got a provisional answer (180, 183...).
    Progress(u16),
    /// The calling side's INVITE was challenged (401/407): answer with credentials in a
    /// new INVITE ([`UacSession::invite`]).
    Challenged(Box<Response>),
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

/// An offer inside a dialog (re-INVITE or UPDATE), either side: the status, reason,
/// SDP of our answer and what the answer settled. A re-INVITE without an offer gets
/// ours in the 200 and its answer comes in the ACK (RFC 3261 §14.2); an UPDATE without
/// one is a bare refresh whose 200 carries no SDP (RFC 3311 §5.2). A refused offer
/// leaves the session as it was.
fn answer_offer(
    media: Option<&mut MediaSession>,
    method: Method,
    offer: Option<Vec<u8>>,
) -> (u16, Option<String>, Option<String>, Option<Negotiated>) {
    let Some(media) = media else {
        return (488, Some("no media in this session".into()), None, None);
    };
    let Some(offer) = offer else {
        let ours = (method == Method::Invite).then(|| media.offer());
        return (200, None, ours, None);
    };
    match SessionDescription::parse_bytes(&offer).and_then(|o| media.handle_offer(&o)) {
        Ok(answer) => (200, None, Some(answer.sdp), Some(answer.media)),
        Err(e) => (e.status_code(), Some(e.to_string()), None, None),
    }
}

/// A request of ours in a confirmed dialog with `body` (Content-Type and bytes), such
/// as INFO (RFC 6086), for either side; `None` for the methods a session sends itself
/// (INVITE, UPDATE, BYE, ACK, CANCEL).
fn own_request(
    dialog: &mut crate::dialog::Dialog,
    method: Method,
    body: Option<(&str, Vec<u8>)>,
    now: std::time::Instant,
) -> Option<Request> {
    if matches!(
        method,
        Method::Invite | Method::Update | Method::Bye | Method::Ack | Method::Cancel
    ) {
        return None;
    }
    let mut request = dialog.make_request(method, now);
    if let Some((content_type, bytes)) = body {
        crate::message::fields::set_body(
            &mut request.headers,
            &mut request.body,
            content_type,
            bytes,
        );
    }
    Some(request)
}

/// What an offer or answer in the dialog changed, for the TU.
fn media_changed(negotiated: &Negotiated) -> SessionEvent {
    let specified = |a: SocketAddr| (!a.ip().is_unspecified()).then_some(a);
    SessionEvent::MediaChanged {
        hold: negotiated.hold,
        remote_rtp: specified(negotiated.remote_rtp),
        remote_rtcp: specified(negotiated.remote_rtcp),
    }
}

/// `response` carrying `sdp`, if any.
fn with_sdp(mut response: Response, sdp: Option<String>) -> Response {
    if let Some(sdp) = sdp {
        crate::message::fields::set_body(
            &mut response.headers,
            &mut response.body,
            "application/sdp",
            sdp.into_bytes(),
        );
    }
    response
}

/// The first Reason header of a request (RFC 3326).
fn reason_header(request: &Request) -> Option<String> {
    request.headers.iter().find_map(|h| match h {
        rsip::Header::Other(name, value) if name.eq_ignore_ascii_case("reason") => {
            Some(value.clone())
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod uac_tests;
