//! One call, start to end: INVITE with an SDP offer (answering a digest challenge when
//! credentials are given), ACK, media, the script, answers to the bridge's re-INVITEs,
//! UPDATEs, INFOs and BYE, our BYE (or CANCEL), then the checks.
//!
//! The RFC 3261 machinery is `dialbridge_sip::transaction::TransactionLayer`, one per
//! call (retransmissions, Timers A/B/E/F, the ACK for a non-2xx, absorbing the bridge's
//! retransmissions); this module is the transaction user. Every wait is bounded: the
//! setup timeout, the script, the hold time and a hard limit derived from them.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dialbridge_media::Codec;
use dialbridge_sip::rsip::headers::UntypedHeader;
use dialbridge_sip::rsip::{Header, Method, Request, Response, SipMessage};
use dialbridge_sip::sdp::{LocalMedia, MediaSession, Negotiated, SessionDescription};
use dialbridge_sip::transaction::{ClientKey, Event, LayerConfig, PeerAddr, ServerKey, TransactionLayer};
use tokio::sync::oneshot;

use crate::audio_check;
use crate::dialog::{Parties, UacDialog, response};
use crate::dtmf::{self, DtmfMode};
use crate::outcome::{CallOutcome, EndedBy, Expect, MediaCounts};
use crate::rtp::{Media, RemoteMedia, Source};
use crate::script::{Script, Step};
use crate::ua::Signaling;

/// How long a BYE or CANCEL may wait for its answer before the call is given up.
const HANGUP_WAIT: Duration = Duration::from_secs(8);
/// Slack added to the planned length of a call for its hard limit.
const SLACK: Duration = Duration::from_secs(30);
/// Pause after each INFO key's answer.
const INFO_GAP: Duration = Duration::from_millis(dtmf::GAP_MS as u64);

/// Everything about one call.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// The dialled number (user part of the Request-URI and To).
    pub to: String,
    /// The calling number or user (user part of From).
    pub from_user: String,
    /// The host part of From (defaults to our source address).
    pub from_host: Option<String>,
    /// Digest credentials (user, password) for a 401/407.
    pub credentials: Option<(String, String)>,
    /// What we send.
    pub source: Source,
    /// How keys are sent.
    pub dtmf: DtmfMode,
    /// What we do once answered.
    pub script: Script,
    /// How long we stay after the script before hanging up.
    pub hold: Duration,
    /// How long we wait for a final response before CANCEL.
    pub setup_timeout: Duration,
    /// Most samples recorded.
    pub record_limit: usize,
    /// What we expect.
    pub expect: Expect,
}

impl CallConfig {
    /// The longest the call may take, end to end.
    pub fn hard_limit(&self) -> Duration {
        let keys = self.script.keys().count() as u32;
        let per_key = Duration::from_millis(u64::from(dtmf::KEY_MS + dtmf::GAP_MS) + 100);
        self.setup_timeout
            .saturating_add(self.script.waits())
            .saturating_add(per_key.saturating_mul(keys))
            .saturating_add(self.hold)
            .saturating_add(SLACK)
    }
}

/// Progress lines, as the call goes (`→ INVITE`, `← 200 OK`...).
pub trait Progress: Sync {
    /// One line.
    fn line(&self, text: &str);
}

/// No progress output (load runs).
#[derive(Debug, Clone, Copy)]
pub struct Quiet;

impl Progress for Quiet {
    fn line(&self, _text: &str) {}
}

