//! The signaling task: one tokio task owns the transaction layer, the dialogs and the
//! calls, and is the only place SIP turns into router, media and conference terms.
//!
//! It moves bytes and time only: messages from the transports go into the transaction
//! layer with `Instant::now()`, the layer's events are decided on here, and everything
//! the layer wants sent goes to the transports. One timer is armed at a time, at the
//! earliest deadline of the layer, the dialogs and the calls waiting to be answered.

mod admission;
mod billing;
mod call;
mod dial_out;
#[cfg(test)]
mod dial_out_tests;
mod in_dialog;
mod leg;
mod origin;
mod probe;
mod shared_claim;
mod shed;
mod steps;
#[cfg(test)]
mod tests;
mod trunk_security;
mod wire;

pub use shed::ShedConfig;
pub use wire::Wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use dialbridge_sip::auth::{AuthState, Authenticator, MemoryAuthState};
use dialbridge_sip::dialog::{DialogId, SessionTimerConfig};
use dialbridge_sip::message;
use dialbridge_sip::rsip::{self, Method, SipMessage};
use dialbridge_sip::transaction::{
    ClientKey, Event, LayerConfig, PeerAddr, Refusal, ServerKey, TransactionKey, TransactionLayer,
};
use dialbridge_sip::transport::{Received, response_peer};
use tokio::sync::mpsc;

use crate::answers;
use crate::call_flow::CallReport;
use crate::cdr::EndedBy;
use crate::config::Config;
use crate::metrics::Gauges;
use crate::refusal::{self, EndCause};
use crate::services::Services;
use call::Call;
use in_dialog::AfterRecord;

/// Where the signaling task reports what it measures (for `/metrics`).
#[derive(Debug, Clone)]
pub struct Observers {
    /// The transaction layer's counters, published after every event batch.
    pub sip: Arc<crate::metrics::SipCounters>,
    /// INVITE received to 200 OK sent.
    pub setup_latency: Arc<crate::metrics::Histogram>,
    /// Softphone authentication outcomes and lock-outs.
    pub auth: Arc<crate::metrics::AuthCounters>,
}

/// The signaling task's state.
pub struct Signaling {
    config: Arc<Config>,
    services: Arc<Services>,
    wire: Wire,
    layer: TransactionLayer<PeerAddr>,
    session_timers: SessionTimerConfig,
    auth: Authenticator,
    /// Nonce counts, failures and lock-outs: in this process for now, behind the trait a
    /// shared backend will implement.
    auth_state: Box<dyn AuthState>,
    calls: HashMap<DialogId, Call>,
    /// The INVITE server transaction of each call not yet confirmed (CANCEL, no-ACK).
    by_invite: HashMap<ServerKey, DialogId>,
    /// Our BYEs and re-INVITEs in flight, to know which call a response is about.
    by_client: HashMap<TransactionKey, DialogId>,
    /// New calls admitted here waiting for their claim on every node (`shared_claim.rs`).
    claiming: HashMap<ServerKey, shared_claim::Claiming>,
    /// Dial-outs not answered yet.
    dialing: HashMap<crate::dial_out::DialOutId, dial_out::Dialing>,
    /// The INVITE transactions of dial-outs, to know which one a response is about.
    dial_invites: HashMap<ClientKey, dial_out::DialInvite>,
    /// Answered dial-outs with a meter: their commits go to the call's billing.
    dial_out_calls: HashMap<crate::dial_out::DialOutId, DialogId>,
    /// Each call's next session deadline (answer, refresh, expiry), in order. An entry
    /// whose call is gone or re-armed since is skipped when it comes up.
    timers: BTreeSet<(Instant, DialogId)>,
    reports_tx: mpsc::Sender<CallReport>,
    reports: mpsc::Receiver<CallReport>,
    /// Committed call records come back here with the wire work that waited for them.
    records_tx: mpsc::Sender<AfterRecord>,
    records: mpsc::Receiver<AfterRecord>,
    gauges: Arc<Gauges>,
    /// Messages that could not be parsed or answered, dropped.
    dropped: u64,
    /// Shutting down: new calls get 503 with Retry-After.
    draining: bool,
    /// Call records being committed; their wire work comes back as reports.
    records_pending: usize,
    observers: Observers,
    /// Sheds new calls past the call rate or while the task is behind.
    shedder: shed::Shedder,
    /// Messages waiting in the task's queue behind the one being handled.
    backlog: usize,
    /// Who sent the last new INVITE received (`origin.rs`: its source, the names of the
    /// certificate verified on its connection, or the caller a trusted proxy names),
    /// under its transaction's key. Its event follows its message before any other
    /// message is read; a miss on the key reads as the packet's source without a
    /// certificate (refused or challenged, never let in on a name).
    origin: Option<(ServerKey, origin::Origin)>,
    /// The trunks' health and our OPTIONS to their outbound targets (`probe.rs`).
    probes: probe::Prober,
}

