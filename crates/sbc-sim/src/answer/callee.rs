//! One call the called phone takes, as a pure value: the answering side's invite session
//! (`dialbridge_sip::session::UasSession`: dialog, offer/answer, ACK, CANCEL, BYE either
//! way, session refreshes) under a plan — ring, then answer, refuse or never answer;
//! key digits at a time or once the invitation prompt is heard; stay, then BYE.
//!
//! Like the session it stands on it does no I/O and reads no clock: SIP and media
//! events come in through `handle_*` with `now`, what to send and what to do with the
//! media come out of [`Callee::poll_action`], the next deadline out of
//! [`Callee::poll_timeout`]. The answer driver ([`super::driver`]) moves the bytes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialbridge_sip::dialog::{LocalAddress, SessionTimerConfig};
use dialbridge_sip::message::fields::response_for;
use dialbridge_sip::rsip::prelude::*;
use dialbridge_sip::rsip::{Header, Method, Request, Response};
use dialbridge_sip::sdp::LocalMedia;
use dialbridge_sip::session::{Hangup, Output, SessionEnd, SessionEvent, UasPhase, UasSession};
use serde::{Deserialize, Serialize};

use super::PHONE;
use crate::rtp::RemoteMedia;

/// The Reason (RFC 3326) of our BYE once the hold time is over.
const BYE_REASON: &str = "Q.850;cause=16;text=\"Normal call clearing\"";
/// The Reason of our BYE (or 480) when the run's time is up.
const TIMEOUT_REASON: &str = "Q.850;cause=102;text=\"Recovery on timer expiry\"";
/// How long our BYE may wait for its answer.
const BYE_WAIT: Duration = Duration::from_secs(8);

/// What the phone does with an INVITE once it has rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// 200 OK with our SDP answer.
    Accept,
    /// This final status (486 busy, 480 unavailable, 503, 603 declined...).
    Refuse(u16),
    /// Rings until the caller gives up (CANCEL, answered 487).
    Never,
}

impl Answer {
    /// Reads `200`, a final status from 300 to 699, or `none`.
    pub fn parse(text: &str) -> Result<Answer, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("none") {
            return Ok(Answer::Never);
        }
        match text.parse::<u16>() {
            Ok(200) => Ok(Answer::Accept),
            Ok(code @ 300..=699) => Ok(Answer::Refuse(code)),
            _ => Err(format!("{text:?}: 200, a status from 300 to 699, or none")),
        }
    }
}

/// When the phone keys its digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAt {
    /// This long after the answer.
    After(Duration),
    /// Once it has heard a prompt and the silence after it (the invitation, "press 1
    /// to join").
    AfterPrompt,
}

/// How one call goes, from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// 180 Ringing, then this long before the final answer (none when zero).
    pub ring: Duration,
    /// The final answer.
    pub answer: Answer,
    /// Digits to key as RFC 4733 events once answered.
    pub keys: Option<String>,
    /// When.
    pub key_at: KeyAt,
    /// How long we stay after keying (after the answer, without keys), then BYE.
    pub hold: Duration,
}

/// What the driver does for a call.
#[derive(Debug, Clone)]
pub enum Action {
    /// A response to the INVITE's server transaction (180, 200, a refusal, 487).
    RespondInvite(Response),
    /// A request of ours in a new client transaction (BYE, a session refresh).
    Request(Request),
    /// The ACK for a 2xx to our refresh, outside any transaction.
    Ack(Request),
    /// Start sending and receiving RTP.
    StartMedia(RemoteMedia),
    /// The peer moved or held the media (a re-INVITE or UPDATE).
    MoveMedia(RemoteMedia),
    /// Tell us ([`Callee::handle_prompt_heard`]) when a prompt and its silence are heard.
    ListenForPrompt,
    /// Key these digits as RFC 4733 events, then tell us ([`Callee::handle_keys_sent`]);
    /// what is heard from now on is what the checks look at.
    SendKeys(String),
}

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The caller: BYE, or CANCEL before the answer.
    Caller,
    /// We did: BYE after the hold time, or a refusal.
    Answerer,
    /// The run's time was up first.
    Timeout,
    /// The peer stopped answering (481 or 408 to our request, or nothing at all).
    PeerGone,
}