/// Places one call over `signaling` and returns its outcome. Never panics on what the
/// bridge sends; ends within [`CallConfig::hard_limit`].
pub async fn run(signaling: &Signaling, config: &CallConfig, progress: &dyn Progress) -> CallOutcome {
    let local = signaling.local_addr();
    let parties = Parties {
        from_user: config.from_user.clone(),
        from_host: config
            .from_host
            .clone()
            .unwrap_or_else(|| local.ip().to_string()),
        to: config.to.clone(),
        bridge: signaling.bridge().to_string(),
        local: local.to_string(),
        transport: signaling.transport(),
    };
    let dialog = UacDialog::new(parties);
    let mut call = Call::new(signaling, config, progress, dialog);
    if let Err(reason) = call.drive(local.ip()).await {
        call.fail(reason);
        call.ended_by.get_or_insert(EndedBy::Error);
    }
    call.finish().await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// INVITE sent, no final response yet.
    Inviting,
    /// CANCEL sent (setup timeout).
    Cancelling,
    /// 2xx received and ACKed: media and script run.
    Established,
    /// BYE sent.
    HangingUp,
    /// Over.
    Done,
}

struct Call<'a> {
    signaling: &'a Signaling,
    config: &'a CallConfig,
    progress: &'a dyn Progress,
    peer: PeerAddr,
    layer: TransactionLayer<PeerAddr>,
    dialog: UacDialog,
    session: Option<MediaSession>,
    socket: Option<tokio::net::UdpSocket>,
    media: Option<Media>,
    phase: Phase,
    started: Instant,
    invite_key: Option<ClientKey>,
    invite_seq: u32,
    challenged: bool,
    answered_at: Option<Instant>,
    phase_deadline: Option<Instant>,
    hard_deadline: Instant,
    script: ScriptRun,
    /// The re-INVITE whose 2xx carried our offer: its ACK carries the answer.
    offered_in_2xx: bool,
    status: Option<(u16, String)>,
    setup: Option<Duration>,
    ended_by: Option<EndedBy>,
    failures: Vec<String>,
}

/// Where the script is.
#[derive(Default)]
struct ScriptRun {
    index: usize,
    wake: Option<Instant>,
    keys_done: Option<oneshot::Receiver<bool>>,
    info_queue: VecDeque<char>,
    info_in_flight: Option<ClientKey>,
    info_next: Option<Instant>,
    /// The step whose completion starts the latency measurement.
    marks_after: Option<usize>,
    hold_started: bool,
}

impl<'a> Call<'a> {
    fn new(
        signaling: &'a Signaling,
        config: &'a CallConfig,
        progress: &'a dyn Progress,
        dialog: UacDialog,
    ) -> Self {
        let now = Instant::now();
        Call {
            signaling,
            config,
            progress,
            peer: signaling.peer(),
            layer: TransactionLayer::new(LayerConfig {
                max_transactions: 64,
                ..LayerConfig::default()
            }),
            dialog,
            session: None,
            socket: None,
            media: None,
            phase: Phase::Inviting,
            started: now,
            invite_key: None,
            invite_seq: 0,
            challenged: false,
            answered_at: None,
            phase_deadline: None,
            hard_deadline: now + config.hard_limit(),
            script: ScriptRun {
                marks_after: config.script.last_keys_step(),
                ..ScriptRun::default()
            },
            offered_in_2xx: false,
            status: None,
            setup: None,
            ended_by: None,
            failures: Vec::new(),
        }
    }

    fn say(&self, text: &str) {
        self.progress.line(text);
    }

    fn fail(&mut self, reason: String) {
        self.say(&format!("✗ {reason}"));
        self.failures.push(reason);
    }

