//! The media engine (feature `tokio`): the RTP port pool, one UDP socket pair per
//! participant, conference rooms, and ONE clock task that paces every session's 20 ms
//! packets and mixes every room.
//!
//! Why one clock: a timer per participant means thousands of timer wake-ups every
//! 20 ms on a 2-core machine, each switching to a different task. Here a single
//! `tokio::time::interval` wakes once per tick, takes the table lock once and walks
//! every room and session, encoding into scratch buffers it owns and sending with the
//! non-blocking `try_send_to` (a full socket buffer drops the packet: late audio is
//! worthless). Nothing is allocated per tick or per packet. Receiving is still one
//! task per session (batching with recvmmsg/sendmmsg is the planned next step).
//!
//! Symmetric RTP (RFC 4961): we send to the address the SDP gave and re-latch only to
//! a source with the same IP (a NAT or SBC that changed the port); packets from any
//! other IP are dropped, so a stranger cannot hijack or inject into the stream.
//! A re-INVITE moves the stream with [`RtpSession::set_remote`]; hold (RFC 3264
//! §8.4) pauses it with [`RtpSession::set_sending`], timestamps running on.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::jitter::{Concealer, JitterBuffer, JitterConfig};
use crate::mixer::{Frame, MixerSlot, SILENCE};
use crate::rtp::HEADER_LEN;
use crate::{
    Codec, Error, FRAME_MS, FRAME_SAMPLES, Playback, PortAllocator, Prompt, RtpSender, RtpView,
};

mod room;

pub use room::RoomId;
use room::RoomState;

/// Inbound packets queued per session before new ones are dropped (about 1.3 s).
pub const INBOUND_QUEUE: usize = 64;
/// Largest datagram we accept; anything longer is truncated by the kernel and then
/// fails to parse or carries a cut payload.
const MAX_DATAGRAM: usize = 1500;
/// Receive buffer per session: datagrams are split off it, so the allocation is
/// reused once the consumer has dropped earlier packets (amortised, not per packet).
const RECV_BUFFER: usize = 16 * 1024;

/// Owns the port pool, the session and room table and the clock task.
#[derive(Debug, Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    address: IpAddr,
    ports: Mutex<PortAllocator>,
    table: Mutex<Table>,
    next_id: AtomicU64,
    /// Clock counters: ticks run, and the duration of the last and longest tick.
    ticks: AtomicU64,
    last_tick_ns: AtomicU64,
    max_tick_ns: AtomicU64,
    /// The runtime the engine was created in: sockets register with its reactor and
    /// receive tasks run on it, whichever thread calls [`MediaEngine::open`].
    runtime: tokio::runtime::Handle,
}

