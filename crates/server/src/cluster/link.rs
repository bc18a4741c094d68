//! The legs between nodes: SIP dialogs of the call core's invite sessions
//! ([`UacSession`] on the satellite that places a leg, [`UasSession`] on the home that
//! answers it) over a UDP socket of their own, each with one RTP session between the
//! nodes and, in INFO requests, the meeting's control messages ([`super::wire`]).
//!
//! The socket is not the bridge's SIP port: callers never reach it through the proxy,
//! and a leg is taken only from an address some node recorded as its own in Redis.
//! Each side sends an INFO at least every [`KEEPALIVE`] and one at a time (batching
//! what queued meanwhile, so messages stay in order); a leg that heard nothing from
//! its peer for [`DEAD_AFTER`] is over, which is how a satellite learns its home died
//! well within the five seconds a meeting has to re-form.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialbridge_conference::ivr::{ConferenceId, ConferenceKey, TenantId};
use dialbridge_media::{AudioCodec, MediaEngine, MediaPort, RtpSession};
use dialbridge_shared::MeetingHomes;
use dialbridge_sip::dialog::{Caller, LocalAddress, SessionTimerConfig};
use dialbridge_sip::message::uri::{NameAddr, Uri};
use dialbridge_sip::message::{self, fields};
use dialbridge_sip::rsip::{self, Header, Method, SipMessage};
use dialbridge_sip::sdp::{Codec, LocalMedia, Negotiated};
use dialbridge_sip::session::{Output, SessionEvent, UacSession, UasSession};
use dialbridge_sip::transaction::{
    ClientKey, Event, LayerConfig, PeerAddr, ServerKey, TransactionKey, TransactionLayer,
    TransportKind,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::wire;

/// Each side sends at least this often, an empty batch when it has nothing to say.
pub const KEEPALIVE: Duration = Duration::from_millis(500);
/// A leg whose peer said nothing (no request, no response) this long is over.
pub const DEAD_AFTER: Duration = Duration::from_millis(2000);
/// How long a leg's INVITE may take to be answered.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// How often the task looks at its legs' clocks.
const TICK: Duration = Duration::from_millis(100);

/// What a leg tells the task that owns it.
#[derive(Debug)]
pub enum LegEvent {
    /// One INFO's batch, undecoded (the owner knows which way it flows).
    Batch(Vec<u8>),
    /// The leg is over: BYE, silence past [`DEAD_AFTER`], or an error.
    Ended(&'static str),
}

/// A leg up and running, as its owner holds it: its media and its messages. Dropping
/// it ends the leg with BYE.
#[derive(Debug)]
pub struct Leg {
    pub call_id: String,
    pub rtp: RtpSession,
    pub events: mpsc::UnboundedReceiver<LegEvent>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Leg {
    /// Queues one control message for the peer.
    pub fn send<T: serde::Serialize>(&self, message: &T) {
        self.sender().send(message);
    }

    /// A handle that queues messages on this leg from elsewhere (it does not keep the
    /// leg up).
    pub fn sender(&self) -> LegSender {
        LegSender {
            call_id: self.call_id.clone(),
            commands: self.commands.clone(),
        }
    }
}

/// Queues control messages on a leg; see [`Leg::sender`].
#[derive(Debug, Clone)]
pub struct LegSender {
    call_id: String,
    commands: mpsc::UnboundedSender<Command>,
}

impl LegSender {
    /// Queues one control message for the peer (dropped once the leg is over).
    pub fn send<T: serde::Serialize>(&self, message: &T) {
        if let Ok(json) = serde_json::to_vec(message) {
            let _ = self.commands.send(Command::Send {
                call_id: self.call_id.clone(),
                json,
            });
        }
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Close {
            call_id: self.call_id.clone(),
        });
    }
}

/// A leg a satellite placed to this node, for the meeting it names.
#[derive(Debug)]
pub struct IncomingLeg {
    pub meeting: ConferenceKey,
    pub leg: Leg,
}

/// Why a leg could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// No answer in time, a refusal, or the leg ended before it was up.
    #[error("the home did not take the leg")]
    NoAnswer,
    #[error("no media port for the leg: {0}")]
    Media(String),
    #[error("the link task is gone")]
    Gone,
}

/// This node's end of the legs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Link {
    commands: mpsc::UnboundedSender<Command>,
    addr: SocketAddr,
}