    async fn drive(&mut self, ip: IpAddr) -> Result<(), String> {
        let mut registration = self
            .signaling
            .register(self.dialog.call_id())
            .map_err(|e| e.to_string())?;
        let socket = Media::bind(ip).await.map_err(|e| format!("RTP socket: {e}"))?;
        let rtp_port = socket.local_addr().map_err(|e| e.to_string())?.port();
        self.socket = Some(socket);
        let session_id = u64::from(rand::random::<u32>());
        let mut session = MediaSession::new(LocalMedia::g711(ip, rtp_port, session_id));
        let offer = session.offer();
        self.session = Some(session);
        self.started = Instant::now();
        self.phase_deadline = Some(self.started + self.config.setup_timeout);
        self.send_invite(&offer, None)?;

        loop {
            self.flush();
            while let Some(event) = self.layer.poll_event() {
                self.handle_event(event)?;
                self.flush();
            }
            if self.phase == Phase::Done {
                return Ok(());
            }
            let wake = [
                self.layer.poll_timeout(),
                self.phase_deadline,
                self.script.wake,
                self.script.info_next,
                Some(self.hard_deadline),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.hard_deadline);
            let keys_pending = self.script.keys_done.is_some();
            tokio::select! {
                msg = registration.inbound.recv() => {
                    let now = Instant::now();
                    match msg {
                        Some(SipMessage::Request(r)) => self.layer.handle_request(r, self.peer, now),
                        Some(SipMessage::Response(r)) => self.layer.handle_response(r, now),
                        None => return Err("signaling closed".into()),
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    let now = Instant::now();
                    self.layer.handle_timeout(now);
                    self.on_timers(now)?;
                }
                done = async {
                    match self.script.keys_done.as_mut() {
                        Some(rx) => rx.await.unwrap_or(false),
                        None => std::future::pending().await,
                    }
                }, if keys_pending => {
                    self.script.keys_done = None;
                    if !done {
                        self.fail("keys could not be sent in RTP (no telephone-event negotiated?)".into());
                    }
                    self.step_done();
                    self.advance_script(Instant::now())?;
                }
            }
        }
    }

    fn flush(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            if let Err(e) = self.signaling.send(&t.message) {
                tracing::debug!(error = %e, "send failed");
            }
        }
    }

    fn send_invite(&mut self, sdp: &str, authorization: Option<(&str, &str)>) -> Result<(), String> {
        let invite = self
            .dialog
            .invite(sdp, authorization)
            .map_err(|e| e.to_string())?;
        self.invite_seq = cseq_of(&invite);
        self.say(&format!("→ INVITE {}", invite.uri));
        let key = self
            .layer
            .send_request(invite, self.peer, Instant::now())
            .map_err(|e| e.to_string())?;
        self.invite_key = Some(key);
        Ok(())
    }

    fn on_timers(&mut self, now: Instant) -> Result<(), String> {
        if now >= self.hard_deadline {
            self.fail("hard time limit reached".into());
            self.ended_by.get_or_insert(EndedBy::Timeout);
            self.phase = Phase::Done;
            return Ok(());
        }
        if self.phase_deadline.is_some_and(|d| now >= d) {
            self.phase_deadline = None;
            match self.phase {
                Phase::Inviting => {
                    self.fail(format!("no final response within {:?}", self.config.setup_timeout));
                    self.ended_by = Some(EndedBy::Timeout);
                    self.cancel(now)?;
                }
                Phase::Cancelling | Phase::HangingUp => {
                    self.fail("no answer to our BYE/CANCEL".into());
                    self.phase = Phase::Done;
                }
                Phase::Established | Phase::Done => {}
            }
        }
        if self.phase == Phase::Established {
            if self.script.info_next.is_some_and(|t| now >= t) {
                self.script.info_next = None;
                self.send_next_info(now)?;
            }
            if self.script.wake.is_some_and(|t| now >= t) {
                self.script.wake = None;
                self.step_done();
                self.advance_script(now)?;
            }
        }
        Ok(())
    }