impl MediaEngine {
    /// An engine binding RTP on `address`, on the even ports of `ports` (RTCP on
    /// port + 1), and starts the clock task. Must be called inside a tokio runtime.
    pub fn new(address: IpAddr, ports: RangeInclusive<u16>) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let inner = Arc::new(Inner {
            address,
            ports: Mutex::new(PortAllocator::new(*ports.start(), *ports.end())?),
            table: Mutex::new(Table::default()),
            next_id: AtomicU64::new(1),
            ticks: AtomicU64::new(0),
            last_tick_ns: AtomicU64::new(0),
            max_tick_ns: AtomicU64::new(0),
            runtime: runtime.clone(),
        });
        runtime.spawn(run_clock(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// The media address sessions bind on (and the SDP `c=` line should carry).
    pub fn address(&self) -> IpAddr {
        self.inner.address
    }

    /// Sessions currently open.
    pub fn session_count(&self) -> usize {
        lock(&self.inner.table).sessions.len()
    }

    /// Port pairs currently bound.
    pub fn ports_in_use(&self) -> usize {
        lock(&self.inner.ports).in_use()
    }

    /// Gauges and clock timings, for metrics. A tick close to 20 ms means the machine
    /// cannot keep up with the participants it carries.
    pub fn stats(&self) -> EngineStats {
        let (sessions, rooms) = {
            let table = lock(&self.inner.table);
            (table.sessions.len(), table.rooms.len())
        };
        EngineStats {
            sessions,
            rooms,
            ports_in_use: self.ports_in_use(),
            ticks: self.inner.ticks.load(Ordering::Relaxed),
            last_tick: Duration::from_nanos(self.inner.last_tick_ns.load(Ordering::Relaxed)),
            max_tick: Duration::from_nanos(self.inner.max_tick_ns.load(Ordering::Relaxed)),
        }
    }

    /// Opens a session: binds the next free even port (and port + 1 for RTCP) and
    /// starts sending 20 ms `codec` packets to `remote` (from the SDP) at once —
    /// silence until [`RtpSession::play`] or [`RtpSession::join_room`]. Packets from
    /// `remote`'s IP are delivered by [`RtpSession::recv`]; `telephone_event_pt` is
    /// the negotiated RFC 4733 payload type, kept for the consumer.
    ///
    /// Synchronous: binding a UDP socket does not block, so signaling code can open
    /// media in the middle of handling an INVITE.
    pub fn open(
        &self,
        remote: SocketAddr,
        codec: Codec,
        telephone_event_pt: Option<u8>,
    ) -> Result<RtpSession, Error> {
        let _runtime = self.inner.runtime.enter();
        let bound = Arc::new(self.bind_pair()?);
        let local = bound.rtp.local_addr()?;
        let sender = RtpSender::new(codec.payload_type())?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let jitter = Arc::new(Mutex::new(JitterBuffer::new(JitterConfig::default())));
        let in_room = Arc::new(AtomicBool::new(false));
        lock(&self.inner.table).sessions.insert(
            id,
            Outbound {
                bound: bound.clone(),
                remote,
                codec,
                sender,
                playback: None,
                room: None,
                muted: false,
                jitter: jitter.clone(),
                in_room: in_room.clone(),
                concealer: Concealer::default(),
                sending: true,
            },
        );
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let expected = Arc::new(Mutex::new(remote));
        let audio = AudioSink {
            payload_type: codec.payload_type(),
            jitter,
            in_room,
        };
        let receiver = self.inner.runtime.spawn(run_receive(
            bound.clone(),
            Arc::downgrade(&self.inner),
            id,
            expected.clone(),
            tx,
            audio,
        ));
        Ok(RtpSession {
            id,
            inner: self.inner.clone(),
            bound,
            local,
            codec,
            telephone_event_pt,
            inbound: Some(rx),
            receiver: Some(receiver),
            expected,
        })
    }

    /// Binds RTP and RTCP on the next free pair, skipping ports another process holds.
    /// Must run inside the runtime's context (`open` enters it).
    fn bind_pair(&self) -> Result<Bound, Error> {
        let (capacity, (low, high)) = {
            let ports = lock(&self.inner.ports);
            (ports.capacity(), ports.bounds())
        };
        for _ in 0..capacity {
            let Some(port) = lock(&self.inner.ports).allocate() else {
                break;
            };
            let lease = PortLease {
                inner: Arc::downgrade(&self.inner),
                port,
            };
            let address = self.inner.address;
            // On failure `lease` drops here and gives the port back; the round-robin
            // cursor has moved on, so the next iteration tries the next port.
            match bind_udp(address, port) {
                Ok(rtp) => match bind_udp(address, port + 1) {
                    Ok(rtcp) => return Ok(Bound::new(rtp, rtcp, lease)),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                    Err(e) => return Err(e.into()),
                },
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::NoFreePort { low, high })
    }
}

/// One participant's RTP stream. Dropping it (or [`RtpSession::close`]) stops
/// sending, stops receiving, leaves its room and frees the port pair.
#[derive(Debug)]
pub struct RtpSession {
    id: u64,
    inner: Arc<Inner>,
    bound: Arc<Bound>,
    local: SocketAddr,
    codec: Codec,
    telephone_event_pt: Option<u8>,
    inbound: Option<mpsc::Receiver<InboundRtp>>,
    receiver: Option<JoinHandle<()>>,
    /// The SDP address, shared with the receive task (which accepts only its IP).
    expected: Arc<Mutex<SocketAddr>>,
}

/// A received RTP packet, with the header fields a consumer needs (the conference
/// decodes RFC 4733 telephone-events and G.711 audio from these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRtp {
    /// PT.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The payload, padding removed (a slice of the receive buffer: no copy).
    pub payload: Bytes,
    /// Where it came from.
    pub source: SocketAddr,
    /// When it was read from the socket.
    pub received_at: Instant,
}

/// Engine-wide gauges and clock timings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Sessions open.
    pub sessions: usize,
    /// Rooms open.
    pub rooms: usize,
    /// RTP port pairs bound.
    pub ports_in_use: usize,
    /// Clock ticks run.
    pub ticks: u64,
    /// How long the last tick took (mixing, encoding, sending for everyone).
    pub last_tick: Duration,
    /// The longest tick so far.
    pub max_tick: Duration,
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// RTP packets sent.
    pub sent: u64,
    /// Packets not sent because the socket buffer was full or the send failed.
    pub send_dropped: u64,
    /// RTP packets received from the remote and queued.
    pub received: u64,
    /// Packets dropped: malformed, from a foreign IP, or the inbound queue was full.
    pub receive_dropped: u64,
}

/// How a [`RtpSession::play`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayEnd {
    /// The prompt was played out to its end.
    Finished,
    /// Another play, a stop or the session's end cut it short.
    Interrupted,
}