#[derive(Debug)]
enum Command {
    Open {
        to: SocketAddr,
        meeting: String,
        reply: oneshot::Sender<Result<Leg, LinkError>>,
    },
    Send {
        call_id: String,
        json: Vec<u8>,
    },
    Close {
        call_id: String,
    },
    /// The trust check of an incoming leg's source came back.
    Vetted {
        key: ServerKey,
        request: Box<rsip::Request>,
        peer: PeerAddr,
        trusted: bool,
    },
}

impl Link {
    /// Binds the legs' socket on `ip` (any port) and starts the task; incoming legs come
    /// out of the receiver.
    pub async fn start(
        ip: IpAddr,
        media: MediaEngine,
        homes: Arc<std::sync::OnceLock<MeetingHomes>>,
    ) -> std::io::Result<(Link, mpsc::UnboundedReceiver<IncomingLeg>)> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let addr = socket.local_addr()?;
        let (commands, rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let task = LinkTask {
            socket: Arc::new(socket),
            local: addr,
            layer: TransactionLayer::new(LayerConfig::default()),
            legs: HashMap::new(),
            clients: HashMap::new(),
            media,
            homes,
            incoming: incoming_tx,
            commands: commands.clone(),
        };
        tokio::spawn(task.run(rx));
        Ok((Link { commands, addr }, incoming))
    }

    /// Where legs to this node are answered.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Places a leg to the home at `to` for `meeting` and waits for its answer.
    pub async fn open(&self, to: SocketAddr, meeting: &ConferenceKey) -> Result<Leg, LinkError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Open {
                to,
                meeting: meeting_name(meeting),
                reply,
            })
            .map_err(|_| LinkError::Gone)?;
        answer.await.map_err(|_| LinkError::Gone)?
    }
}

/// `tenant/conference-id`, as the leg's INVITE names the meeting.
pub fn meeting_name(key: &ConferenceKey) -> String {
    format!("{}/{}", key.tenant.as_str(), key.id.as_str())
}

fn parse_meeting(value: &str) -> Option<ConferenceKey> {
    let (tenant, id) = value.trim().rsplit_once('/')?;
    if tenant.is_empty() {
        return None;
    }
    Some(ConferenceKey {
        tenant: TenantId::new(tenant),
        id: ConferenceId::parse(id).ok()?,
    })
}

enum Side {
    /// We placed it; until answered, its port and who waits for it.
    Uac {
        session: Box<UacSession>,
        port: Option<MediaPort>,
        opening: Option<oneshot::Sender<Result<Leg, LinkError>>>,
        invite: ClientKey,
        deadline: Instant,
    },
    /// We answered it.
    Uas {
        session: Box<UasSession>,
        invite: ServerKey,
    },
}

struct LegState {
    side: Side,
    peer: PeerAddr,
    events: Option<mpsc::UnboundedSender<LegEvent>>,
    queue: Vec<Vec<u8>>,
    in_flight: Option<ClientKey>,
    last_heard: Instant,
    last_sent: Instant,
    /// Confirmed: INFO may flow.
    up: bool,
}

struct LinkTask {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    layer: TransactionLayer<PeerAddr>,
    legs: HashMap<String, LegState>,
    /// Our client transactions, by key: the leg's Call-ID.
    clients: HashMap<ClientKey, String>,
    media: MediaEngine,
    homes: Arc<std::sync::OnceLock<MeetingHomes>>,
    incoming: mpsc::UnboundedSender<IncomingLeg>,
    commands: mpsc::UnboundedSender<Command>,
}