    fn handle_event(&mut self, event: Event<PeerAddr>) -> Result<(), String> {
        let now = Instant::now();
        match event {
            Event::Response { key, response } => self.handle_response(&key, &response, now),
            Event::TimedOut { key } => {
                let method = match &key {
                    dialbridge_sip::transaction::TransactionKey::Client(k) => k.method(),
                    dialbridge_sip::transaction::TransactionKey::Server(k) => k.method(),
                };
                match method {
                    Method::Invite if self.phase == Phase::Inviting => {
                        self.fail("INVITE timed out (Timer B)".into());
                        self.ended_by = Some(EndedBy::Timeout);
                        self.phase = Phase::Done;
                    }
                    Method::Bye | Method::Cancel => {
                        self.fail(format!("{method} timed out"));
                        self.phase = Phase::Done;
                    }
                    Method::Info => {
                        self.fail("INFO timed out".into());
                        self.info_answered(&ClientKey::clone(
                            self.script.info_in_flight.as_ref().ok_or("no INFO")?,
                        ), now)?;
                    }
                    _ => {}
                }
                Ok(())
            }
            Event::NewRequest { key, request, .. } => self.handle_request(&key, &request, now),
            Event::AckFor2xx { request, .. } => {
                if self.offered_in_2xx && !request.body.is_empty() {
                    self.offered_in_2xx = false;
                    self.apply_answer_sdp(&request.body)?;
                }
                Ok(())
            }
            Event::Cancel { invite_key, cancel, .. } => {
                self.say("← CANCEL");
                let _ = self
                    .layer
                    .respond(&invite_key, dialbridge_sip::message::fields::response_for(&cancel, 487, None, None), now);
                Ok(())
            }
            Event::Refused { request, peer, .. } => {
                let reply = dialbridge_sip::message::fields::response_for(&request, 503, None, None);
                self.layer.send_stateless(reply, peer);
                Ok(())
            }
            Event::Terminated { .. } | Event::NoAckFor2xx { .. } => Ok(()),
        }
    }

    fn handle_response(&mut self, key: &ClientKey, resp: &Response, now: Instant) -> Result<(), String> {
        let code = resp.status_code.code();
        let reason = reason_of(resp);
        let method = key.method();
        self.say(&format!("← {code} {reason} ({method})"));
        match method {
            Method::Invite => self.handle_invite_response(key, resp, code, reason, now),
            Method::Bye | Method::Cancel if code >= 200 => {
                if method == Method::Bye || self.phase == Phase::Cancelling && self.status.is_some() {
                    self.phase = Phase::Done;
                }
                Ok(())
            }
            Method::Info if code >= 200 => {
                if code >= 300 {
                    self.fail(format!("INFO refused: {code} {reason}"));
                }
                self.info_answered(key, now)
            }
            _ => Ok(()),
        }
    }

    fn handle_invite_response(
        &mut self,
        key: &ClientKey,
        resp: &Response,
        code: u16,
        reason: String,
        now: Instant,
    ) -> Result<(), String> {
        if code < 200 {
            return Ok(());
        }
        let current = self.invite_key.as_ref() == Some(key);
        if (200..300).contains(&code) {
            // A 2xx (or its retransmission): every one gets an ACK (§13.2.2.4).
            if self.phase == Phase::Inviting || self.phase == Phase::Cancelling {
                self.dialog.handle_2xx(resp);
            }
            let ack = self.dialog.ack(self.invite_seq).map_err(|e| e.to_string())?;
            self.layer.send_stateless(ack, self.peer);
            if self.answered_at.is_some() {
                return Ok(());
            }
            self.say("→ ACK");
            self.answered_at = Some(now);
            self.setup = Some(now.saturating_duration_since(self.started));
            self.status = Some((code, reason));
            if self.phase == Phase::Cancelling {
                // The 2xx crossed our CANCEL: the call exists, end it.
                self.phase = Phase::Established;
                return self.hangup(now);
            }
            self.phase = Phase::Established;
            self.phase_deadline = None;
            self.start_media(&resp.body)?;
            return self.advance_script(now);
        }
        if !current {
            return Ok(());
        }
        if (code == 401 || code == 407) && !self.challenged {
            if let Some((user, password)) = self.config.credentials.clone() {
                self.challenged = true;
                let (ask, answer) = if code == 401 {
                    ("WWW-Authenticate", "Authorization")
                } else {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                };
                let challenge = challenge_of(resp, code).ok_or(format!("{code} without {ask}"))?;
                let cnonce = format!("{:08x}", rand::random::<u32>());
                let value = dialbridge_sip::auth::respond(
                    &challenge,
                    &user,
                    &password,
                    "INVITE",
                    self.dialog.request_uri(),
                    &cnonce,
                    1,
                )
                .map_err(|e| format!("cannot answer the challenge: {e}"))?;
                let offer = self.session.as_mut().map(MediaSession::offer).unwrap_or_default();
                self.say("→ ACK");
                return self.send_invite(&offer, Some((answer, &value)));
            }
        }
        self.say("→ ACK");
        self.status = Some((code, reason));
        self.ended_by.get_or_insert(EndedBy::Refused);
        self.phase = Phase::Done;
        Ok(())
    }