impl std::fmt::Debug for Signaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signaling")
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl Signaling {
    pub fn new(
        config: Arc<Config>,
        services: Arc<Services>,
        wire: Wire,
        gauges: Arc<Gauges>,
        observers: Observers,
    ) -> Signaling {
        let memory =
            MemoryAuthState::new(config.auth.policy(), Some(services.nonce_secret.clone()))
                .started_at(Self::wall_clock());
        // With `[shared] redis`, failures count on every node (`shared/limits.rs`).
        let mut auth_state: Box<dyn AuthState> = match &services.shared_limits {
            Some(limits) => Box::new(limits.auth_state(memory, &config)),
            None => Box::new(memory),
        };
        // The in-process state cannot fail here; a shared one that did would leave this
        // node with nonces only it accepts, which is still safe.
        let secret = auth_state.nonce_secret().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "no shared nonce secret: this process makes its own");
            rand::random::<[u8; 32]>().to_vec()
        });
        let mut auth = Authenticator::new(
            config.softphones.realm.clone(),
            &secret,
            config.auth.nonce_lifetime,
        );
        for account in &config.softphones.accounts {
            auth.add_password(&account.user, &account.password, account.sha256);
        }
        let session_timers = SessionTimerConfig {
            min_se: std::time::Duration::from_secs(u64::from(config.sip.min_session_expires)),
            default_interval: std::time::Duration::from_secs(u64::from(config.sip.session_expires)),
            always: config.sip.always_session_timer,
        };
        let shed = config.sip.shed;
        let probes = probe::Prober::new(config.trunk_health, Instant::now());
        let (reports_tx, reports) = mpsc::channel(1024);
        let (records_tx, records) = mpsc::channel(1024);
        Signaling {
            config,
            services,
            wire,
            layer: TransactionLayer::new(LayerConfig::default()),
            session_timers,
            auth,
            auth_state,
            calls: HashMap::new(),
            by_invite: HashMap::new(),
            by_client: HashMap::new(),
            claiming: HashMap::new(),
            dialing: HashMap::new(),
            dial_invites: HashMap::new(),
            dial_out_calls: HashMap::new(),
            timers: BTreeSet::new(),
            reports_tx,
            reports,
            records_tx,
            records,
            gauges,
            dropped: 0,
            draining: false,
            shedder: shed::Shedder::new(shed, Instant::now()),
            backlog: 0,
            origin: None,
            records_pending: 0,
            observers,
            probes,
        }
    }

    /// Runs until `shutdown` resolves or the transports stop. Shutting down drains: new
    /// calls are refused with 503 and Retry-After while the calls in progress go on, up
    /// to the drain timeout; then the bridge ends the rest with BYE and gives the BYEs a
    /// moment to leave.
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Received>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut drain_until: Option<Instant> = None;
        // The meetings' dial-outs (a bench without meetings has none).
        let mut dial_outs = self.services.conferences.take_dial_out_requests();
        loop {
            if let Some(until) = drain_until
                && (self.calls.is_empty() || Instant::now() >= until)
            {
                break;
            }
            let dial_out = async {
                match dial_outs.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let deadline = self.poll_timeout();
            let deadline = match (deadline, drain_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = inbound.recv() => match received {
                    Some(received) => {
                        self.backlog = inbound.len();
                        self.handle_received(received, Instant::now());
                    }
                    None => break,
                },
                Some(report) = self.reports.recv() => self.handle_call_report(report, Instant::now()),
                Some(after) = self.records.recv() => self.recorded(after, Instant::now()),
                Some(request) = dial_out => self.handle_dial_out_request(request, Instant::now()),
                _ = sleep => self.handle_timeout(Instant::now()),
                _ = &mut shutdown, if drain_until.is_none() => {
                    let timeout = self.config.sip.drain_timeout;
                    tracing::info!(calls = self.calls.len(), ?timeout, "draining: new calls refused");
                    self.draining = true;
                    self.cancel_all_dialing(Instant::now());
                    drain_until = Some(Instant::now() + timeout);
                }
            }
            self.drive(Instant::now());
        }
        let now = Instant::now();
        let ids: Vec<DialogId> = self.calls.keys().cloned().collect();
        for id in ids {
            self.hang_up(&id, EndCause::ShuttingDown.into(), EndedBy::Shutdown, now);
        }
        self.drive(now);
        // Let the records commit and the BYEs (and their UDP retransmissions) go out
        // before the sockets close.
        let grace = Instant::now() + std::time::Duration::from_secs(3);
        // Our OPTIONS are not waited for: nothing hangs on their answers.
        while (self.records_pending > 0 || self.layer.len() > self.probes.transactions())
            && Instant::now() < grace
        {
            let wake = self.layer.poll_timeout().map_or(grace, |t| t.min(grace));
            tokio::select! {
                Some(received) = inbound.recv() => self.handle_received(received, Instant::now()),
                Some(report) = self.reports.recv() => self.handle_call_report(report, Instant::now()),
                Some(after) = self.records.recv() => self.recorded(after, Instant::now()),
                _ = tokio::time::sleep_until(wake.into()) => self.layer.handle_timeout(Instant::now()),
            }
            self.drive(Instant::now());
        }
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        // Stale entries (calls gone or re-armed) are dropped as they reach the front.
        while let Some((at, id)) = self.timers.first() {
            if self.calls.get(id).is_some_and(|c| c.armed == Some(*at)) {
                break;
            }
            self.timers.pop_first();
        }
        let session = self.timers.first().map(|(at, _)| *at);
        [
            self.layer.poll_timeout(),
            session,
            self.probes.poll_timeout(),
            self.dialing_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.handle_dialing_timeout(now);
        self.handle_probe_timeout(now);
        while self.timers.first().is_some_and(|(at, _)| *at <= now) {
            let Some((at, id)) = self.timers.pop_first() else {
                break;
            };
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if call.armed != Some(at) {
                continue;
            }
            call.armed = None;
            call.session.handle_timeout(now);
            call.core.handle_timeout(now);
            self.billing_timeout(&id, now);
            self.settle(&id, now);
        }
    }

    /// Hands the layer's and the dialogs' output on until both are quiet.
    fn drive(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(event) = self.layer.poll_event() {
                busy = true;
                self.handle_event(event, now);
            }
            while let Some(transmit) = self.layer.poll_transmit() {
                busy = true;
                let bytes = message::encode(&transmit.message);
                if let Err(e) = self.wire.send(&transmit.peer, bytes) {
                    tracing::debug!(peer = %transmit.peer.addr, error = %e, "send failed");
                }
            }
            if !busy {
                break;
            }
        }
        self.gauges.calls.store(self.calls.len(), Ordering::Relaxed);
        self.observers
            .sip
            .publish(&self.layer.stats(), self.layer.len());
        self.publish_health(now);
    }

    fn handle_received(&mut self, received: Received, now: Instant) {
        let parsed = match message::parse(&received.bytes) {
            Ok(m) => m,
            Err(e) => {
                self.reject_unparsable(&received, &e);
                return;
            }
        };
        match parsed {
            SipMessage::Request(mut request) => {
                self.rewrite_origin(&mut request, &received);
                let peer = match message::fields::top_via(&request.headers) {
                    Ok(via) => response_peer(received.peer, via.port, via.rport.is_some()),
                    Err(_) => received.peer,
                };
                message::fields::set_received_rport(&mut request, received.peer.addr);
                if is_new_call(&request) && !self.shedder.admit(now, self.backlog) {
                    self.shed(&request, peer);
                    return;
                }
                self.layer.handle_request(request, peer, now);
            }
            SipMessage::Response(response) => self.layer.handle_response(response, now),
        }
    }

    /// The one place a request's sender is decided (`origin.rs`): the source header of a
    /// trusted proxy taken, anyone else's removed. A new INVITE's origin is kept for its
    /// admission; the request, and everything that answers it, still goes by Via and the
    /// packet's real source.
    fn rewrite_origin(&mut self, request: &mut rsip::Request, received: &Received) {
        let names = received.certificate_names.clone();
        let trusted = &self.config.cluster.trusted_proxies;
        let rewrite = origin::rewrite(request, received.peer, names, trusted);
        match &rewrite {
            origin::Rewrite::Direct(_) | origin::Rewrite::Relayed(_) => {}
            // A trusted proxy should never do this: worth a line, and bounded by it.
            origin::Rewrite::Malformed { reason, .. } => tracing::warn!(
                proxy = %received.peer.addr,
                reason,
                "{} from a trusted proxy ignored: the request counts as the proxy's own",
                origin::SOURCE_HEADER
            ),
            // Anyone can send it: debug only, so a flood does not fill the log.
            origin::Rewrite::Spoofed(_) => tracing::debug!(
                peer = %received.peer.addr,
                "{} from an untrusted source removed",
                origin::SOURCE_HEADER
            ),
        }
        if is_new_call(request) {
            let key = ServerKey::from_request(request).ok();
            self.origin = key.map(|key| (key, rewrite.into_origin()));
        }
    }

    /// A new call past what the bridge takes now: 503 with Retry-After, statelessly
    /// (a retransmission gets the same), before any transaction or routing work.
    fn shed(&mut self, request: &rsip::Request, peer: PeerAddr) {
        self.observers.sip.shed.fetch_add(1, Ordering::Relaxed);
        let response = refusal::refuse(request, EndCause::Overloaded);
        let _ = self.wire.send(&peer, message::encode(&response.into()));
    }

    /// A message rsip (with our repairs) could not read: answer it if it is a request
    /// whose Via, From, To, Call-ID and CSeq can still be found, else drop and count.
    fn reject_unparsable(&mut self, received: &Received, error: &dialbridge_sip::Error) {
        let reply = answers::BRIDGE.reject_unparsable(&received.bytes, error);
        match reply {
            Some(bytes) => {
                tracing::debug!(peer = %received.peer.addr, error = %error, "malformed request answered");
                let peer = received.peer;
                let _ = self.wire.send(&peer, bytes.into());
            }
            None => {
                self.dropped += 1;
                tracing::debug!(peer = %received.peer.addr, error = %error, "unanswerable message dropped");
            }
        }
    }

    fn handle_event(&mut self, event: Event<PeerAddr>, now: Instant) {
        match event {
            Event::NewRequest { key, request, peer } => {
                self.handle_request(key, request, peer, now)
            }
            Event::AckFor2xx {
                invite_key,
                request,
                ..
            } => self.handle_ack(&invite_key, &request, now),
            Event::Cancel { invite_key, .. } => self.handle_cancel(&invite_key, now),
            Event::Response { key, response } if self.is_dial_invite(&key) => {
                self.handle_dial_out_response(&key, &response, now)
            }
            Event::Response { key, response } => {
                let key = TransactionKey::Client(key);
                if !self.handle_probe_response(&key, &response, now) {
                    self.handle_response(&key, &response, now)
                }
            }
            Event::TimedOut {
                key: TransactionKey::Client(key),
            } if self.is_dial_invite(&key) => self.handle_dial_out_timeout(&key, now),
            Event::TimedOut { key } => {
                if !self.handle_probe_timed_out(&key, now) {
                    self.handle_transaction_timeout(&key, now)
                }
            }
            Event::NoAckFor2xx { invite_key } => self.handle_no_ack(&invite_key, now),
            Event::Terminated { key } => {
                if let TransactionKey::Server(k) = &key {
                    // Confirmed calls no longer need their INVITE transaction.
                    if self.by_invite.get(k).is_some_and(|id| {
                        self.calls
                            .get(id)
                            .is_some_and(|c| !c.session.is_unanswered())
                    }) {
                        self.by_invite.remove(k);
                    }
                }
                if let TransactionKey::Client(k) = &key {
                    self.forget_dial_invite(k);
                }
                self.by_client.remove(&key);
                self.forget_probe(&key);
            }
            Event::Refused {
                request,
                peer,
                reason,
            } => {
                let response = match reason {
                    Refusal::Overloaded => refusal::refuse(&request, EndCause::SipOverloaded),
                    Refusal::Malformed(e) => answers::BRIDGE.malformed(&request, &e),
                };
                if request.method != Method::Ack {
                    self.layer.send_stateless(response, peer);
                }
            }
        }
    }

    /// Why this node takes no new call now: it drains, or a shared backend is away.
    fn unavailable(&self) -> Option<EndCause> {
        if self.draining {
            return Some(EndCause::ShuttingDown);
        }
        let services = &self.services;
        let postgres_away = services
            .postgres_health
            .as_ref()
            .is_some_and(|h| !h.is_up());
        let redis_away = services
            .shared_capacity
            .as_ref()
            .is_some_and(|c| !c.is_ready());
        (postgres_away || redis_away).then_some(EndCause::SharedStateUnavailable)
    }

    fn handle_request(
        &mut self,
        key: ServerKey,
        request: rsip::Request,
        peer: PeerAddr,
        now: Instant,
    ) {
        if let Some(response) = answers::BRIDGE.precheck(&request) {
            self.respond(&key, response, now);
            return;
        }
        let in_dialog = message::fields::to_tag(&request.headers).is_some();
        let unavailable = self.unavailable();
        match (request.method, in_dialog) {
            // Draining, or a shared backend away: never admitted (its check, lookups,
            // minutes and record need them; Redis's absence also refuses at the claim,
            // `shared_claim.rs`), and OPTIONS says so, so a load balancer probing the
            // node (Kamailio's dispatcher) stops sending it calls.
            (Method::Invite | Method::Options, false) if let Some(cause) = unavailable => {
                let response = refusal::refuse(&request, cause);
                self.respond(&key, response, now);
            }
            (Method::Invite, false) => self.handle_new_invite(key, request, peer, now),
            (Method::Options, false) => {
                let response = answers::BRIDGE.options(&request);
                self.respond(&key, response, now);
            }
            (Method::Bye | Method::Info | Method::Update, false) => {
                let response = answers::BRIDGE.no_such_dialog(&request);
                self.respond(&key, response, now);
            }
            (_, true) => self.handle_in_dialog(key, request, now),
            _ => {
                let response = answers::BRIDGE.no_such_dialog(&request);
                self.respond(&key, response, now);
            }
        }
    }

    fn respond(&mut self, key: &ServerKey, response: rsip::Response, now: Instant) {
        if let Err(e) = self.layer.respond(key, response, now) {
            tracing::debug!(error = %e, "response not sent");
        }
    }

    /// A call's record is committed: send what waited for it.
    fn recorded(&mut self, after: AfterRecord, now: Instant) {
        self.records_pending = self.records_pending.saturating_sub(1);
        self.after_record(after, now);
    }

    /// The current time as the authenticator's clock: nonces and lock-outs carry
    /// wall-clock time, which nodes sharing them agree on (an `Instant` is per process).
    fn wall_clock() -> SystemTime {
        SystemTime::now()
    }
}

