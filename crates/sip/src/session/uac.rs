//! The calling side of an invite session: see the module doc of [`super`]. What
//! sbc-sim's calls stand on, and the bridge's dial-outs and its legs to other nodes
//! will.

use std::collections::VecDeque;
use std::time::Instant;

use rsip::{Header, Method, Request, Response};

use super::{Output, SessionEnd, SessionEvent};
use crate::dialog::{Caller, Dialog, DialogEvent, InDialogRequest, SessionTimerConfig};
use crate::message::fields;
use crate::sdp::{LocalMedia, MediaSession, Negotiated, SessionDescription};

/// Where a calling-side session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UacPhase {
    /// INVITE sent, no tagged answer yet.
    Calling,
    /// A tagged provisional answer came (ringing, progress).
    Early,
    /// The 2xx came and was ACKed.
    Confirmed,
    /// Over.
    Terminated,
}

/// A call we place. See the module doc of [`super`].
#[derive(Debug)]
pub struct UacSession {
    caller: Caller,
    dialog: Option<Dialog>,
    phase: UacPhase,
    media: MediaSession,
    timers: SessionTimerConfig,
    /// What the 2xx's SDP settled, once it came.
    negotiated: Option<Negotiated>,
    /// CANCEL sent: a 2xx that crosses it is ACKed and ended with BYE (§9.1).
    cancelling: bool,
    /// Our 200 to an offerless re-INVITE carried our offer: its ACK carries the answer.
    offered_in_2xx: bool,
    remote_reason: Option<String>,
    outputs: VecDeque<Output>,
}

impl UacSession {
    /// The methods the calling side takes in its dialog (its INVITE's Allow, a 405's).
    pub const ALLOW: &'static str = "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS, UPDATE";

    /// A call `caller` will place, offering `local`.
    pub fn new(caller: Caller, local: LocalMedia, timers: SessionTimerConfig) -> Self {
        Self {
            caller,
            dialog: None,
            phase: UacPhase::Calling,
            media: MediaSession::new(local),
            timers,
            negotiated: None,
            cancelling: false,
            offered_in_2xx: false,
            remote_reason: None,
            outputs: VecDeque::new(),
        }
    }

    /// Where the session is.
    pub fn phase(&self) -> UacPhase {
        self.phase
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        self.caller.call_id()
    }

    /// The calling side's INVITE builder (its Request-URI is the digest `uri`).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The dialog, once a tagged answer made one.
    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    /// What the last offer/answer settled (codec, the peer's RTP address, direction...):
    /// the 2xx's answer, then each re-offer answered or answer taken from an ACK.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The Reason header of the peer's BYE (RFC 3326), if it sent one.
    pub fn remote_reason(&self) -> Option<&str> {
        self.remote_reason.as_deref()
    }

    /// The INVITE with our SDP offer and `extra` headers (Authorization after a
    /// challenge, Supported...): same Call-ID and From tag each time, a new CSeq.
    pub fn invite(&mut self, extra: Vec<Header>) -> Request {
        let offer = self.media.offer().into_bytes();
        self.caller.invite(extra, Some(("application/sdp", offer)))
    }

    /// A response to our INVITE (through its client transaction).
    pub fn handle_invite_response(&mut self, response: &Response, now: Instant) {
        let code = response.status_code.code();
        match code {
            100 => {}
            101..=199 => {
                if self.dialog.is_none() {
                    self.dialog = self.caller.dialog_for(response, &self.timers).ok();
                }
                if self.dialog.is_some() && self.phase == UacPhase::Calling {
                    self.phase = UacPhase::Early;
                }
                self.event(SessionEvent::Progress(code));
            }
            200..=299 => self.handle_2xx(response, now),
            401 | 407 if !self.cancelling => {
                self.event(SessionEvent::Challenged(Box::new(response.clone())));
            }
            _ => self.end(SessionEnd::Refused(code)),
        }
    }

