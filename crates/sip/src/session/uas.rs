//! The answering side of an invite session: see the module doc of [`super`].

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Instant;

use rsip::prelude::*;
use rsip::{Header, Method, Request, Response};

use super::{Output, SessionEnd, SessionEvent};
use crate::Error;
use crate::dialog::session_timer::interval_too_small;
use crate::dialog::{
    Dialog, DialogEvent, DialogState, InDialogRequest, LocalAddress, SessionTimerConfig,
};
use crate::message::fields::{self, response_for, set_body};
use crate::sdp::{LocalMedia, MediaSession, Negotiated, SdpError, SessionDescription};

/// Where an answered-side session is in its life.
///
/// ```text
///  Proceeding --ring--> Ringing --answer_at--> Answered --ACK--> Confirmed
///       |                  |  \__CANCEL/hang_up__           |         |
///       +--answer----------+--------------------> Answered   |   BYE, 481/408,
///       |                                                    |   hang_up
///       +--refusal / CANCEL / hang_up--> Terminated <--------+---------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasPhase {
    /// INVITE taken, nothing but 100 sent.
    Proceeding,
    /// 180 sent; the 200 goes at `answer_at` unless the call ends first.
    Ringing {
        /// When the 200 is due.
        answer_at: Instant,
    },
    /// 200 sent, waiting for the ACK (the transaction layer retransmits the 200).
    Answered,
    /// ACK received: the call is up.
    Confirmed,
    /// Over.
    Terminated,
}

/// How the TU ends a session from our side ([`UasSession::hang_up`]).
#[derive(Debug, Clone)]
pub enum Hangup {
    /// Not answered yet: this final response (480 with the Reason) goes to the INVITE.
    Respond(Response),
    /// Answered: this BYE (with the Reason) goes in a new client transaction.
    Bye(Request),
}

/// A call the bridge answers. See the module doc of [`super`].
#[derive(Debug)]
pub struct UasSession {
    dialog: Dialog,
    invite: Request,
    phase: UasPhase,
    /// SDP state, once the offer is accepted ([`UasSession::accept_offer`]).
    media: Option<MediaSession>,
    /// The INVITE's offer, read once by [`UasSession::accept_offer`] and answered again
    /// by [`UasSession::bind_media`].
    offer: Option<SessionDescription>,
    /// The answer our 200 carries, once the media is bound.
    answer_sdp: Option<String>,
    /// On every response of the session (Server).
    identity: Vec<Header>,
    /// On a 2xx to INVITE, 200 to OPTIONS and 405 (Allow, Supported, Accept).
    capabilities: Vec<Header>,
    min_se: std::time::Duration,
    remote_reason: Option<String>,
    /// Our 200 to an offerless re-INVITE carried our offer: its ACK carries the answer.
    offered_in_2xx: bool,
    outputs: VecDeque<Output>,
}

impl UasSession {
    /// The session an initial INVITE opens, or the INVITE's refusal when it cannot open
    /// one (400 naming the missing header, 422 with Min-SE).
    pub fn new(
        invite: Request,
        local: LocalAddress,
        timers: &SessionTimerConfig,
        now: Instant,
    ) -> Result<Self, Box<Response>> {
        let dialog = Dialog::new_uas(&invite, local, timers, now)
            .map_err(|e| Box::new(refusal(&invite, &e, timers.min_se)))?;
        Ok(Self {
            dialog,
            invite,
            phase: UasPhase::Proceeding,
            media: None,
            offer: None,
            answer_sdp: None,
            identity: Vec::new(),
            capabilities: Vec::new(),
            min_se: timers.min_se,
            remote_reason: None,
            offered_in_2xx: false,
            outputs: VecDeque::new(),
        })
    }

    /// Headers every response of the session carries (Server), and those a 2xx to INVITE,
    /// a 200 to OPTIONS and a 405 carry (Allow, Supported, Accept).
    pub fn with_headers(mut self, identity: Vec<Header>, capabilities: Vec<Header>) -> Self {
        self.identity = identity;
        self.capabilities = capabilities;
        self
    }

    /// The dialog.
    pub fn dialog(&self) -> &Dialog {
        &self.dialog
    }

    /// The initial INVITE.
    pub fn invite(&self) -> &Request {
        &self.invite
    }

    /// Where the session is.
    pub fn phase(&self) -> UasPhase {
        self.phase
    }

    /// The Reason header of the peer's BYE (RFC 3326), if it sent one.
    pub fn remote_reason(&self) -> Option<&str> {
        self.remote_reason.as_deref()
    }