/// What a call did, for its report.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// The INVITE's Call-ID.
    pub call_id: String,
    /// The calling user (From), or its whole URI when it has no user part.
    pub from: String,
    /// The dialled number: the Request-URI's user part.
    pub to: String,
    /// The final status we gave the INVITE (487 once cancelled).
    pub status: Option<u16>,
    /// When the INVITE came.
    pub arrived: Instant,
    /// When our 200 went out.
    pub answered: Option<Instant>,
    /// Whether its ACK came.
    pub confirmed: bool,
    /// What was agreed, once answered.
    pub media: Option<RemoteMedia>,
    /// The digits keyed and when keying began.
    pub keyed: Option<(String, Instant)>,
    /// Whether the media task could send them (`None`: not finished).
    pub keys_sent: Option<bool>,
    /// When it ended and by whom.
    pub ended: Option<(EndedBy, Instant)>,
    /// The Reason header of the caller's BYE or CANCEL (RFC 3326).
    pub reason: Option<String>,
    /// What went wrong on the way.
    pub failures: Vec<String>,
}

/// One call; see the module doc.
#[derive(Debug)]
pub struct Callee {
    session: UasSession,
    plan: Plan,
    remote: Option<RemoteMedia>,
    /// The final answer is due (while ringing).
    decide_at: Option<Instant>,
    key_due: Option<Instant>,
    hold_until: Option<Instant>,
    /// Our BYE is out; its answer is due by then.
    bye_due: Option<Instant>,
    facts: Facts,
    actions: VecDeque<Action>,
}

impl Callee {
    /// The call an INVITE opens, our media at `media` (its port goes in the answer);
    /// it rings or is settled at once. `Err`: the INVITE's refusal (400 naming a
    /// missing header, 488 for an offer without a codec we speak...).
    pub fn new(
        invite: Request,
        local: LocalAddress,
        media: SocketAddr,
        plan: Plan,
        now: Instant,
    ) -> Result<Callee, Box<Response>> {
        let facts = Facts {
            call_id: dialbridge_sip::message::fields::call_id(&invite.headers)
                .unwrap_or_default()
                .to_owned(),
            from: from_user(&invite),
            to: dialled(&invite),
            status: None,
            arrived: now,
            answered: None,
            confirmed: false,
            media: None,
            keyed: None,
            keys_sent: None,
            ended: None,
            reason: None,
            failures: Vec::new(),
        };
        let mut session = UasSession::new(invite, local, &SessionTimerConfig::default(), now)?
            .with_headers(PHONE.identity(), PHONE.headers());
        let refuse = |session: &UasSession, e: dialbridge_sip::sdp::SdpError| {
            Box::new(session.reject(session.invite(), &e.into()))
        };
        // A PSTN phone: G.711 either law and telephone-event, the offerer's order.
        let negotiated = session
            .accept_offer(LocalMedia::g711(media.ip(), media.port(), 0))
            .map_err(|e| refuse(&session, e))?;
        let remote = RemoteMedia::from_negotiated(&negotiated)
            .map_err(|why| Box::new(PHONE.reply(session.invite(), 488, Some(&why))))?;
        let session_id = u64::from(rand::random::<u32>());
        session
            .bind_media(media.ip(), media.port(), session_id)
            .map_err(|e| refuse(&session, e))?;
        let mut callee = Callee {
            session,
            plan,
            remote: Some(remote),
            decide_at: None,
            key_due: None,
            hold_until: None,
            bye_due: None,
            facts,
            actions: VecDeque::new(),
        };
        if callee.plan.ring.is_zero() {
            callee.decide(now);
        } else {
            let at = now + callee.plan.ring;
            let ringing = callee.session.ring(at, now);
            callee.actions.push_back(Action::RespondInvite(ringing));
            callee.decide_at = Some(at);
        }
        callee.pump(now);
        Ok(callee)
    }

    /// What the call did so far.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// The plan it follows.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Something the driver could not do for the call (start its media, send a
    /// request): the call fails.
    pub fn note_failure(&mut self, why: String) {
        self.facts.failures.push(why);
    }

    /// Whether nothing more will happen.
    pub fn is_over(&self) -> bool {
        self.facts.ended.is_some()
    }

    /// The ACK for our 200 (or for a 200 to an offerless re-INVITE).
    pub fn handle_ack(&mut self, ack: &Request, now: Instant) {
        self.session.handle_ack(ack, now);
        self.pump(now);
    }

    /// A CANCEL for the INVITE: its 487 while we ring; `None` once settled.
    pub fn handle_cancel(&mut self, cancel: &Request, now: Instant) -> Option<Response> {
        if self.is_over() {
            return None;
        }
        let response = self.session.handle_cancel(now)?;
        self.facts.status = Some(487);
        self.facts.reason = reason_header(cancel);
        self.decide_at = None;
        self.pump(now);
        Some(response)
    }