    fn handle_request(&mut self, key: &ServerKey, req: &Request, now: Instant) -> Result<(), String> {
        let method = req.method.clone();
        self.say(&format!("← {method}"));
        let contact = self.dialog.contact();
        let reply = match method {
            Method::Bye => {
                if self.phase == Phase::Established {
                    self.ended_by.get_or_insert(EndedBy::Bridge);
                }
                self.phase = Phase::Done;
                response(req, 200, None, None)
            }
            Method::Invite | Method::Update => match self.answer_offer(req, method == Method::Invite) {
                Ok(sdp) => response(req, 200, Some(&contact), sdp.as_deref().map(|s| ("application/sdp", s))),
                Err(e) => {
                    self.fail(format!("re-{method} refused: {e}"));
                    response(req, 488, None, None)
                }
            },
            Method::Info | Method::Options | Method::Notify => response(req, 200, None, None),
            _ => response(req, 501, None, None),
        };
        self.say(&format!("→ {} ({method})", reply.status_code.code()));
        self.layer.respond(key, reply, now).map_err(|e| e.to_string())
    }

    /// The SDP for our 2xx to a re-INVITE or UPDATE: the answer to its offer, or our
    /// offer when it had none (the answer then comes in the ACK).
    fn answer_offer(&mut self, req: &Request, is_invite: bool) -> Result<Option<String>, String> {
        let session = self.session.as_mut().ok_or("no media session")?;
        if req.body.is_empty() {
            if !is_invite {
                return Ok(None);
            }
            self.offered_in_2xx = true;
            return Ok(Some(session.offer()));
        }
        let offer = SessionDescription::parse_bytes(&req.body).map_err(|e| e.to_string())?;
        let answer = session.handle_offer(&offer).map_err(|e| e.to_string())?;
        let remote = remote_media(&answer.media)?;
        if let Some(media) = &self.media {
            media.set_remote(remote);
        }
        Ok(Some(answer.sdp))
    }

    fn apply_answer_sdp(&mut self, body: &[u8]) -> Result<(), String> {
        let session = self.session.as_ref().ok_or("no media session")?;
        let sdp = SessionDescription::parse_bytes(body).map_err(|e| format!("SDP answer: {e}"))?;
        let negotiated = session.handle_answer(&sdp).map_err(|e| format!("SDP answer: {e}"))?;
        let remote = remote_media(&negotiated)?;
        if let Some(media) = &self.media {
            media.set_remote(remote);
        }
        Ok(())
    }

    fn start_media(&mut self, body: &[u8]) -> Result<(), String> {
        let session = self.session.as_ref().ok_or("no media session")?;
        if body.is_empty() {
            return Err("2xx without an SDP answer".into());
        }
        let sdp = SessionDescription::parse_bytes(body).map_err(|e| format!("SDP answer: {e}"))?;
        let negotiated = session.handle_answer(&sdp).map_err(|e| format!("SDP answer: {e}"))?;
        let remote = remote_media(&negotiated)?;
        self.say(&format!(
            "media: {} PT {} to {}{}",
            remote.codec.encoding_name(),
            remote.payload_type,
            remote.addr,
            match remote.telephone_event {
                Some(pt) => format!(", telephone-event PT {pt}"),
                None => String::new(),
            }
        ));
        let socket = self.socket.take().ok_or("RTP socket already used")?;
        self.media = Some(Media::start(socket, remote, self.config.source.clone(), self.config.record_limit));
        Ok(())
    }

