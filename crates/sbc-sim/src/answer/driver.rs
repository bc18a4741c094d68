//! The answer run's I/O: one UDP socket at the listen address, the transaction layer
//! (`dialbridge_sip::transaction`: retransmissions, the ACK and CANCEL matching), one
//! [`Callee`] per call and its RTP task. This task only moves bytes and time: what to
//! answer and when is the callees' and the layer's; OPTIONS get the configured answer.
//!
//! The run ends once `--calls` calls are over, when its time is up, or when it is
//! stopped (SIGINT/SIGTERM): calls still going are then ended (BYE, or 480 while they
//! ring) and fail. Every wait is bounded by the run's timeout.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use dialbridge_sip::dialog::LocalAddress;
use dialbridge_sip::message::{self, fields};
use dialbridge_sip::rsip::{self, Method, Request, Response, SipMessage};
use dialbridge_sip::transaction::{
    ClientKey, Event, LayerConfig, PeerAddr, Refusal, ServerKey, TransactionKey, TransactionLayer,
    TransportKind,
};
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::callee::{self, Action, Callee};
use super::prompt::PromptListener;
use super::report::CallReport;
use super::{AnswerConfig, OptionsReply, PHONE};
use crate::Error;
use crate::call::Progress;
use crate::rtp::{Media, Source};

/// Most audio one call records, in 8 kHz samples: five minutes.
const RECORD_LIMIT: usize = 5 * 60 * 8000;
/// Amplitude of the tone we talk (about -12 dBFS peak).
const TONE_AMPLITUDE: i16 = 8000;
/// Media events queued towards the run before their senders wait.
const MEDIA_EVENTS: usize = 64;
/// Most calls at once (each costs an RTP socket and a media task).
const MAX_CALLS: usize = 1024;

/// The answerer, bound and ready for calls.
#[derive(Debug)]
pub struct Listening {
    socket: UdpSocket,
    local: SocketAddr,
    config: AnswerConfig,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Calls reported.
    pub calls: usize,
    /// Of which went as told.
    pub passed: usize,
    /// OPTIONS received outside a call.
    pub options: u64,
    /// What went wrong with the run as a whole: fewer calls than `--calls`, or more.
    pub failures: Vec<String>,
}

impl Summary {
    /// Whether every call went as told and the run took the calls it expected.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.passed == self.calls
    }
}

/// Binds the answerer's SIP socket at `config.listen`.
pub async fn bind(config: AnswerConfig) -> Result<Listening, Error> {
    let socket = UdpSocket::bind(config.listen).await?;
    // tokio learns that a new socket is writable from the reactor; until then
    // `try_send_to` says WouldBlock and the first answer would be lost.
    socket.writable().await?;
    let local = socket.local_addr()?;
    Ok(Listening {
        socket,
        local,
        config,
    })
}

impl Listening {
    /// Where it listens (the port the system chose for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Takes calls until the run is over (see the module doc), handing each call's
    /// report to `on_report` as it ends. `stop` ends the run early.
    pub async fn run(
        self,
        progress: &dyn Progress,
        stop: impl Future<Output = ()>,
        on_report: &mut dyn FnMut(&CallReport),
    ) -> Summary {
        let (media_tx, mut media_rx) = mpsc::channel(MEDIA_EVENTS);
        let mut phone = Phone {
            config: &self.config,
            progress,
            socket: &self.socket,
            local: self.local,
            layer: TransactionLayer::new(LayerConfig::default()),
            calls: HashMap::new(),
            invites: HashMap::new(),
            requests: HashMap::new(),
            refused: Vec::new(),
            media_tx,
            taken: 0,
            summary: Summary::default(),
        };
        let deadline = Instant::now() + self.config.timeout;
        let mut stopping = false;
        let mut stop = std::pin::pin!(stop);
        let mut buf = vec![0u8; message::MAX_MESSAGE + 1];
        loop {
            phone.settle(Instant::now());
            phone.reap(on_report).await;
            if phone.is_done(stopping) {
                break;
            }
            let wake = phone.poll_timeout().map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    // An error is an ICMP report of an earlier send: nothing to do.
                    if let Ok((len, from)) = received {
                        phone.receive(buf.get(..len).unwrap_or_default(), from, Instant::now());
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    let now = Instant::now();
                    phone.handle_timeout(now);
                    if now >= deadline && !stopping {
                        stopping = true;
                        phone.abandon_all("the run's time was up", now);
                    }
                }
                Some((call_id, event)) = media_rx.recv() => {
                    phone.handle_media_event(&call_id, event, Instant::now());
                }
                () = &mut stop, if !stopping => {
                    stopping = true;
                    phone.say("stopped");
                    phone.abandon_all("the run was stopped", Instant::now());
                }
            }
        }
        let mut summary = phone.summary;
        let expected = self.config.calls;
        if phone.taken < expected {
            summary
                .failures
                .push(format!("{} of {expected} calls came", phone.taken));
        }
        summary
    }
}