/// Resolves when a played prompt ends. May be dropped if nobody cares; may be polled
/// again after it resolved (it keeps answering the same).
#[derive(Debug)]
pub struct PlayDone {
    rx: oneshot::Receiver<PlayEnd>,
    ended: Option<PlayEnd>,
}

impl Future for PlayDone {
    type Output = PlayEnd;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PlayEnd> {
        if let Some(end) = self.ended {
            return Poll::Ready(end);
        }
        let end =
            std::task::ready!(Pin::new(&mut self.rx).poll(cx)).unwrap_or(PlayEnd::Interrupted);
        self.ended = Some(end);
        Poll::Ready(end)
    }
}

impl RtpSession {
    /// The local RTP port (for the SDP answer's `m=audio` line).
    pub fn local_port(&self) -> u16 {
        self.local.port()
    }

    /// The local RTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The codec this session sends.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The negotiated RFC 4733 payload type, if any.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.telephone_event_pt
    }

    /// Where packets are currently sent (the SDP address, or the re-latched one).
    pub fn remote(&self) -> Option<SocketAddr> {
        lock(&self.inner.table)
            .sessions
            .get(&self.id)
            .map(|o| o.remote)
    }

    /// Plays `prompt` from its start, replacing whatever this session played; loops
    /// when `repeat`. In a room the prompt is mixed over the room's audio, for this
    /// participant only. The returned future says when (and how) it ended.
    pub fn play(&self, prompt: Arc<Prompt>, repeat: bool) -> PlayDone {
        let (done, rx) = oneshot::channel();
        if let Some(o) = lock(&self.inner.table).sessions.get_mut(&self.id) {
            o.interrupt();
            o.playback = Some((Playback::new(prompt, repeat), done));
        }
        PlayDone { rx, ended: None }
    }

    /// Points the stream at a new address (a re-INVITE's SDP): packets go there from
    /// the next tick, and only packets from its IP are accepted.
    pub fn set_remote(&self, remote: SocketAddr) {
        *lock(&self.expected) = remote;
        if let Some(o) = lock(&self.inner.table).sessions.get_mut(&self.id) {
            o.remote = remote;
        }
    }

    /// Pauses (`false`) or resumes sending, for hold: RFC 3264 §8.4 `sendonly` or
    /// `inactive` from the far end means it does not want our media. Timestamps keep
    /// running while paused and the first packet after carries the marker.
    pub fn set_sending(&self, sending: bool) {
        if let Some(o) = lock(&self.inner.table).sessions.get_mut(&self.id) {
            o.sending = sending;
        }
    }

    /// Stops playing: silence (or the room) from the next tick.
    pub fn stop(&self) {
        if let Some(o) = lock(&self.inner.table).sessions.get_mut(&self.id) {
            o.interrupt();
        }
    }

    /// True while a prompt is playing.
    pub fn is_playing(&self) -> bool {
        lock(&self.inner.table)
            .sessions
            .get(&self.id)
            .is_some_and(|o| o.playback.is_some())
    }

    /// The next received packet; `None` once the session is closed or the receiver
    /// was taken with [`RtpSession::take_inbound`].
    pub async fn recv(&mut self) -> Option<InboundRtp> {
        self.inbound.as_mut()?.recv().await
    }

    /// A received packet if one is queued.
    pub fn try_recv(&mut self) -> Option<InboundRtp> {
        self.inbound.as_mut()?.try_recv().ok()
    }

    /// Moves the inbound queue out, e.g. into the conference's task.
    pub fn take_inbound(&mut self) -> Option<mpsc::Receiver<InboundRtp>> {
        self.inbound.take()
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.bound.stats()
    }

    /// Stops sending and receiving and waits until the port pair is free again.
    pub async fn close(mut self) {
        self.detach();
        if let Some(task) = self.receiver.take() {
            task.abort();
            // The aborted task drops its socket handle; waiting makes the port free
            // when this returns.
            let _ = task.await;
        }
    }

    fn detach(&mut self) {
        let mut table = lock(&self.inner.table);
        let removed = table.sessions.remove(&self.id);
        if let Some(mut o) = removed {
            o.interrupt();
            if let Some((room, slot)) = o.room {
                table.remove_member(room, self.id, slot);
            }
        }
    }
}