    /// The INVITE's SDP offer. An INVITE without one is refused: the offer would be ours
    /// to make in the 200 and the trunks we serve never ask for that.
    pub fn offer(&self) -> Result<SessionDescription, SdpError> {
        if self.invite.body.is_empty() {
            return Err(SdpError::NotAcceptable("SDP offer required"));
        }
        SessionDescription::parse_bytes(&self.invite.body)
    }

    /// Takes the offer with `local` (whose port may still be 0): what the call will use.
    /// Nothing is written yet; [`Self::bind_media`] writes the answer once the port is
    /// known, so a call without a common codec costs no socket.
    pub fn accept_offer(&mut self, local: LocalMedia) -> Result<Negotiated, SdpError> {
        let offer = self.offer()?;
        let mut media = MediaSession::new(local);
        let answer = media.handle_offer(&offer)?;
        self.offer = Some(offer);
        // From now on the session speaks only the codec chosen: the media cannot change
        // codec mid-call, so a re-offer without it gets 488 and leaves the call as it was.
        let mut local = media.local().clone();
        local.codecs = vec![answer.media.codec];
        self.media = Some(MediaSession::new(local));
        Ok(answer.media)
    }

    /// Our media is at `address:port` (and its session id is `session_id`): writes the
    /// answer the 200 will carry.
    pub fn bind_media(
        &mut self,
        address: IpAddr,
        port: u16,
        session_id: u64,
    ) -> Result<(), SdpError> {
        let (Some(offer), Some(media)) = (self.offer.take(), self.media.as_ref()) else {
            return Err(SdpError::NotAcceptable("no offer accepted"));
        };
        let mut local = media.local().clone();
        local.address = address;
        local.rtp_port = port;
        local.session_id = session_id;
        local.session_version = session_id;
        let mut media = MediaSession::new(local);
        self.answer_sdp = Some(media.handle_offer(&offer)?.sdp);
        self.media = Some(media);
        Ok(())
    }

    /// Sends 180 and answers at `answer_at` (out of [`Self::poll_output`]).
    pub fn ring(&mut self, answer_at: Instant, now: Instant) -> Response {
        self.phase = UasPhase::Ringing { answer_at };
        self.respond_invite(180, now)
    }

    /// The 200 with our answer, now. The transaction layer retransmits it until the ACK.
    pub fn answer(&mut self, now: Instant) -> Response {
        let mut response = self.respond_invite(200, now);
        response.headers.extend(self.capabilities.clone());
        if let Some(sdp) = &self.answer_sdp {
            set_body(
                &mut response.headers,
                &mut response.body,
                "application/sdp",
                sdp.clone().into_bytes(),
            );
        }
        self.phase = UasPhase::Answered;
        self.outputs
            .push_back(Output::Event(SessionEvent::Answered));
        response
    }

    /// The ACK for a 2xx of ours: the first confirms the call; the ACK of an offerless
    /// re-INVITE carries the answer to the offer our 200 made (§14.2), which may move the
    /// media, and without a usable one the call must end.
    pub fn handle_ack(&mut self, ack: &Request, now: Instant) {
        let _ = self.dialog.handle_request(ack, now);
        if self.phase == UasPhase::Answered {
            self.phase = UasPhase::Confirmed;
            self.outputs
                .push_back(Output::Event(SessionEvent::Confirmed));
            return;
        }
        if !std::mem::take(&mut self.offered_in_2xx) || self.phase != UasPhase::Confirmed {
            return;
        }
        let Some(media) = self.media.as_ref() else {
            return;
        };
        let event = match SessionDescription::parse_bytes(&ack.body)
            .and_then(|sdp| media.handle_answer(&sdp))
        {
            Ok(negotiated) => super::media_changed(&negotiated),
            Err(_) => SessionEvent::MustEnd(SessionEnd::BadAnswer),
        };
        self.outputs.push_back(Output::Event(event));
    }

    /// Our 2xx was retransmitted to the end without an ACK (§13.3.1.4): the TU ends the
    /// call with BYE.
    pub fn handle_no_ack(&mut self) {
        if self.phase == UasPhase::Answered {
            self.outputs
                .push_back(Output::Event(SessionEvent::MustEnd(SessionEnd::NoAck)));
        }
    }

    /// A CANCEL for the INVITE: the 487 for it while it is unanswered; `None` once
    /// answered (the CANCEL changes nothing, §9.2).
    pub fn handle_cancel(&mut self, now: Instant) -> Option<Response> {
        if !matches!(self.phase, UasPhase::Proceeding | UasPhase::Ringing { .. }) {
            return None;
        }
        let response = self.respond_invite(487, now);
        self.end(SessionEnd::Cancelled);
        Some(response)
    }