    /// Runs script steps until one has to wait.
    fn advance_script(&mut self, now: Instant) -> Result<(), String> {
        while self.phase == Phase::Established {
            let Some(step) = self.config.script.steps.get(self.script.index) else {
                if !self.script.hold_started {
                    self.script.hold_started = true;
                    self.script.wake = Some(now + self.config.hold);
                    return Ok(());
                }
                return self.hangup(now);
            };
            match step {
                Step::Wait(d) => {
                    self.script.wake = Some(now + *d);
                    return Ok(());
                }
                Step::Keys(keys) => {
                    self.say(&format!("keys {keys}"));
                    match self.config.dtmf {
                        DtmfMode::Rfc4733 => {
                            let media = self.media.as_ref().ok_or("no media")?;
                            self.script.keys_done = Some(media.keys(keys));
                        }
                        DtmfMode::Info => {
                            self.script.info_queue.extend(keys.chars());
                            self.send_next_info(now)?;
                        }
                    }
                    return Ok(());
                }
                Step::Hangup => return self.hangup(now),
            }
        }
        Ok(())
    }

    /// The current step has finished: move on, starting the latency clock after the
    /// last keys.
    fn step_done(&mut self) {
        if self.script.marks_after == Some(self.script.index) {
            if let Some(media) = &self.media {
                media.mark();
            }
        }
        if self.script.index < self.config.script.steps.len() {
            self.script.index += 1;
        } else {
            // The hold time is over.
            self.script.index = usize::MAX;
        }
    }

    fn send_next_info(&mut self, now: Instant) -> Result<(), String> {
        let Some(key) = self.script.info_queue.pop_front() else {
            self.step_done();
            return self.advance_script(now);
        };
        let body = dtmf::info_body(key, dtmf::KEY_MS);
        let info = self
            .dialog
            .info("application/dtmf-relay", &body)
            .map_err(|e| e.to_string())?;
        self.say(&format!("→ INFO {key}"));
        let tx = self
            .layer
            .send_request(info, self.peer, now)
            .map_err(|e| e.to_string())?;
        self.script.info_in_flight = Some(tx);
        Ok(())
    }

    fn info_answered(&mut self, key: &ClientKey, now: Instant) -> Result<(), String> {
        if self.script.info_in_flight.as_ref() == Some(key) {
            self.script.info_in_flight = None;
            self.script.info_next = Some(now + INFO_GAP);
        }
        Ok(())
    }

    fn hangup(&mut self, now: Instant) -> Result<(), String> {
        if self.phase != Phase::Established {
            return Ok(());
        }
        let bye = self.dialog.bye().map_err(|e| e.to_string())?;
        self.say("→ BYE");
        self.layer
            .send_request(bye, self.peer, now)
            .map_err(|e| e.to_string())?;
        self.ended_by.get_or_insert(EndedBy::Caller);
        self.phase = Phase::HangingUp;
        self.phase_deadline = Some(now + HANGUP_WAIT);
        self.script.wake = None;
        self.script.info_next = None;
        Ok(())
    }

    fn cancel(&mut self, now: Instant) -> Result<(), String> {
        let Some(cancel) = self.dialog.cancel() else {
            self.phase = Phase::Done;
            return Ok(());
        };
        let cancel = cancel.map_err(|e| e.to_string())?;
        self.say("→ CANCEL");
        self.layer
            .send_request(cancel, self.peer, now)
            .map_err(|e| e.to_string())?;
        self.phase = Phase::Cancelling;
        self.phase_deadline = Some(now + HANGUP_WAIT);
        Ok(())
    }