/// The media engine's codec for one SDP negotiated, with the payload type the
/// answer uses (the offer's: Opus has no static one, RFC 7587 §7).
pub(crate) fn media_codec(
    codec: &dialbridge_sip::sdp::Codec,
    payload_type: u8,
) -> Option<dialbridge_media::AudioCodec> {
    dialbridge_media::AudioCodec::from_rtpmap(codec.name, codec.clock_rate, payload_type)
}

/// An INVITE outside any dialog (no To tag): a call that would start.
fn is_new_call(request: &rsip::Request) -> bool {
    use rsip::prelude::HeadersExt;
    request.method == Method::Invite
        && request
            .to_header()
            .ok()
            .and_then(|to| to.tag().ok().flatten())
            .is_none()
}

#[cfg(test)]
mod media_codec_tests {
    use super::media_codec;
    use dialbridge_media::{AudioCodec, Codec};
    use dialbridge_sip::sdp::Codec as SdpCodec;

    #[test]
    fn every_codec_we_answer_maps_to_the_engine() {
        let pcmu = AudioCodec::G711(Codec::Pcmu);
        assert_eq!(media_codec(&SdpCodec::PCMU, 0), Some(pcmu));
        let pcma = AudioCodec::G711(Codec::Pcma);
        assert_eq!(media_codec(&SdpCodec::PCMA, 8), Some(pcma));
        assert_eq!(media_codec(&SdpCodec::G722, 9), Some(AudioCodec::G722));
        // Opus keeps the offer's dynamic payload type.
        let opus = AudioCodec::Opus { payload_type: 109 };
        assert_eq!(media_codec(&SdpCodec::OPUS, 109), Some(opus));
    }
}
