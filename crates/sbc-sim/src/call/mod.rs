//! One call, start to end: INVITE with an SDP offer (answering a digest challenge when
//! credentials are given), ACK, media, the script, answers to the bridge's re-INVITEs,
//! UPDATEs, INFOs and BYE, our BYE (or CANCEL), then the checks.
//!
//! The RFC 3261 machinery is `dialbridge_sip::transaction::TransactionLayer`, one per
//! call (retransmissions, Timers A/B/E/F, the ACK for a non-2xx, absorbing the bridge's
//! retransmissions), and the call itself is the calling side's invite session,
//! `dialbridge_sip::session::UacSession` (its dialog, offer/answer, ACK, CANCEL, BYE and
//! the bridge's in-dialog requests); this module is the transaction user that carries
//! out what the session says and runs the media and the script. Every wait is bounded:
//! the setup timeout, the script, the hold time and a hard limit derived from them.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dialbridge_sip::rsip::SipMessage;
use dialbridge_sip::session::{UacPhase, UacSession};
use dialbridge_sip::transaction::{ClientKey, LayerConfig, PeerAddr, TransactionLayer};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use crate::codec::CallCodec;
use crate::dtmf::{self, DtmfMode};
use crate::outcome::{CallOutcome, EndedBy, Expect, NegotiatedCodec};
use crate::parties::{self, Parties};
use crate::rtp::{Media, Source};
use crate::script::Script;
use crate::ua::Signaling;

/// How long a BYE or CANCEL may wait for its answer before the call is given up.
const HANGUP_WAIT: Duration = Duration::from_secs(8);
/// Slack added to the planned length of a call for its hard limit.
const SLACK: Duration = Duration::from_secs(30);
/// Pause after each INFO key's answer: the key's length and the gap, the cadence of
/// RFC 4733 keys.
const INFO_GAP: Duration = Duration::from_millis((dtmf::KEY_MS + dtmf::GAP_MS) as u64);
/// The Reason (RFC 3326) of our BYE once the script and the hold time are over.
const BYE_REASON: &str = "Q.850;cause=16;text=\"Normal call clearing\"";
/// The Reason of our CANCEL at the setup timeout.
const CANCEL_REASON: &str = "Q.850;cause=102;text=\"Recovery on timer expiry\"";
/// The Reason of our BYE when the answer's media cannot be used.
const UNUSABLE_REASON: &str = "SIP;cause=488;text=\"answer not usable\"";

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
    /// The codec we offer (alone, with telephone-event) and speak.
    pub codec: CallCodec,
    /// What we send.
    pub source: Source,
    /// The address our SDP gives for our media (`c=` and `o=`), when it is not the one
    /// we send from: a caller behind NAT, or a softphone that guessed its LAN address.
    /// RTP still goes from, and is received on, our real socket.
    pub sdp_address: Option<IpAddr>,
    /// How keys are sent.
    pub dtmf: DtmfMode,
    /// What we do once answered.
    pub script: Script,
    /// How long we stay after the script before hanging up.
    pub hold: Duration,
    /// How long we wait for a final response before CANCEL.
    pub setup_timeout: Duration,
    /// Most samples recorded, counted at 8 kHz (a G.722 or Opus call records at
    /// 16 kHz: the same length of audio in twice the samples).
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
pub async fn run(
    signaling: &Signaling,
    config: &CallConfig,
    progress: &dyn Progress,
) -> CallOutcome {
    let local = signaling.local_addr();
    let parties = Parties {
        from_user: config.from_user.clone(),
        from_host: config
            .from_host
            .clone()
            .unwrap_or_else(|| host_of(local.ip())),
        to: config.to.clone(),
        bridge: signaling.bridge().to_string(),
        local,
        transport: signaling.transport(),
    };
    let (socket, media) = match bind_media(local.ip(), config).await {
        Ok(bound) => bound,
        Err(e) => return CallOutcome::not_placed(e),
    };
    let session = match parties.session(media) {
        Ok(session) => session,
        Err(e) => return CallOutcome::not_placed(e.to_string()),
    };
    let mut call = Call::new(signaling, config, progress, session, socket);
    if let Err(reason) = call.drive().await {
        call.fail(reason);
        call.ended_by.get_or_insert(EndedBy::Error);
    }
    call.finish().await
}