    /// A request in the dialog other than CANCEL: the response to send. A BYE's 200
    /// ends the session ([`SessionEvent::Ended`]); an offer answered may change the media
    /// ([`SessionEvent::MediaChanged`]). An INFO is answered 200: its body is the TU's to
    /// read (and to refuse with [`Self::reject`] before calling this). An ACK is never
    /// answered: it goes to [`Self::handle_ack`] and `None` comes back.
    pub fn handle_request(&mut self, request: &Request, now: Instant) -> Option<Response> {
        if request.method == Method::Ack {
            self.handle_ack(request, now);
            return None;
        }
        let what = match self.dialog.handle_request(request, now) {
            Ok(what) => what,
            Err(e) => return Some(self.reject(request, &e)),
        };
        Some(match what {
            InDialogRequest::Bye => {
                self.remote_reason = super::reason_header(request);
                let response = self.respond(request, 200, None, now);
                self.end(SessionEnd::RemoteBye);
                response
            }
            InDialogRequest::ReInvite { offer } | InDialogRequest::Update { offer } => {
                self.handle_offer_in_dialog(request, offer, now)
            }
            InDialogRequest::Other(Method::Options) => {
                let mut response = self.respond(request, 200, None, now);
                response.headers.extend(self.capabilities.clone());
                response
            }
            InDialogRequest::Other(Method::Info) => self.respond(request, 200, None, now),
            InDialogRequest::Ack { .. } | InDialogRequest::Other(_) => {
                let mut response = self.respond(request, 405, None, now);
                response.headers.extend(self.capabilities.clone());
                response
            }
        })
    }

    /// The answer to a request the session cannot take, for `error` (400, 422 with
    /// Min-SE, 481, 500).
    pub fn reject(&self, request: &Request, error: &Error) -> Response {
        let mut response = refusal(request, error, self.min_se);
        response.headers.extend(self.identity.clone());
        response
    }

    /// Ends the session from our side with `reason` (an RFC 3326 Reason header value):
    /// 480 while unanswered, BYE once answered, nothing when already over.
    pub fn hang_up(&mut self, reason: &str, now: Instant) -> Option<Hangup> {
        self.hang_up_with(480, reason, now)
    }

    /// [`Self::hang_up`], with `status` (a 4xx-6xx) as the final answer while unanswered:
    /// a refusal decided after the ringing started says what it is (403, 503...).
    pub fn hang_up_with(&mut self, status: u16, reason: &str, now: Instant) -> Option<Hangup> {
        let status = if (400..700).contains(&status) {
            status
        } else {
            480
        };
        let reason_header = || Header::Other("Reason".into(), reason.into());
        let hangup = match self.phase {
            UasPhase::Terminated => return None,
            UasPhase::Proceeding | UasPhase::Ringing { .. } => {
                let mut response = self.respond_invite(status, now);
                response.headers.push(reason_header());
                Hangup::Respond(response)
            }
            UasPhase::Answered | UasPhase::Confirmed => {
                let mut bye = self.dialog.make_request(Method::Bye, now);
                bye.headers.push(reason_header());
                Hangup::Bye(bye)
            }
        };
        self.phase = UasPhase::Terminated;
        Some(hangup)
    }

    /// A request of ours in the confirmed dialog with `body` (Content-Type and bytes),
    /// such as INFO (RFC 6086); `None` before the ACK, once over, and for the methods the
    /// session sends itself (INVITE, UPDATE, BYE, ACK, CANCEL).
    pub fn request(
        &mut self,
        method: Method,
        body: Option<(&str, Vec<u8>)>,
        now: Instant,
    ) -> Option<Request> {
        if self.phase != UasPhase::Confirmed {
            return None;
        }
        super::own_request(&mut self.dialog, method, body, now)
    }

    /// A final response to one of our requests (refresh or BYE): the ACK for a 2xx to a
    /// re-INVITE; 481 or 408 means the peer is gone.
    pub fn handle_response(&mut self, response: &Response, now: Instant) {
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        self.dialog.handle_response(response, now);
        let method = response.cseq_header().and_then(|c| c.method()).ok();
        if method == Some(Method::Invite)
            && (200..300).contains(&code)
            && let Ok(ack) = self.dialog.make_ack(response)
        {
            self.outputs.push_back(Output::Ack(ack));
        }
        if (code == 481 || code == 408) && self.phase != UasPhase::Terminated {
            self.end(SessionEnd::PeerGone);
        }
    }

    /// One of our requests got no answer at all: the peer is gone.
    pub fn handle_request_timeout(&mut self) {
        if self.phase != UasPhase::Terminated {
            self.end(SessionEnd::PeerGone);
        }
    }