    /// A 2xx: ACK it (every retransmission too, §13.2.2.4), then read its answer. A
    /// call cancelled meanwhile, or whose answer does not fit our offer, is ended
    /// with BYE at once.
    fn handle_2xx(&mut self, response: &Response, now: Instant) {
        let same_dialog = self
            .dialog
            .as_ref()
            .is_some_and(|d| fields::to_tag(&response.headers) == Some(d.id().remote_tag.as_str()));
        if !same_dialog {
            match self.caller.dialog_for(response, &self.timers) {
                Ok(dialog) => self.dialog = Some(dialog),
                Err(_) => return self.end(SessionEnd::Refused(502)),
            }
        }
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        dialog.handle_invite_response(response);
        self.outputs
            .push_back(Output::Ack(dialog.make_ack_for(self.caller.cseq())));
        if self.phase == UacPhase::Confirmed {
            return; // a retransmission: ACKed again, nothing new
        }
        let answer = SessionDescription::parse_bytes(&response.body)
            .and_then(|sdp| self.media.handle_answer(&sdp));
        match answer {
            Ok(negotiated) if !self.cancelling => {
                self.negotiated = Some(negotiated);
                self.phase = UacPhase::Confirmed;
                self.event(SessionEvent::Answered);
            }
            Ok(_) => {
                self.bye("SIP;cause=487;text=\"cancelled\"", now);
                self.end(SessionEnd::Cancelled);
            }
            Err(_) => {
                self.bye("SIP;cause=488;text=\"answer does not fit the offer\"", now);
                self.end(SessionEnd::BadAnswer);
            }
        }
    }

    /// Ends the call from our side with `reason` (RFC 3326): CANCEL while it rings (the
    /// INVITE's 487 then ends the session), BYE once answered, nothing when over.
    pub fn hang_up(&mut self, reason: &str, now: Instant) -> Option<Request> {
        match self.phase {
            UacPhase::Calling | UacPhase::Early if !self.cancelling => {
                self.cancelling = true;
                let mut cancel = self.caller.cancel()?;
                cancel
                    .headers
                    .push(Header::Other("Reason".into(), reason.into()));
                Some(cancel)
            }
            UacPhase::Confirmed => {
                let bye = self.make_bye(reason, now);
                self.phase = UacPhase::Terminated;
                bye
            }
            _ => None,
        }
    }

    /// A request from the peer in the dialog and the response to send: BYE ends the
    /// session; a re-INVITE or UPDATE is an offer answered like the answering side's
    /// (a re-INVITE without one gets ours, answered in its ACK); INFO and OPTIONS get
    /// 200 (an INFO's body is the TU's to read). An ACK is never answered: it goes to
    /// [`Self::handle_ack`] and this gives `None`.
    pub fn handle_request(&mut self, request: &Request, now: Instant) -> Option<Response> {
        if request.method == Method::Ack {
            self.handle_ack(request, now);
            return None;
        }
        let Some(dialog) = self.dialog.as_mut() else {
            return Some(fields::response_for(request, 481, None, None));
        };
        let what = match dialog.handle_request(request, now) {
            Ok(what) => what,
            Err(e) => return Some(super::refusal(request, &e, self.timers.min_se)),
        };
        let (status, reason, sdp) = match what {
            InDialogRequest::Bye => {
                self.remote_reason = super::reason_header(request);
                self.end(SessionEnd::RemoteBye);
                (200, None, None)
            }
            InDialogRequest::ReInvite { offer } | InDialogRequest::Update { offer } => {
                let offerless = offer.is_none();
                let (status, reason, sdp, negotiated) =
                    super::answer_offer(Some(&mut self.media), request.method, offer);
                if let Some(negotiated) = negotiated {
                    self.event(super::media_changed(&negotiated));
                    self.negotiated = Some(negotiated);
                }
                self.offered_in_2xx = offerless && sdp.is_some();
                (status, reason, sdp)
            }
            InDialogRequest::Other(Method::Options | Method::Info) => (200, None, None),
            InDialogRequest::Ack { .. } | InDialogRequest::Other(_) => (405, None, None),
        };
        let Some(dialog) = self.dialog.as_mut() else {
            return Some(fields::response_for(request, 481, None, None));
        };
        let mut response = dialog.make_response(request, status, now);
        if let Some(reason) = reason {
            response.status_code = fields::status_code(status, Some(&reason));
        }
        if status == 405 {
            // §21.4.6: a 405 lists what we take.
            response
                .headers
                .push(Header::Other("Allow".into(), Self::ALLOW.into()));
        }
        Some(super::with_sdp(response, sdp))
    }