    async fn finish(mut self) -> CallOutcome {
        let report = match self.media.take() {
            Some(m) => Some(m.finish().await),
            None => None,
        };
        let ended = Instant::now();
        let expect = &self.config.expect;
        let status = self.status.as_ref().map(|(c, _)| *c);
        match status {
            Some(s) if s != expect.status => {
                let reason = self.status.as_ref().map(|(_, r)| r.as_str()).unwrap_or_default();
                self.failures.push(format!("expected {}, got {s} {reason}", expect.status));
            }
            None if self.failures.is_empty() => {
                self.failures.push("no final response".into());
            }
            _ => {}
        }
        let ended_by = self.ended_by.unwrap_or(EndedBy::Caller);
        let answered = status.is_some_and(|s| (200..300).contains(&s));
        if answered && expect.bridge_hangs_up && ended_by != EndedBy::Bridge {
            self.failures.push("expected the bridge to hang up".into());
        }
        if answered && !expect.bridge_hangs_up && ended_by == EndedBy::Bridge {
            self.failures.push("the bridge hung up early".into());
        }
        let (media, analysis, heard, response) = match report {
            Some(r) => {
                let tone = expect.audio.iter().find_map(|e| match e {
                    audio_check::Expectation::Tone(f) => Some(*f),
                    _ => None,
                });
                let analysis = audio_check::analyse(&r.heard, tone);
                let counts = MediaCounts {
                    sent: r.sent,
                    events_sent: r.events_sent,
                    received: r.received,
                    events_received: r.events_received,
                    dropped: r.dropped,
                };
                (counts, Some(analysis), r.heard, r.response_after_mark)
            }
            None => (MediaCounts::default(), None, Vec::new(), None),
        };
        let mut audio_ok = None;
        if let Some(a) = &analysis {
            for e in &expect.audio {
                let result = e.check(a);
                audio_ok = Some(audio_ok.unwrap_or(true) && result.is_ok());
                if let Err(why) = result {
                    self.failures.push(why);
                }
            }
            let connected = self.answered_at.map(|t| ended.saturating_duration_since(t));
            if media.received == 0 && connected.is_some_and(|c| c > Duration::from_secs(1)) {
                self.failures.push("no RTP received".into());
            }
        }
        CallOutcome {
            call_id: self.dialog.call_id().to_owned(),
            status,
            reason: self.status.map(|(_, r)| r),
            setup: self.setup,
            dtmf_to_response: response,
            ended_by,
            connected: self.answered_at.map(|t| ended.saturating_duration_since(t)),
            media,
            analysis,
            audio_ok,
            failures: self.failures,
            heard,
        }
    }
}

/// What the media task needs from a negotiation.
fn remote_media(n: &Negotiated) -> Result<RemoteMedia, String> {
    let codec = match n.codec.name {
        name if name.eq_ignore_ascii_case("PCMU") => Codec::Pcmu,
        name if name.eq_ignore_ascii_case("PCMA") => Codec::Pcma,
        other => return Err(format!("codec {other} not offered")),
    };
    Ok(RemoteMedia {
        addr: n.remote_rtp,
        codec,
        payload_type: n.payload_type,
        telephone_event: n.telephone_event,
        send: n.direction.sends() && !n.remote_rtp.ip().is_unspecified() && n.remote_rtp.port() != 0,
    })
}

fn cseq_of(req: &Request) -> u32 {
    dialbridge_sip::message::fields::cseq(&req.headers)
        .map(|c| c.seq)
        .unwrap_or_default()
}

fn reason_of(resp: &Response) -> String {
    match &resp.status_code {
        dialbridge_sip::rsip::StatusCode::Other(_, r) if !r.is_empty() => r.clone(),
        s => dialbridge_sip::message::reason_phrase(s.code()).to_owned(),
    }
}

fn challenge_of(resp: &Response, code: u16) -> Option<String> {
    resp.headers.iter().find_map(|h| match (code, h) {
        (401, Header::WwwAuthenticate(v)) => Some(v.value().to_owned()),
        (407, Header::ProxyAuthenticate(v)) => Some(v.value().to_owned()),
        _ => None,
    })
}