impl Drop for RtpSession {
    fn drop(&mut self) {
        self.detach();
        if let Some(task) = self.receiver.take() {
            task.abort();
        }
    }
}

/// A bound RTP/RTCP pair; the port goes back to the pool when the last handle drops.
#[derive(Debug)]
struct Bound {
    rtp: UdpSocket,
    // Held so the RTCP port stays ours; RTCP is not processed yet.
    _rtcp: UdpSocket,
    sent: AtomicU64,
    send_dropped: AtomicU64,
    received: AtomicU64,
    receive_dropped: AtomicU64,
    // Last field: dropped after the sockets are closed.
    _lease: PortLease,
}

impl Bound {
    fn new(rtp: UdpSocket, rtcp: UdpSocket, lease: PortLease) -> Self {
        Self {
            rtp,
            _rtcp: rtcp,
            sent: AtomicU64::new(0),
            send_dropped: AtomicU64::new(0),
            received: AtomicU64::new(0),
            receive_dropped: AtomicU64::new(0),
            _lease: lease,
        }
    }

    fn stats(&self) -> SessionStats {
        SessionStats {
            sent: self.sent.load(Ordering::Relaxed),
            send_dropped: self.send_dropped.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            receive_dropped: self.receive_dropped.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct PortLease {
    inner: Weak<Inner>,
    port: u16,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            lock(&inner.ports).release(self.port);
        }
    }
}

/// Every session and every room, under the one lock the clock takes per tick.
#[derive(Debug, Default)]
struct Table {
    sessions: HashMap<u64, Outbound>,
    rooms: HashMap<u64, RoomState>,
}

impl Table {
    /// One 20 ms tick: every room mixes and sends to its members, then every session
    /// outside a room sends its prompt or silence.
    fn tick(&mut self, scratch: &mut Scratch, now: std::time::Instant) {
        let Table { sessions, rooms } = self;
        for room in rooms.values_mut() {
            room.tick(sessions, scratch, now);
        }
        for outbound in sessions.values_mut().filter(|o| o.room.is_none()) {
            outbound.tick(scratch);
        }
    }
}

/// The clock's buffers, reused every tick.
#[derive(Debug)]
struct Scratch {
    pcm: Frame,
    prompt: Frame,
    packet: [u8; HEADER_LEN + FRAME_SAMPLES],
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            pcm: SILENCE,
            prompt: SILENCE,
            packet: [0; HEADER_LEN + FRAME_SAMPLES],
        }
    }
}