/// What a call's media task says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaEvent {
    PromptHeard,
    KeysSent(bool),
}

/// One call and its transport: where it came from, its INVITE's transaction, its RTP.
struct Entry {
    callee: Callee,
    peer: PeerAddr,
    invite_key: ServerKey,
    /// The RTP socket our answer names, until the media starts on it.
    rtp: Option<UdpSocket>,
    media: Option<Media>,
}

/// The run's state.
struct Phone<'a> {
    config: &'a AnswerConfig,
    progress: &'a dyn Progress,
    socket: &'a UdpSocket,
    local: SocketAddr,
    layer: TransactionLayer<PeerAddr>,
    /// Calls by Call-ID.
    calls: HashMap<String, Entry>,
    /// Our INVITE server transactions, and our own requests, by the Call-ID they
    /// belong to.
    invites: HashMap<ServerKey, String>,
    requests: HashMap<ClientKey, String>,
    /// Reports of INVITEs refused before a call was made of them.
    refused: Vec<CallReport>,
    media_tx: mpsc::Sender<(String, MediaEvent)>,
    /// INVITEs that opened a call (or were refused for being one too many).
    taken: usize,
    summary: Summary,
}

impl Phone<'_> {
    fn say(&self, text: &str) {
        self.progress.line(text);
    }

    fn say_call(&self, call_id: &str, text: &str) {
        tell(self.progress, call_id, text);
    }

    /// Whether the run is over: every expected call taken and over, or, once stopping,
    /// every call over.
    fn is_done(&self, stopping: bool) -> bool {
        let expected = self.config.calls;
        self.calls.is_empty() && (stopping || (expected > 0 && self.taken >= expected))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let calls = self
            .calls
            .values()
            .filter_map(|e| e.callee.poll_timeout())
            .min();
        [self.layer.poll_timeout(), calls]
            .into_iter()
            .flatten()
            .min()
    }

    fn receive(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        match message::parse(bytes) {
            Ok(SipMessage::Request(request)) => {
                let peer = PeerAddr {
                    transport: TransportKind::Udp,
                    addr: from,
                    connection: None,
                };
                self.layer.handle_request(request, peer, now);
            }
            Ok(SipMessage::Response(response)) => self.layer.handle_response(response, now),
            Err(e) => {
                if let Some(reply) = PHONE.reject_unparsable(bytes, &e) {
                    let _ = self.socket.try_send_to(&reply, from);
                }
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        for entry in self.calls.values_mut() {
            entry.callee.handle_timeout(now);
        }
    }

    fn abandon_all(&mut self, why: &str, now: Instant) {
        for entry in self.calls.values_mut() {
            entry.callee.abandon(why, now);
        }
    }

    fn handle_media_event(&mut self, call_id: &str, event: MediaEvent, now: Instant) {
        let Some(entry) = self.calls.get_mut(call_id) else {
            return;
        };
        match event {
            MediaEvent::PromptHeard => {
                tell(self.progress, call_id, "heard the prompt and its silence");
                entry.callee.handle_prompt_heard(now);
            }
            MediaEvent::KeysSent(sent) => entry.callee.handle_keys_sent(sent, now),
        }
    }

    /// Runs the layer's events and the callees' actions until neither has more, and
    /// puts what they send on the wire.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(event) = self.layer.poll_event() {
                self.handle_event(event, now);
                busy = true;
            }
            let ids: Vec<String> = self.calls.keys().cloned().collect();
            for id in ids {
                while let Some(action) =
                    self.calls.get_mut(&id).and_then(|e| e.callee.poll_action())
                {
                    self.act(&id, action, now);
                    busy = true;
                }
            }
            while let Some(t) = self.layer.poll_transmit() {
                let bytes = message::encode(&t.message);
                if let Err(e) = self.socket.try_send_to(&bytes, t.peer.addr) {
                    tracing::debug!(error = %e, "send failed");
                }
            }
            if !busy {
                return;
            }
        }
    }

    /// Reports the calls that are over, and lets them go.
    async fn reap(&mut self, on_report: &mut dyn FnMut(&CallReport)) {
        let mut reports = std::mem::take(&mut self.refused);
        let over: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, e)| e.callee.is_over())
            .map(|(id, _)| id.clone())
            .collect();
        for id in over {
            let Some(entry) = self.calls.remove(&id) else {
                continue;
            };
            let media = match entry.media {
                Some(m) => Some(m.finish().await),
                None => None,
            };
            let callee = &entry.callee;
            reports.push(CallReport::new(
                callee.facts(),
                callee.plan(),
                media.as_ref(),
                self.config.expect_tone,
                Instant::now(),
            ));
        }
        for report in reports {
            let verdict = if report.passed {
                "✓ as told".to_owned()
            } else {
                format!("✗ {}", report.failures.join("; "))
            };
            self.say_call(
                &report.call_id,
                &format!("over ({:?}): {verdict}", report.ended_by),
            );
            self.summary.calls += 1;
            self.summary.passed += usize::from(report.passed);
            on_report(&report);
        }
    }

    fn handle_event(&mut self, event: Event<PeerAddr>, now: Instant) {
        match event {
            Event::NewRequest { key, request, peer } => {
                self.handle_request(key, request, peer, now)
            }
            Event::AckFor2xx { request, .. } => {
                let id = fields::call_id(&request.headers).unwrap_or_default();
                tell(self.progress, id, "← ACK");
                if let Some(entry) = self.calls.get_mut(id) {
                    entry.callee.handle_ack(&request, now);
                }
            }
            Event::Cancel {
                invite_key, cancel, ..
            } => {
                let id = self.invites.get(&invite_key).cloned().unwrap_or_default();
                let response = self
                    .calls
                    .get_mut(&id)
                    .and_then(|e| e.callee.handle_cancel(&cancel, now));
                if let Some(response) = response {
                    self.say_call(&id, "← CANCEL → 487");
                    self.respond(&invite_key, response, now);
                }
            }
            Event::Response { key, response } => {
                let id = self.requests.get(&key).cloned().unwrap_or_default();
                self.say_call(
                    &id,
                    &format!("← {} ({})", response.status_code, key.method()),
                );
                if let Some(entry) = self.calls.get_mut(&id) {
                    entry.callee.handle_response(&response, now);
                }
            }
            Event::TimedOut {
                key: TransactionKey::Client(key),
            } => {
                let id = self.requests.get(&key).cloned().unwrap_or_default();
                if let Some(entry) = self.calls.get_mut(&id) {
                    entry.callee.handle_request_timeout(key.method(), now);
                }
            }
            Event::NoAckFor2xx { invite_key } => {
                let id = self.invites.get(&invite_key).cloned().unwrap_or_default();
                if let Some(entry) = self.calls.get_mut(&id) {
                    entry.callee.handle_no_ack(now);
                }
            }
            Event::Terminated { key } => match key {
                TransactionKey::Server(k) => {
                    self.invites.remove(&k);
                }
                TransactionKey::Client(k) => {
                    self.requests.remove(&k);
                }
            },
            Event::Refused {
                request,
                peer,
                reason,
            } => {
                let reply = match reason {
                    Refusal::Overloaded => PHONE.reply(&request, 503, None),
                    Refusal::Malformed(e) => PHONE.malformed(&request, &e),
                };
                self.layer.send_stateless(reply, peer);
            }
            // Timer H: our refusal was never ACKed; the call is already over.
            Event::TimedOut { .. } => {}
        }
    }

    fn handle_request(&mut self, key: ServerKey, request: Request, peer: PeerAddr, now: Instant) {
        if let Some(refusal) = PHONE.precheck(&request) {
            self.respond(&key, refusal, now);
            return;
        }
        let call_id = fields::call_id(&request.headers)
            .unwrap_or_default()
            .to_owned();
        let in_dialog = fields::to_tag(&request.headers).is_some();
        match request.method {
            Method::Invite if !in_dialog => self.take_call(key, request, peer, call_id, now),
            Method::Options if !in_dialog => self.answer_options(&key, &request, now),
            method => {
                let response = match self.calls.get_mut(&call_id) {
                    Some(entry) => entry.callee.handle_request(&request, now),
                    None => Some(PHONE.no_such_dialog(&request)),
                };
                if let Some(response) = response {
                    let code = response.status_code.code();
                    self.say_call(&call_id, &format!("← {method} → {code}"));
                    self.respond(&key, response, now);
                }
            }
        }
    }

    /// A new INVITE: a call, unless it is one too many (503) or cannot be one.
    fn take_call(
        &mut self,
        key: ServerKey,
        invite: Request,
        peer: PeerAddr,
        call_id: String,
        now: Instant,
    ) {
        let (from, to) = (callee::from_user(&invite), callee::dialled(&invite));
        self.say_call(
            &call_id,
            &format!("← INVITE {to} from {from} ({})", peer.addr),
        );
        if self.calls.contains_key(&call_id) {
            let refusal = PHONE.reply(&invite, 482, Some("Loop Detected"));
            self.respond(&key, refusal, now);
            return;
        }
        self.taken += 1;
        let expected = self.config.calls;
        if self.taken > expected || self.calls.len() >= MAX_CALLS {
            self.summary.failures.push(format!(
                "a call to {to} from {from} beyond the {expected} expected"
            ));
            let refusal = PHONE.reply(&invite, 503, Some("No More Calls Expected"));
            self.respond(&key, refusal, now);
            return;
        }
        let rtp = match bind_rtp(self.local) {
            Ok(rtp) => rtp,
            Err(e) => {
                let refusal = PHONE.reply(&invite, 503, Some("No RTP Port"));
                self.refuse_call(&call_id, &from, &to, refusal, &e.to_string(), &key, now);
                return;
            }
        };
        let media = match rtp.local_addr() {
            Ok(addr) => addr,
            Err(e) => {
                let refusal = PHONE.reply(&invite, 503, Some("No RTP Port"));
                self.refuse_call(&call_id, &from, &to, refusal, &e.to_string(), &key, now);
                return;
            }
        };
        let local = LocalAddress::new("sbc-sim", self.local, rsip::Transport::Udp);
        match Callee::new(invite, local, media, self.config.plan.clone(), now) {
            Ok(callee) => {
                self.invites.insert(key.clone(), call_id.clone());
                self.calls.insert(
                    call_id,
                    Entry {
                        callee,
                        peer,
                        invite_key: key,
                        rtp: Some(rtp),
                        media: None,
                    },
                );
            }
            Err(refusal) => {
                let why = refusal.status_code.to_string();
                self.refuse_call(&call_id, &from, &to, *refusal, &why, &key, now);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn refuse_call(
        &mut self,
        call_id: &str,
        from: &str,
        to: &str,
        refusal: Response,
        why: &str,
        key: &ServerKey,
        now: Instant,
    ) {
        let status = refusal.status_code.code();
        self.say_call(call_id, &format!("→ {status} ({why})"));
        self.respond(key, refusal, now);
        self.refused
            .push(CallReport::refused(call_id, from, to, status, why));
    }

    fn answer_options(&mut self, key: &ServerKey, request: &Request, now: Instant) {
        self.summary.options += 1;
        let response = match self.config.options {
            OptionsReply::Status(200) => PHONE.options(request),
            OptionsReply::Status(code) => PHONE.reply(request, code, None),
            // Left unanswered: the server transaction absorbs its retransmissions.
            OptionsReply::Silent => {
                self.say("← OPTIONS (not answered)");
                return;
            }
        };
        self.say(&format!("← OPTIONS → {}", response.status_code.code()));
        self.respond(key, response, now);
    }

    /// Carries out one of a call's actions.
    fn act(&mut self, id: &str, action: Action, now: Instant) {
        let progress = self.progress;
        let Some(entry) = self.calls.get_mut(id) else {
            return;
        };
        match action {
            Action::RespondInvite(response) => {
                tell(
                    progress,
                    id,
                    &format!("→ {} (INVITE)", response.status_code),
                );
                respond(&mut self.layer, &entry.invite_key, response, now);
            }
            Action::Request(request) => {
                let method = request.method;
                match self.layer.send_request(request, entry.peer, now) {
                    Ok(key) => {
                        self.requests.insert(key, id.to_owned());
                        tell(progress, id, &format!("→ {method}"));
                    }
                    Err(e) => entry.callee.note_failure(format!("{method} not sent: {e}")),
                }
            }
            Action::Ack(ack) => self.layer.send_stateless(ack, entry.peer),
            Action::StartMedia(remote) => {
                let source = match self.config.tone_hz {
                    Some(hz) => Source::Tone {
                        hz,
                        amplitude: TONE_AMPLITUDE,
                    },
                    None => Source::Silence,
                };
                let started = entry
                    .rtp
                    .take()
                    .ok_or_else(|| "RTP socket already used".to_owned())
                    .and_then(|socket| {
                        Media::start(socket, remote, source, RECORD_LIMIT)
                            .map_err(|e| e.to_string())
                    });
                match started {
                    Ok(media) => entry.media = Some(media),
                    Err(why) => entry.callee.note_failure(format!("media: {why}")),
                }
                let codec = remote.codec.encoding_name();
                tell(progress, id, &format!("media: {codec} to {}", remote.addr));
            }
            Action::MoveMedia(remote) => {
                if let Some(media) = &entry.media {
                    media.set_remote(remote);
                }
            }
            Action::ListenForPrompt => {
                if let Some(media) = &entry.media {
                    let listener = PromptListener::new(self.config.prompt_silence);
                    let heard = media.listen_for_prompt(listener);
                    forward(&self.media_tx, id, async move {
                        heard.await.ok().map(|()| MediaEvent::PromptHeard)
                    });
                }
            }
            Action::SendKeys(keys) => {
                tell(progress, id, &format!("keys {keys}"));
                match &entry.media {
                    Some(media) => {
                        media.restart_recording();
                        let sent = media.keys(&keys);
                        forward(&self.media_tx, id, async move {
                            Some(MediaEvent::KeysSent(sent.await.unwrap_or(false)))
                        });
                    }
                    None => entry.callee.handle_keys_sent(false, now),
                }
            }
        }
    }

    fn respond(&mut self, key: &ServerKey, response: Response, now: Instant) {
        respond(&mut self.layer, key, response, now);
    }
}

/// A progress line about the call `call_id` (named by its first characters).
fn tell(progress: &dyn Progress, call_id: &str, text: &str) {
    let short: String = call_id.chars().take(8).collect();
    progress.line(&format!("{short}: {text}"));
}

fn respond(
    layer: &mut TransactionLayer<PeerAddr>,
    key: &ServerKey,
    response: Response,
    now: Instant,
) {
    if let Err(e) = layer.respond(key, response, now) {
        tracing::debug!(error = %e, "response not sent");
    }
}

/// Hands what `event` resolves to back to the run, tagged with the call.
fn forward(
    tx: &mpsc::Sender<(String, MediaEvent)>,
    id: &str,
    event: impl Future<Output = Option<MediaEvent>> + Send + 'static,
) {
    let tx = tx.clone();
    let id = id.to_owned();
    // Ends with the media task at the latest: the senders it holds are dropped then.
    tokio::spawn(async move {
        if let Some(event) = event.await {
            let _ = tx.send((id, event)).await;
        }
    });
}

/// An RTP socket on our address, any port (its port goes in our answer).
fn bind_rtp(local: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddr::new(local.ip(), 0))?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}