impl LinkTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 65_536];
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.layer.poll_timeout();
            let timer = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let socket = self.socket.clone();
            tokio::select! {
                received = socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => self.datagram(&buf[..n], from, Instant::now()),
                    Err(e) => tracing::debug!(error = %e, "leg socket"),
                },
                command = commands.recv() => match command {
                    Some(command) => self.command(command, Instant::now()),
                    None => break,
                },
                _ = timer => self.layer.handle_timeout(Instant::now()),
                _ = tick.tick() => self.clocks(Instant::now()),
            }
            self.drain(Instant::now());
        }
    }

    fn datagram(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        let peer = PeerAddr {
            transport: TransportKind::Udp,
            addr: from,
            connection: None,
        };
        match message::parse(bytes) {
            Ok(SipMessage::Request(request)) => self.layer.handle_request(request, peer, now),
            Ok(SipMessage::Response(response)) => self.layer.handle_response(response, now),
            Err(e) => tracing::debug!(%from, error = %e, "leg socket: not SIP"),
        }
    }

    fn command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Open { to, meeting, reply } => self.open(to, &meeting, reply, now),
            Command::Send { call_id, json } => {
                if let Some(leg) = self.legs.get_mut(&call_id) {
                    leg.queue.push(json);
                }
            }
            Command::Close { call_id } => self.close(
                &call_id,
                "SIP;cause=200;text=\"leg closed\"",
                "closed by its owner",
                now,
            ),
            Command::Vetted {
                key,
                request,
                peer,
                trusted,
            } => self.answer(key, *request, peer, trusted, now),
        }
    }

    fn open(
        &mut self,
        to: SocketAddr,
        meeting: &str,
        reply: oneshot::Sender<Result<Leg, LinkError>>,
        now: Instant,
    ) {
        let port = match self.media.reserve(SocketAddr::new(self.local.ip(), 0)) {
            Ok(port) => port,
            Err(e) => {
                let _ = reply.send(Err(LinkError::Media(e.to_string())));
                return;
            }
        };
        let Some(mut session) = uac_session(self.local, to, &port) else {
            let _ = reply.send(Err(LinkError::Media("bad leg address".into())));
            return;
        };
        let invite = session.invite(vec![
            Header::Other(wire::MEETING_HEADER.into(), meeting.into()),
            Header::Other("Allow".into(), UacSession::ALLOW.into()),
        ]);
        let call_id = session.call_id().to_string();
        let peer = udp(to);
        let key = match self.layer.send_request(invite, peer, now) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(error = %e, "leg INVITE not sent");
                let _ = reply.send(Err(LinkError::NoAnswer));
                return;
            }
        };
        self.clients.insert(key.clone(), call_id.clone());
        self.legs.insert(
            call_id,
            LegState {
                side: Side::Uac {
                    session: Box::new(session),
                    port: Some(port),
                    opening: Some(reply),
                    invite: key,
                    deadline: now + ANSWER_WAIT,
                },
                peer,
                events: None,
                queue: Vec::new(),
                in_flight: None,
                last_heard: now,
                last_sent: now,
                up: false,
            },
        );
    }

    /// A new request from the layer.
    fn request(&mut self, key: ServerKey, request: rsip::Request, peer: PeerAddr, now: Instant) {
        let call_id = fields::call_id(&request.headers)
            .unwrap_or_default()
            .to_string();
        if let Some(leg) = self.legs.get_mut(&call_id) {
            leg.last_heard = now;
            let response = match &mut leg.side {
                Side::Uac { session, .. } => session.handle_request(&request, now),
                Side::Uas { session, .. } => session.handle_request(&request, now),
            };
            if request.method == Method::Info
                && response
                    .as_ref()
                    .is_some_and(|r| r.status_code.code() == 200)
                && let Some(events) = &leg.events
            {
                let _ = events.send(LegEvent::Batch(request.body.clone()));
            }
            if let Some(response) = response {
                let _ = self.layer.respond(&key, response, now);
            }
            self.outputs(&call_id, now);
            return;
        }
        if request.method != Method::Invite || fields::to_tag(&request.headers).is_some() {
            let response = fields::response_for(&request, 481, None, None);
            let _ = self.layer.respond(&key, response, now);
            return;
        }
        // A new leg: vetted off this task (a Redis round trip), answered when back.
        let Some(homes) = self.homes.get().cloned() else {
            let response = fields::response_for(&request, 503, None, None);
            let _ = self.layer.respond(&key, response, now);
            return;
        };
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let trusted = homes.is_node(peer.addr).await.unwrap_or(false);
            let _ = commands.send(Command::Vetted {
                key,
                request: Box::new(request),
                peer,
                trusted,
            });
        });
    }

    /// Answers a vetted leg INVITE: 403 from a stranger, 400 without a meeting, 488
    /// without a codec in common, else 200 with our media.
    fn answer(
        &mut self,
        key: ServerKey,
        request: rsip::Request,
        peer: PeerAddr,
        trusted: bool,
        now: Instant,
    ) {
        let refuse = |layer: &mut TransactionLayer<PeerAddr>, status: u16, why: &str| {
            let response = fields::response_for(&request, status, Some(why), None);
            let _ = layer.respond(&key, response, now);
        };
        if !trusted {
            tracing::warn!(from = %peer.addr, "a leg INVITE from an address no node recorded: refused");
            return refuse(&mut self.layer, 403, "not a node of this deployment");
        }
        let meeting = request.headers.iter().find_map(|h| match h {
            Header::Other(name, value) if name.eq_ignore_ascii_case(wire::MEETING_HEADER) => {
                parse_meeting(value)
            }
            _ => None,
        });
        let Some(meeting) = meeting else {
            return refuse(&mut self.layer, 400, "no meeting named");
        };
        let local = LocalAddress::new("dialbridge-leg", self.local, rsip::Transport::Udp);
        let mut session =
            match UasSession::new(request.clone(), local, &SessionTimerConfig::default(), now) {
                Ok(session) => session,
                Err(response) => {
                    let _ = self.layer.respond(&key, *response, now);
                    return;
                }
            };
        let negotiated = match session.accept_offer(leg_media(self.local.ip(), 0)) {
            Ok(negotiated) => negotiated,
            Err(_) => return refuse(&mut self.layer, 488, "no codec in common"),
        };
        let Some(codec) = codec_of(&negotiated) else {
            return refuse(&mut self.layer, 488, "no codec in common");
        };
        let rtp = match self.media.open(negotiated.remote_rtp, codec, None) {
            Ok(rtp) => rtp,
            Err(_) => return refuse(&mut self.layer, 503, "no media port"),
        };
        rtp.set_deliver_audio(false);
        rtp.set_steady_stream(true);
        let session_id = u64::from(rand::random::<u32>());
        if session
            .bind_media(self.local.ip(), rtp.local_port(), session_id)
            .is_err()
        {
            return refuse(&mut self.layer, 488, "no codec in common");
        }
        let response = session.answer(now);
        let _ = self.layer.respond(&key, response, now);
        let call_id = fields::call_id(&request.headers)
            .unwrap_or_default()
            .to_string();
        let (events_tx, events) = mpsc::unbounded_channel();
        tracing::info!(from = %peer.addr, meeting = %meeting_name(&meeting), call_id, "leg from a node answered");
        self.legs.insert(
            call_id.clone(),
            LegState {
                side: Side::Uas {
                    session: Box::new(session),
                    invite: key,
                },
                peer,
                events: Some(events_tx),
                queue: Vec::new(),
                in_flight: None,
                last_heard: now,
                last_sent: now,
                up: false,
            },
        );
        let leg = Leg {
            call_id,
            rtp,
            events,
            commands: self.commands.clone(),
        };
        let _ = self.incoming.send(IncomingLeg { meeting, leg });
    }

    fn response(&mut self, key: ClientKey, response: rsip::Response, now: Instant) {
        let Some(call_id) = self.clients.get(&key).cloned() else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&call_id) else {
            return;
        };
        leg.last_heard = now;
        let code = response.status_code.code();
        match &mut leg.side {
            Side::Uac {
                session, invite, ..
            } if *invite == key => session.handle_invite_response(&response, now),
            Side::Uac { session, .. } => session.handle_response(&response, now),
            Side::Uas { session, .. } => session.handle_response(&response, now),
        }
        if leg.in_flight.as_ref() == Some(&key) && code >= 200 {
            leg.in_flight = None;
        }
        self.outputs(&call_id, now);
    }

    fn timed_out(&mut self, key: TransactionKey, now: Instant) {
        let TransactionKey::Client(key) = key else {
            return;
        };
        if let Some(call_id) = self.clients.remove(&key) {
            self.end(&call_id, "no answer", now);
        }
    }

    /// What each leg's session wants done.
    fn outputs(&mut self, call_id: &str, now: Instant) {
        loop {
            let Some(leg) = self.legs.get_mut(call_id) else {
                return;
            };
            let output = match &mut leg.side {
                Side::Uac { session, .. } => session.poll_output(),
                Side::Uas { session, .. } => session.poll_output(),
            };
            let Some(output) = output else {
                return;
            };
            let peer = leg.peer;
            match output {
                Output::RespondInvite(response) => {
                    if let Side::Uas { invite, .. } = &leg.side {
                        let invite = invite.clone();
                        let _ = self.layer.respond(&invite, response, now);
                    }
                }
                Output::Request(request) => {
                    if let Ok(key) = self.layer.send_request(request, peer, now) {
                        self.clients.insert(key, call_id.to_string());
                    }
                }
                Output::Ack(ack) => self.layer.send_stateless(ack, peer),
                Output::Event(SessionEvent::Answered) => self.answered(call_id),
                Output::Event(SessionEvent::Confirmed) => leg.up = true,
                Output::Event(SessionEvent::Ended(_) | SessionEvent::MustEnd(_)) => {
                    self.end(call_id, "the peer ended it", now);
                    return;
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Our leg's 2xx came: its media opens on the reserved port, and whoever waits
    /// gets the leg.
    fn answered(&mut self, call_id: &str) {
        let Some(leg) = self.legs.get_mut(call_id) else {
            return;
        };
        let Side::Uac {
            session,
            port,
            opening,
            ..
        } = &mut leg.side
        else {
            return;
        };
        let (Some(negotiated), Some(port), Some(reply)) =
            (session.negotiated().cloned(), port.take(), opening.take())
        else {
            return;
        };
        let opened = codec_of(&negotiated)
            .ok_or_else(|| LinkError::Media("no codec in common".into()))
            .and_then(|codec| {
                self.media
                    .open_reserved(port, negotiated.remote_rtp, codec, None)
                    .map_err(|e| LinkError::Media(e.to_string()))
            });
        match opened {
            Ok(rtp) => {
                rtp.set_deliver_audio(false);
                rtp.set_steady_stream(true);
                let (events_tx, events) = mpsc::unbounded_channel();
                leg.events = Some(events_tx);
                leg.up = true;
                let _ = reply.send(Ok(Leg {
                    call_id: call_id.to_string(),
                    rtp,
                    events,
                    commands: self.commands.clone(),
                }));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                self.close(
                    call_id,
                    "SIP;cause=488;text=\"no media\"",
                    "no media",
                    Instant::now(),
                );
            }
        }
    }

    /// Keepalives, batches, the answer wait and the silence that ends a leg.
    fn clocks(&mut self, now: Instant) {
        let mut dead = Vec::new();
        for (call_id, leg) in &mut self.legs {
            if let Side::Uac {
                opening: Some(_),
                deadline,
                ..
            } = &leg.side
                && now >= *deadline
            {
                dead.push((call_id.clone(), "no answer"));
                continue;
            }
            if leg.up && now.duration_since(leg.last_heard) >= DEAD_AFTER {
                dead.push((call_id.clone(), "the peer went silent"));
            }
        }
        for (call_id, why) in dead {
            self.end(&call_id, why, now);
        }
        let ids: Vec<String> = self.legs.keys().cloned().collect();
        for call_id in ids {
            self.flush(&call_id, now);
        }
    }

    /// Sends what queued (or a keepalive when due) in one INFO, if none is in flight.
    fn flush(&mut self, call_id: &str, now: Instant) {
        let Some(leg) = self.legs.get_mut(call_id) else {
            return;
        };
        if !leg.up
            || leg.in_flight.is_some()
            || (leg.queue.is_empty() && now.duration_since(leg.last_sent) < KEEPALIVE)
        {
            return;
        }
        let mut body = Vec::with_capacity(2 + leg.queue.iter().map(|m| m.len() + 1).sum::<usize>());
        body.push(b'[');
        for (i, message) in leg.queue.drain(..).enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&message);
        }
        body.push(b']');
        let request = match &mut leg.side {
            Side::Uac { session, .. } => {
                session.request(Method::Info, Some((wire::CONTENT_TYPE, body)), now)
            }
            Side::Uas { session, .. } => {
                session.request(Method::Info, Some((wire::CONTENT_TYPE, body)), now)
            }
        };
        let Some(request) = request else {
            return;
        };
        leg.last_sent = now;
        match self.layer.send_request(request, leg.peer, now) {
            Ok(key) => {
                leg.in_flight = Some(key.clone());
                self.clients.insert(key, call_id.to_string());
            }
            Err(e) => tracing::debug!(error = %e, "leg INFO not sent"),
        }
    }

    /// Ends a leg from our side with BYE (when it was up) and tells its owner.
    fn close(&mut self, call_id: &str, reason: &str, why: &'static str, now: Instant) {
        let Some(mut leg) = self.legs.remove(call_id) else {
            return;
        };
        let bye = match &mut leg.side {
            Side::Uac { session, .. } => session.hang_up(reason, now),
            Side::Uas { session, .. } => match session.hang_up(reason, now) {
                Some(dialbridge_sip::session::Hangup::Bye(bye)) => Some(bye),
                Some(dialbridge_sip::session::Hangup::Respond(response)) => {
                    if let Side::Uas { invite, .. } = &leg.side {
                        let _ = self.layer.respond(invite, response, now);
                    }
                    None
                }
                None => None,
            },
        };
        // A BYE, or a CANCEL of a leg not answered yet; their answers change nothing.
        if let Some(request) = bye {
            let _ = self.layer.send_request(request, leg.peer, now);
        }
        self.finish(leg, why);
    }

    /// The leg is over for a reason of the peer's or the clock's.
    fn end(&mut self, call_id: &str, why: &'static str, now: Instant) {
        let Some(leg) = self.legs.get(call_id) else {
            return;
        };
        tracing::info!(call_id, peer = %leg.peer.addr, why, "leg ended");
        self.close(call_id, "SIP;cause=408;text=\"leg lost\"", why, now);
    }

    fn finish(&mut self, mut leg: LegState, why: &'static str) {
        let legs = &self.legs;
        self.clients.retain(|_, id| legs.contains_key(id));
        if let Side::Uac { opening, .. } = &mut leg.side
            && let Some(reply) = opening.take()
        {
            let _ = reply.send(Err(LinkError::NoAnswer));
        }
        if let Some(events) = leg.events.take() {
            let _ = events.send(LegEvent::Ended(why));
        }
    }

    /// Everything the layer has to say and send.
    fn drain(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(event) = self.layer.poll_event() {
                busy = true;
                match event {
                    Event::NewRequest { key, request, peer } => {
                        self.request(key, request, peer, now)
                    }
                    Event::AckFor2xx { request, .. } => {
                        let call_id = fields::call_id(&request.headers)
                            .unwrap_or_default()
                            .to_string();
                        if let Some(leg) = self.legs.get_mut(&call_id)
                            && let Side::Uas { session, .. } = &mut leg.side
                        {
                            leg.last_heard = now;
                            session.handle_ack(&request, now);
                        }
                        self.outputs(&call_id, now);
                    }
                    Event::Response { key, response } => self.response(key, response, now),
                    Event::TimedOut { key } => self.timed_out(key, now),
                    Event::NoAckFor2xx { invite_key } => {
                        let call_id = self.legs.iter().find_map(|(id, leg)| match &leg.side {
                            Side::Uas { invite, .. } if *invite == invite_key => Some(id.clone()),
                            _ => None,
                        });
                        if let Some(call_id) = call_id {
                            self.end(&call_id, "no ACK", now);
                        }
                    }
                    Event::Terminated { key } => {
                        if let TransactionKey::Client(key) = key {
                            self.clients.remove(&key);
                        }
                    }
                    Event::Cancel { .. } | Event::Refused { .. } => {}
                }
            }
            while let Some(transmit) = self.layer.poll_transmit() {
                busy = true;
                let bytes = transmit.message.to_string();
                if let Err(e) = self
                    .socket
                    .try_send_to(bytes.as_bytes(), transmit.peer.addr)
                {
                    tracing::debug!(error = %e, to = %transmit.peer.addr, "leg send");
                }
            }
            let ids: Vec<String> = self
                .legs
                .iter()
                .filter(|(_, leg)| !leg.queue.is_empty() && leg.in_flight.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            for call_id in ids {
                busy = true;
                self.flush(&call_id, now);
            }
            if !busy {
                return;
            }
        }
    }
}

fn udp(addr: SocketAddr) -> PeerAddr {
    PeerAddr {
        transport: TransportKind::Udp,
        addr,
        connection: None,
    }
}

/// What a leg offers and answers: G.722 (the mix is 16 kHz), then G.711; no DTMF (the
/// members' digits travel as messages).
fn leg_media(ip: IpAddr, port: u16) -> LocalMedia {
    let session_id = u64::from(rand::random::<u32>());
    let mut media = LocalMedia::g711(ip, port, session_id);
    media.codecs.insert(0, Codec::G722);
    media.telephone_event = false;
    media
}

fn codec_of(negotiated: &Negotiated) -> Option<AudioCodec> {
    AudioCodec::from_rtpmap(
        negotiated.codec.name,
        negotiated.codec.clock_rate,
        negotiated.payload_type,
    )
}

/// The calling side of a leg from our socket at `local` to the home's at `to`.
fn uac_session(local: SocketAddr, to: SocketAddr, port: &MediaPort) -> Option<UacSession> {
    let target = format!("sip:dialbridge-leg@{to}");
    let uri = Uri::parse(&target).ok()?;
    let to_addr = NameAddr::parse(&format!("<{target}>")).ok()?;
    let from = NameAddr::parse(&format!("<sip:dialbridge-leg@{local}>")).ok()?;
    let address = LocalAddress::new("dialbridge-leg", local, rsip::Transport::Udp);
    let caller = Caller::new(from, to_addr, uri, address, "dialbridge-leg");
    let media = port.local_addr();
    Some(UacSession::new(
        caller,
        leg_media(media.ip(), media.port()),
        SessionTimerConfig::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meeting_name_reads_back_and_junk_does_not() {
        let key = parse_meeting("contoso/123456789").unwrap();
        assert_eq!(meeting_name(&key), "contoso/123456789");
        assert!(parse_meeting("contoso").is_none());
        assert!(parse_meeting("/123456789").is_none());
        assert!(parse_meeting("contoso/12ab").is_none());
    }
}