/// The sending half of a session, owned by the table and driven by the clock.
#[derive(Debug)]
struct Outbound {
    bound: Arc<Bound>,
    remote: SocketAddr,
    codec: Codec,
    sender: RtpSender,
    playback: Option<(Playback, oneshot::Sender<PlayEnd>)>,
    /// The room and mixer slot, while in a room.
    room: Option<(u64, MixerSlot)>,
    muted: bool,
    /// Filled by the receive task while in a room, drained by the clock.
    jitter: Arc<Mutex<JitterBuffer<Bytes>>>,
    /// Tells the receive task to fill `jitter`.
    in_room: Arc<AtomicBool>,
    concealer: Concealer,
    /// False while the far end holds the call (RFC 3264 §8.4 `sendonly`/`inactive`).
    sending: bool,
}

impl Outbound {
    /// Sends one 20 ms packet of prompt or silence (outside a room).
    fn tick(&mut self, scratch: &mut Scratch) {
        scratch.pcm = SILENCE;
        self.mix_prompt(&mut scratch.pcm, &mut scratch.prompt);
        self.encode_and_send(&scratch.pcm, &mut scratch.packet);
    }

    /// Adds the next frame of the playing prompt (if any) to `pcm`, saturating.
    fn mix_prompt(&mut self, pcm: &mut Frame, buf: &mut Frame) {
        let Some((mut playback, done)) = self.playback.take() else {
            return;
        };
        playback.fill(buf);
        add_saturating(pcm, buf);
        if playback.finished() {
            let _ = done.send(PlayEnd::Finished);
        } else {
            self.playback = Some((playback, done));
        }
    }

    fn encode_and_send(&mut self, pcm: &Frame, packet: &mut [u8; HEADER_LEN + FRAME_SAMPLES]) {
        let (_, payload) = packet.split_at_mut(HEADER_LEN);
        self.codec.encode_frame(pcm, payload);
        self.send(packet);
    }