    /// A request in the dialog (BYE, re-INVITE, UPDATE, INFO, OPTIONS): its response.
    pub fn handle_request(&mut self, request: &Request, now: Instant) -> Option<Response> {
        let response = self.session.handle_request(request, now);
        if request.method == Method::Bye {
            self.facts.reason = self.session.remote_reason().map(str::to_owned);
        }
        self.pump(now);
        response
    }

    /// A final response to one of our requests (BYE, refresh).
    pub fn handle_response(&mut self, response: &Response, now: Instant) {
        let code = response.status_code.code();
        self.session.handle_response(response, now);
        let method = response.cseq_header().and_then(|c| c.method()).ok();
        if method == Some(Method::Bye) && code >= 200 {
            self.end(EndedBy::Answerer, now);
        }
        self.pump(now);
    }

    /// One of our requests got no answer at all.
    pub fn handle_request_timeout(&mut self, method: Method, now: Instant) {
        if method == Method::Bye {
            self.facts.failures.push("no answer to our BYE".into());
            self.end(EndedBy::PeerGone, now);
            return;
        }
        self.session.handle_request_timeout();
        self.pump(now);
    }

    /// Our 200 was retransmitted to the end without an ACK.
    pub fn handle_no_ack(&mut self, now: Instant) {
        self.session.handle_no_ack();
        self.pump(now);
    }

    /// The media heard a prompt and the silence after it: time to key.
    pub fn handle_prompt_heard(&mut self, now: Instant) {
        if self.plan.key_at == KeyAt::AfterPrompt && self.is_up() {
            self.send_keys(now);
        }
    }

    /// The keys are out (`sent`), or could not be sent: the hold time starts.
    pub fn handle_keys_sent(&mut self, sent: bool, now: Instant) {
        self.facts.keys_sent = Some(sent);
        if !sent {
            self.facts
                .failures
                .push("keys not sent (no telephone-event negotiated?)".into());
        }
        if self.is_up() {
            self.hold_until = Some(now + self.plan.hold);
        }
    }