    /// The next deadline: the answer while ringing, else the session timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            UasPhase::Ringing { answer_at } => Some(answer_at),
            UasPhase::Terminated => None,
            _ => self.dialog.poll_timeout(),
        }
    }

    /// Does what is due at `now`: the answer, a refresh (a re-INVITE with our current
    /// SDP), or [`SessionEvent::MustEnd`] when the session expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let UasPhase::Ringing { answer_at } = self.phase {
            if now >= answer_at {
                let response = self.answer(now);
                self.outputs.push_front(Output::RespondInvite(response));
            }
            return;
        }
        match self.dialog.handle_timeout(now) {
            Some(DialogEvent::SendRefresh) => {
                let mut invite = self.dialog.make_request(Method::Invite, now);
                if let Some(media) = self.media.as_mut() {
                    let offer = media.offer().into_bytes();
                    set_body(
                        &mut invite.headers,
                        &mut invite.body,
                        "application/sdp",
                        offer,
                    );
                }
                self.outputs.push_back(Output::Request(invite));
            }
            Some(DialogEvent::SessionExpired) => self
                .outputs
                .push_back(Output::Event(SessionEvent::MustEnd(SessionEnd::Expired))),
            None => {}
        }
    }

    /// What to send, and what happened, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// A re-INVITE or UPDATE: a new offer (hold, resume, a new address) or a bare
    /// refresh. A re-INVITE before the first ACK gets 491 (§14.2); a refused offer leaves
    /// the session as it was.
    fn handle_offer_in_dialog(
        &mut self,
        request: &Request,
        offer: Option<Vec<u8>>,
        now: Instant,
    ) -> Response {
        if request.method == Method::Invite && self.phase != UasPhase::Confirmed {
            return self.respond(request, 491, None, now);
        }
        let offerless = offer.is_none();
        let (status, reason, sdp, negotiated) =
            super::answer_offer(self.media.as_mut(), request.method, offer);
        self.offered_in_2xx = offerless && request.method == Method::Invite && sdp.is_some();
        if let Some(negotiated) = negotiated {
            self.outputs
                .push_back(Output::Event(super::media_changed(&negotiated)));
        }
        let response = self.respond(request, status, reason.as_deref(), now);
        super::with_sdp(response, sdp)
    }

    /// A response in the dialog (our tag, Contact where due, session timer headers on a
    /// 2xx to INVITE/UPDATE), with the session's identity headers.
    fn respond(
        &mut self,
        request: &Request,
        status: u16,
        reason: Option<&str>,
        now: Instant,
    ) -> Response {
        respond_in(
            &mut self.dialog,
            &self.identity,
            request,
            status,
            reason,
            now,
        )
    }

    /// A response to the initial INVITE (no copy of it is made).
    fn respond_invite(&mut self, status: u16, now: Instant) -> Response {
        respond_in(
            &mut self.dialog,
            &self.identity,
            &self.invite,
            status,
            None,
            now,
        )
    }

    fn end(&mut self, how: SessionEnd) {
        self.phase = UasPhase::Terminated;
        self.outputs
            .push_back(Output::Event(SessionEvent::Ended(how)));
    }
}

/// A response in `dialog` with the `identity` headers and, when given, our reason.
fn respond_in(
    dialog: &mut Dialog,
    identity: &[Header],
    request: &Request,
    status: u16,
    reason: Option<&str>,
    now: Instant,
) -> Response {
    let mut response = dialog.make_response(request, status, now);
    if let Some(reason) = reason {
        response.status_code = fields::status_code(status, Some(reason));
    }
    response.headers.extend(identity.to_vec());
    response
}

/// The answer to a request a session (or the dialog layer) refused for `error`: 481 for
/// no such dialog, 500 for a CSeq out of order, 422 with Min-SE for a session interval
/// too small, 400 naming the fault otherwise.
pub fn refusal(request: &Request, error: &Error, min_se: std::time::Duration) -> Response {
    match error {
        Error::NoSuchDialog => response_for(request, 481, None, None),
        Error::CSeqOutOfOrder { .. } => response_for(request, 500, Some("CSeq out of order"), None),
        Error::SessionIntervalTooSmall { .. } => interval_too_small(request, min_se),
        Error::Sdp(e) => response_for(request, e.status_code(), Some(&e.to_string()), None),
        other => response_for(request, 400, Some(&other.to_string()), None),
    }
}

impl UasSession {
    /// Whether the dialog is still alive (not terminated by either side).
    pub fn is_live(&self) -> bool {
        self.phase != UasPhase::Terminated && self.dialog.state() != DialogState::Terminated
    }
}