    /// Writes the next header in front of the payload already in `packet` and sends.
    fn send(&mut self, packet: &mut [u8; HEADER_LEN + FRAME_SAMPLES]) {
        if !self.sending {
            // Time goes on: the timestamp keeps pace and the first packet after the
            // pause carries the marker (RFC 3551 §4.1).
            self.sender.skip(FRAME_SAMPLES as u32);
            return;
        }
        let header = self.sender.next_header(FRAME_SAMPLES as u32);
        // The header is exactly HEADER_LEN bytes and the payload type came from a
        // Codec, so this cannot fail; a failure would only skip the packet.
        if header.write(packet).is_err() {
            return;
        }
        match self.bound.rtp.try_send_to(packet, self.remote) {
            Ok(_) => self.bound.sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.bound.send_dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn interrupt(&mut self) {
        if let Some((_, done)) = self.playback.take() {
            let _ = done.send(PlayEnd::Interrupted);
        }
    }
}

/// The single clock: every 20 ms, every room mixed, one packet for every session.
///
/// Missed ticks (the runtime was stalled) are sent in a burst, as tokio's default
/// `MissedTickBehavior::Burst` does, so that RTP timestamps keep pace with real time
/// and the far end's jitter buffer absorbs the burst.
async fn run_clock(inner: Weak<Inner>) {
    let mut interval = tokio::time::interval(Duration::from_millis(u64::from(FRAME_MS)));
    let mut scratch = Scratch::default();
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let now = std::time::Instant::now();
        lock(&inner.table).tick(&mut scratch, now);
        let took = u64::try_from(now.elapsed().as_nanos()).unwrap_or(u64::MAX);
        inner.ticks.fetch_add(1, Ordering::Relaxed);
        inner.last_tick_ns.store(took, Ordering::Relaxed);
        inner.max_tick_ns.fetch_max(took, Ordering::Relaxed);
    }
}

/// Reads one session's socket and queues well-formed packets from the remote's IP.
async fn run_receive(
    bound: Arc<Bound>,
    inner: Weak<Inner>,
    id: u64,
    expected: Arc<Mutex<SocketAddr>>,
    queue: mpsc::Sender<InboundRtp>,
    audio: AudioSink,
) {
    let mut buf = BytesMut::with_capacity(RECV_BUFFER);
    let mut latched = *lock(&expected);
    loop {
        buf.clear();
        buf.reserve(MAX_DATAGRAM);
        let source = match bound.rtp.recv_buf_from(&mut buf).await {
            Ok((_, source)) => source,
            Err(e) if is_transient(&e) => {
                // An ICMP error for an earlier send, reported on this socket by some
                // platforms; the socket stays usable.
                tracing::debug!(error = %e, "rtp receive error");
                continue;
            }
            Err(e) => {
                // Anything else would repeat forever: stop receiving (sending goes on).
                tracing::warn!(error = %e, "rtp receive failed; no more inbound media");
                return;
            }
        };
        let received_at = Instant::now();
        if source.ip() != lock(&expected).ip() {
            bound.receive_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let datagram = buf.split().freeze();
        let packet = match RtpView::parse(&datagram) {
            Ok(view) => InboundRtp {
                payload_type: view.payload_type,
                sequence: view.sequence,
                timestamp: view.timestamp,
                marker: view.marker,
                ssrc: view.ssrc,
                payload: datagram.slice_ref(view.payload()),
                source,
                received_at,
            },
            Err(e) => {
                tracing::trace!(error = %e, %source, "malformed rtp dropped");
                bound.receive_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        // Re-latch only on a well-formed packet, so garbage cannot move the stream.
        if source != latched {
            latched = source;
            let Some(inner) = inner.upgrade() else { return };
            if let Some(o) = lock(&inner.table).sessions.get_mut(&id) {
                o.remote = source;
            }
        }
        audio.offer(&packet);
        match queue.try_send(packet) {
            Ok(()) => bound.received.fetch_add(1, Ordering::Relaxed),
            Err(_) => bound.receive_dropped.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Binds a non-blocking UDP socket and registers it with the current runtime.
fn bind_udp(address: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind((address, port))?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Errors after which a UDP socket still works.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | Interrupted
            | WouldBlock
            | HostUnreachable
            | NetworkUnreachable
    )
}

/// Where the receive task puts audio packets for the room mixer.
#[derive(Debug)]
struct AudioSink {
    payload_type: u8,
    jitter: Arc<Mutex<JitterBuffer<Bytes>>>,
    in_room: Arc<AtomicBool>,
}

impl AudioSink {
    fn offer(&self, packet: &InboundRtp) {
        if packet.payload_type == self.payload_type && self.in_room.load(Ordering::Acquire) {
            // A Bytes clone is a reference count, not a copy.
            lock(&self.jitter).push(
                packet.sequence,
                packet.timestamp,
                packet.payload.clone(),
                packet.received_at.into_std(),
            );
        }
    }
}

/// Adds `extra` to `pcm`, saturating at full scale.
fn add_saturating(pcm: &mut Frame, extra: &Frame) {
    for (p, &e) in pcm.iter_mut().zip(extra) {
        *p = p.saturating_add(e);
    }
}

/// Locks a mutex, recovering from poisoning: the tables stay consistent because
/// nothing inside the locks can panic half-way.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