    /// The run is over before the call (`why`: its time is up, or it was stopped): 480
    /// while ringing, BYE once answered. The call counts as ended now; a BYE's answer
    /// is not waited for.
    pub fn abandon(&mut self, why: &str, now: Instant) {
        if self.is_over() {
            return;
        }
        let phase = match self.session.phase() {
            UasPhase::Proceeding | UasPhase::Ringing { .. } => "ringing",
            UasPhase::Answered => "waiting for the ACK",
            UasPhase::Confirmed => "up",
            UasPhase::Terminated => "hanging up",
        };
        self.facts
            .failures
            .push(format!("still {phase} when {why}"));
        self.end(EndedBy::Timeout, now);
        self.hang_up(TIMEOUT_REASON, now);
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_over() {
            return None;
        }
        let session = match self.session.phase() {
            UasPhase::Answered | UasPhase::Confirmed => self.session.poll_timeout(),
            // While ringing the final answer is ours to time, not the session's.
            _ => None,
        };
        [
            self.decide_at,
            self.key_due,
            self.hold_until,
            self.bye_due,
            session,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Does what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_over() {
            return;
        }
        let due = |at: &mut Option<Instant>| at.take_if(|t| *t <= now).is_some();
        if due(&mut self.decide_at) {
            self.decide(now);
        }
        if due(&mut self.key_due) {
            self.send_keys(now);
        }
        if due(&mut self.hold_until) {
            self.hang_up(BYE_REASON, now);
        }
        if due(&mut self.bye_due) {
            self.facts.failures.push("no answer to our BYE".into());
            self.end(EndedBy::PeerGone, now);
        }
        if matches!(
            self.session.phase(),
            UasPhase::Answered | UasPhase::Confirmed
        ) {
            self.session.handle_timeout(now);
        }
        self.pump(now);
    }

    /// What to do next, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The ring time is over (or there was none): the final answer.
    fn decide(&mut self, now: Instant) {
        match self.plan.answer {
            Answer::Accept => {
                let ok = self.session.answer(now);
                self.facts.status = Some(200);
                self.actions.push_back(Action::RespondInvite(ok));
            }
            Answer::Refuse(code) => {
                // The tag of our 180, so the refusal ends the early dialog it made.
                let tag = self.session.dialog().id().local_tag.clone();
                let mut refusal = response_for(self.session.invite(), code, None, Some(&tag));
                refusal.headers.extend(PHONE.identity());
                self.facts.status = Some(code);
                self.actions.push_back(Action::RespondInvite(refusal));
                self.end(EndedBy::Answerer, now);
            }
            Answer::Never => {}
        }
    }

    /// Carries out what the session says.
    fn pump(&mut self, now: Instant) {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::RespondInvite(r) => self.actions.push_back(Action::RespondInvite(r)),
                Output::Request(r) => self.actions.push_back(Action::Request(r)),
                Output::Ack(a) => self.actions.push_back(Action::Ack(a)),
                Output::Event(event) => self.handle_event(event, now),
            }
        }
    }

    fn handle_event(&mut self, event: SessionEvent, now: Instant) {
        match event {
            SessionEvent::Answered => {
                self.facts.answered = Some(now);
                self.facts.media = self.remote;
                if let Some(remote) = self.remote {
                    self.actions.push_back(Action::StartMedia(remote));
                }
                match (&self.plan.keys, self.plan.key_at) {
                    (None, _) => self.hold_until = Some(now + self.plan.hold),
                    (Some(_), KeyAt::After(after)) => self.key_due = Some(now + after),
                    (Some(_), KeyAt::AfterPrompt) => {
                        self.actions.push_back(Action::ListenForPrompt);
                    }
                }
            }
            SessionEvent::Confirmed => self.facts.confirmed = true,
            SessionEvent::MediaChanged {
                hold, remote_rtp, ..
            } => {
                if let Some(remote) = self.remote.as_mut() {
                    remote.addr = remote_rtp.unwrap_or(remote.addr);
                    remote.send = !hold && remote_rtp.is_some();
                    self.actions.push_back(Action::MoveMedia(*remote));
                }
            }
            SessionEvent::MustEnd(why) => {
                self.facts.failures.push(match why {
                    SessionEnd::NoAck => "no ACK for our 200".into(),
                    SessionEnd::Expired => "the session timer expired".into(),
                    other => format!("the session must end: {other:?}"),
                });
                self.hang_up(BYE_REASON, now);
            }
            SessionEvent::Ended(SessionEnd::RemoteBye | SessionEnd::Cancelled) => {
                self.end(EndedBy::Caller, now);
            }
            SessionEvent::Ended(SessionEnd::PeerGone) => {
                self.facts
                    .failures
                    .push("the caller is gone (481/408)".into());
                self.end(EndedBy::PeerGone, now);
            }
            SessionEvent::Ended(_) => self.end(EndedBy::Answerer, now),
            SessionEvent::Progress(_) | SessionEvent::Challenged(_) => {}
        }
    }

    fn send_keys(&mut self, now: Instant) {
        let Some(keys) = self.plan.keys.clone() else {
            return;
        };
        if self.facts.keyed.is_some() {
            return;
        }
        self.key_due = None;
        self.facts.keyed = Some((keys.clone(), now));
        self.actions.push_back(Action::SendKeys(keys));
    }

    /// BYE once answered (480 while ringing); its answer ends the call.
    fn hang_up(&mut self, reason: &str, now: Instant) {
        self.decide_at = None;
        self.key_due = None;
        self.hold_until = None;
        match self.session.hang_up(reason, now) {
            Some(Hangup::Bye(bye)) => {
                self.actions.push_back(Action::Request(bye));
                self.bye_due = Some(now + BYE_WAIT);
            }
            Some(Hangup::Respond(response)) => {
                self.facts.status = Some(response.status_code.code());
                self.actions.push_back(Action::RespondInvite(response));
                self.end(EndedBy::Answerer, now);
            }
            None => {}
        }
    }

    fn end(&mut self, by: EndedBy, now: Instant) {
        self.facts.ended.get_or_insert((by, now));
        self.decide_at = None;
        self.key_due = None;
        self.hold_until = None;
        self.bye_due = None;
    }

    /// Answered and not over.
    fn is_up(&self) -> bool {
        self.facts.answered.is_some() && !self.is_over()
    }
}

/// The calling user in From, or the whole From URI when it has none.
pub(crate) fn from_user(request: &Request) -> String {
    use dialbridge_sip::message::uri::NameAddr;
    let Ok(from) = request.from_header() else {
        return String::new();
    };
    match NameAddr::parse(from.value()) {
        Ok(a) => a
            .uri
            .user()
            .map_or_else(|| a.uri.to_string(), str::to_owned),
        Err(_) => from.value().to_owned(),
    }
}

/// The dialled number: the Request-URI's user part.
pub(crate) fn dialled(request: &Request) -> String {
    use dialbridge_sip::message::uri::Uri;
    let uri = request.uri.to_string();
    Uri::parse(&uri)
        .ok()
        .and_then(|u| u.user().map(str::to_owned))
        .unwrap_or(uri)
}

/// The first Reason header (RFC 3326).
fn reason_header(request: &Request) -> Option<String> {
    request.headers.iter().find_map(|h| match h {
        Header::Other(name, value) if name.eq_ignore_ascii_case("reason") => Some(value.clone()),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