/// Our RTP socket on `ip` and the media our offer describes with its port.
async fn bind_media(
    ip: IpAddr,
    config: &CallConfig,
) -> Result<(UdpSocket, dialbridge_sip::sdp::LocalMedia), String> {
    let socket = Media::bind(ip)
        .await
        .map_err(|e| format!("RTP socket: {e}"))?;
    let rtp_port = socket.local_addr().map_err(|e| e.to_string())?.port();
    let session_id = u64::from(rand::random::<u32>());
    // A trunk that keys in-band offers no telephone-event: the bridge then listens
    // for the tones in the audio.
    let telephone_event = config.dtmf != DtmfMode::InBand;
    let advertised = config.sdp_address.unwrap_or(ip);
    let media = config
        .codec
        .local_media(advertised, rtp_port, session_id, telephone_event);
    Ok((socket, media))
}

/// An address as the host part of a SIP URI: IPv6 in brackets (RFC 3261 §25.1).
pub fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

struct Call<'a> {
    signaling: &'a Signaling,
    config: &'a CallConfig,
    progress: &'a dyn Progress,
    peer: PeerAddr,
    layer: TransactionLayer<PeerAddr>,
    /// Whether the call rings, is up or is over, and what its SDP settled.
    session: UacSession,
    /// What the last answer (or our answer to a re-offer) settled, as reported.
    negotiated: Option<NegotiatedCodec>,
    socket: Option<UdpSocket>,
    media: Option<Media>,
    started: Instant,
    invite_key: Option<ClientKey>,
    challenged: bool,
    answered_at: Option<Instant>,
    /// The setup timeout while the INVITE waits, then the wait for our BYE's or
    /// CANCEL's answer.
    deadline: Option<Instant>,
    /// BYE or CANCEL sent: [`Call::deadline`] is its answer's.
    hanging_up: bool,
    /// Nothing more to wait for.
    done: bool,
    hard_deadline: Instant,
    script: ScriptRun,
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
        session: UacSession,
        socket: UdpSocket,
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
            session,
            negotiated: None,
            socket: Some(socket),
            media: None,
            started: now,
            invite_key: None,
            challenged: false,
            answered_at: None,
            deadline: None,
            hanging_up: false,
            done: false,
            hard_deadline: now + config.hard_limit(),
            script: ScriptRun {
                marks_after: config.script.last_keys_step(),
                ..ScriptRun::default()
            },
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

    async fn drive(&mut self) -> Result<(), String> {
        let mut registration = self
            .signaling
            .register(self.session.call_id())
            .map_err(|e| e.to_string())?;
        self.started = Instant::now();
        self.deadline = Some(self.started + self.config.setup_timeout);
        self.send_invite(None)?;

        loop {
            self.flush();
            while let Some(event) = self.layer.poll_event() {
                self.handle_event(event)?;
                self.flush();
            }
            if self.done {
                return Ok(());
            }
            let wake = [
                self.layer.poll_timeout(),
                self.deadline,
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

    fn send_invite(&mut self, authorization: Option<(&str, &str)>) -> Result<(), String> {
        let invite = self.session.invite(parties::invite_headers(authorization));
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
            self.done = true;
            return Ok(());
        }
        if self.deadline.is_some_and(|d| now >= d) {
            self.deadline = None;
            if self.hanging_up {
                self.fail("no answer to our BYE/CANCEL".into());
                self.done = true;
            } else if matches!(self.session.phase(), UacPhase::Calling | UacPhase::Early) {
                self.fail(format!(
                    "no final response within {:?}",
                    self.config.setup_timeout
                ));
                self.ended_by = Some(EndedBy::Timeout);
                self.cancel(now)?;
            }
        }
        if self.session.phase() == UacPhase::Confirmed {
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
}

mod finish;
mod handle;
mod steps;
