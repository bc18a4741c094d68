//! The answer run's I/O: one UDP socket at the listen address, the transaction layer
//! (`dialbridge_sip::transaction`: retransmissions, the ACK and CANCEL matching), one
//! [`Callee`] per call and its RTP task. This task only moves bytes and time: what to
//! answer and when is the callees' and the layer's; OPTIONS get the configured answer.
//!
//! The run ends once `--calls` calls are over, when its time is up, or when it is
//! stopped (SIGINT/SIGTERM): calls still going are then ended (BYE, or 480 while they
//! ring) and fail. Every wait is bounded by the run's timeout. The SIP side is in
//! [`sip`], what a call wants done in [`act`].

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use dialbridge_sip::message;
use dialbridge_sip::rsip::{Response, SipMessage};
use dialbridge_sip::transaction::{
    ClientKey, LayerConfig, PeerAddr, ServerKey, TransactionLayer, TransportKind,
};
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::callee::Callee;
use super::report::CallReport;
use super::{AnswerConfig, PHONE};
use crate::Error;
use crate::call::Progress;
use crate::rtp::Media;

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

mod act;
mod sip;