    /// The ACK for our 2xx to the peer's re-INVITE (the transaction layer hands it over
    /// outside any transaction). When that 2xx carried our offer the ACK carries the
    /// answer (§14.2): taken, it may change the media; missing or unfit, the session
    /// must end ([`SessionEnd::BadAnswer`], §13.3.1.4).
    pub fn handle_ack(&mut self, ack: &Request, now: Instant) {
        if let Some(dialog) = self.dialog.as_mut() {
            let _ = dialog.handle_request(ack, now);
        }
        if !std::mem::take(&mut self.offered_in_2xx) || self.phase == UacPhase::Terminated {
            return;
        }
        let answer = SessionDescription::parse_bytes(&ack.body)
            .and_then(|sdp| self.media.handle_answer(&sdp));
        match answer {
            Ok(negotiated) => {
                self.event(super::media_changed(&negotiated));
                self.negotiated = Some(negotiated);
            }
            Err(_) => self.event(SessionEvent::MustEnd(SessionEnd::BadAnswer)),
        }
    }

    /// A request of ours in the confirmed dialog with `body` (its Content-Type and
    /// bytes), such as INFO with `application/dtmf-relay` keys (RFC 6086); `None`
    /// before the answer, once over, and for the methods the session sends itself
    /// (INVITE, UPDATE, BYE, ACK, CANCEL).
    pub fn request(
        &mut self,
        method: Method,
        body: Option<(&str, Vec<u8>)>,
        now: Instant,
    ) -> Option<Request> {
        if self.phase != UacPhase::Confirmed {
            return None;
        }
        super::own_request(self.dialog.as_mut()?, method, body, now)
    }

    /// A final response to one of our in-dialog requests: 481 or 408 means the peer is
    /// gone.
    pub fn handle_response(&mut self, response: &Response, now: Instant) {
        let code = response.status_code.code();
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.handle_response(response, now);
        }
        if (code == 481 || code == 408) && self.phase != UacPhase::Terminated {
            self.end(SessionEnd::PeerGone);
        }
    }

    /// One of our in-dialog requests (BYE, INFO, a refresh) got no answer at all: the
    /// peer is gone (§12.2.1.2).
    pub fn handle_request_timeout(&mut self) {
        if self.phase != UacPhase::Terminated {
            self.end(SessionEnd::PeerGone);
        }
    }

    /// The next deadline: the session timer's (RFC 4028), once answered.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            UacPhase::Confirmed => self.dialog.as_ref()?.poll_timeout(),
            _ => None,
        }
    }

    /// Fires the session timer: a refresh is an UPDATE without a body (RFC 4028 §7.4:
    /// no new offer, so no ACK and no media change), its expiry ends the session.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase != UacPhase::Confirmed {
            return;
        }
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        match dialog.handle_timeout(now) {
            Some(DialogEvent::SendRefresh) => {
                let update = dialog.make_request(Method::Update, now);
                self.outputs.push_back(Output::Request(update));
            }
            Some(DialogEvent::SessionExpired) => {
                self.event(SessionEvent::MustEnd(SessionEnd::Expired));
            }
            None => {}
        }
    }

    /// Our INVITE got no final answer at all (Timer B): 408.
    pub fn handle_invite_timeout(&mut self) {
        if matches!(self.phase, UacPhase::Calling | UacPhase::Early) {
            self.end(SessionEnd::Refused(408));
        }
    }

    /// What to send, and what happened, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn make_bye(&mut self, reason: &str, now: Instant) -> Option<Request> {
        let dialog = self.dialog.as_mut()?;
        let mut bye = dialog.make_request(Method::Bye, now);
        bye.headers
            .push(Header::Other("Reason".into(), reason.into()));
        Some(bye)
    }

    fn bye(&mut self, reason: &str, now: Instant) {
        if let Some(bye) = self.make_bye(reason, now) {
            self.outputs.push_back(Output::Request(bye));
        }
    }

    fn event(&mut self, event: SessionEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn end(&mut self, how: SessionEnd) {
        if self.phase != UacPhase::Terminated {
            self.phase = UacPhase::Terminated;
            self.event(SessionEvent::Ended(how));
        }
    }
}
