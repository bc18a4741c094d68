//! The receiving half of a session, called by the receive thread for every datagram
//! on its RTP or RTCP port: source check and latching (RFC 4961, [`crate::latch`]), SRTP/SRTCP
//! unprotect (RFC 3711), RTP parsing, reception statistics (RFC 3550 A.1/A.8), the
//! audio for the room's jitter buffer (and RFC 3389 comfort noise, PT 13, which keeps
//! its place in the sequence so a silence is not taken for loss), handed to the
//! session's shard in the receive thread's batch, and the consumer's queue; RTCP SR/RR
//! into [`Link`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::latch::{Latch, Verdict};
use crate::pipeline::room_payload;
use crate::rtcp::{self, ReceptionStats, ReportBlock, RoundTrip};
use crate::srtp::SrtpContext;
use crate::{AudioCodec, FRAME_MS, RtpView};

use super::io::MAX_DATAGRAM;
use super::shard::{self, Arrivals};
use super::{Bound, InboundRtp, Inner, Quality, lock};

/// Bytes of the chunk inbound payloads are cut from: a payload handed to the
/// consumer is one copy into it, and the chunk's allocation is reused once the consumer has
/// dropped earlier packets (amortised, not per packet).
const CHUNK: usize = 16 * 1024;

/// State one session shares between its [`super::RtpSession`], the clock (its
/// `Outbound`) and the receive thread. Laid out in order: what the receive thread
/// reads per packet first, together; what the clock writes on a line of its own.
#[derive(Debug)]
#[repr(C)]
pub(super) struct Link {
    /// Whom packets are accepted from and where they go (the SDP address, or where
    /// media was latched to). Locked by the receive thread per packet, by signalling on
    /// a re-INVITE; the clock never takes it.
    pub(super) latch: Mutex<Latch>,
    /// Where the session lives: its shard and slab index ([`shard::home`]). Changed
    /// with both shards' tables locked, when the session joins a room elsewhere.
    pub(super) home: AtomicU64,
    /// Tells the receive thread to hand audio to the room's jitter buffer.
    pub(super) in_room: AtomicBool,
    /// False: audio packets (the codec's payload type) are not queued for the
    /// consumer, only other payload types (RFC 4733 events, comfort noise).
    pub(super) deliver_audio: AtomicBool,
    /// The jitter buffer is tuned for a steady stream (a leg between bridges), from
    /// the next room joined.
    pub(super) steady: AtomicBool,
    /// An [`crate::InBandListener`] hears the audio in a room: it is not queued there.
    pub(super) listening: AtomicBool,
    srtp: bool,
    /// RTCP: reception statistics, round trip, SRTCP contexts.
    pub(super) rtcp: Mutex<RtcpState>,
    /// The SSRC we send with (to find blocks about us in the far end's reports).
    pub(super) local_ssrc: u32,
    codec: AudioCodec,
    /// What the clock publishes.
    pub(super) published: Published,
    /// The receive thread reading the session's sockets: its shard's, so a session's
    /// packets are read and sent by the threads of one shard (moved with it).
    pub(super) reader: AtomicUsize,
}

/// What the clock publishes of a member in a room, each written only when it changes.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(super) struct Published {
    /// The member is talking (for dashboards).
    pub(super) talking: AtomicBool,
    /// Frames waiting in the room's jitter buffer.
    jitter_depth: AtomicU32,
}

/// Per-session RTCP state: written per packet by the receive thread, read and reset
/// per report by the clock (every ~5 s), read by [`super::RtpSession::quality`].
#[derive(Debug)]
pub(super) struct RtcpState {
    pub(super) reception: ReceptionStats,
    pub(super) round_trip: RoundTrip,
    /// Fraction lost (1/256) in the last interval we reported.
    pub(super) last_fraction: u8,
    /// The far end's last block about our stream.
    remote_block: Option<ReportBlock>,
    pub(super) srtcp_in: Option<SrtpContext>,
    pub(super) srtcp_out: Option<SrtpContext>,
}

impl Link {
    pub(super) fn new(
        latch: Latch,
        codec: AudioCodec,
        local_ssrc: u32,
        srtcp_in: Option<SrtpContext>,
        srtcp_out: Option<SrtpContext>,
    ) -> Self {
        Self {
            latch: Mutex::new(latch),
            home: AtomicU64::new(0),
            published: Published::default(),
            reader: AtomicUsize::new(0),
            in_room: AtomicBool::new(false),
            steady: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            deliver_audio: AtomicBool::new(true),
            srtp: srtcp_in.is_some(),
            rtcp: Mutex::new(RtcpState {
                reception: ReceptionStats::new(rtp_clock_rate(codec)),
                round_trip: RoundTrip::default(),
                last_fraction: 0,
                remote_block: None,
                srtcp_in,
                srtcp_out,
            }),
            local_ssrc,
            codec,
        }
    }

    pub(super) fn is_srtp(&self) -> bool {
        self.srtp
    }

    /// The clock's word on whether the member talks (the clock calls it only when
    /// that changes: a store every tick would pull this line from other cores).
    pub(super) fn publish_talking(&self, talking: bool) {
        self.published.talking.store(talking, Ordering::Relaxed);
    }

    /// The jitter buffer's depth in frames (likewise only when it changes).
    pub(super) fn publish_depth(&self, depth: usize) {
        let depth = u32::try_from(depth).unwrap_or(u32::MAX);
        self.published.jitter_depth.store(depth, Ordering::Relaxed);
    }

    pub(super) fn quality(&self) -> Quality {
        // Outside a room the buffer is not fed: nothing waits in it.
        let depth = if self.in_room.load(Ordering::Acquire) {
            self.published.jitter_depth.load(Ordering::Relaxed)
        } else {
            0
        };
        let state = lock(&self.rtcp);
        let clock = f64::from(rtp_clock_rate(self.codec));
        Quality {
            loss_fraction: f64::from(state.last_fraction) / 256.0,
            lost: i64::from(state.reception.cumulative_lost()),
            jitter_ms: state.reception.jitter_ms(),
            rtt_ms: state.round_trip.rtt().map(|d| d.as_secs_f64() * 1000.0),
            jitter_buffer_depth_ms: depth.saturating_mul(FRAME_MS),
            remote_loss_fraction: state
                .remote_block
                .map(|b| f64::from(b.fraction_lost) / 256.0),
            remote_jitter_ms: state
                .remote_block
                .map(|b| f64::from(b.jitter) * 1000.0 / clock),
        }
    }
}

/// The RTP clock rate of a codec's timestamps (RFC 3551 §6, RFC 7587 §4.1).
fn rtp_clock_rate(codec: AudioCodec) -> u32 {
    codec.clock_rate()
}

/// What the receive thread holds for one session.
#[derive(Debug)]
pub(super) struct Endpoint {
    pub(super) id: u64,
    pub(super) bound: Arc<Bound>,
    inner: Weak<Inner>,
    link: Arc<Link>,
    queue: mpsc::Sender<InboundRtp>,
    payload_type: u8,
    /// Receive-thread-only state (locked uncontended, per packet).
    state: Mutex<ReceiveState>,
}

#[derive(Debug)]
struct ReceiveState {
    chunk: BytesMut,
    srtp: Option<SrtpContext>,
}

impl Endpoint {
    pub(super) fn new(
        id: u64,
        bound: Arc<Bound>,
        inner: Weak<Inner>,
        link: Arc<Link>,
        queue: mpsc::Sender<InboundRtp>,
        srtp: Option<SrtpContext>,
    ) -> Self {
        Self {
            id,
            bound,
            inner,
            payload_type: link.codec.payload_type(),
            link,
            queue,
            state: Mutex::new(ReceiveState {
                chunk: BytesMut::with_capacity(CHUNK),
                srtp,
            }),
        }
    }

    fn drop_packet(&self) {
        self.bound
            .rx
            .receive_dropped
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A packet refused for where it came from: dropped, and counted as such.
    fn refuse(&self, source: SocketAddr) {
        tracing::trace!(session = self.id, %source, "rtp from a stranger refused");
        self.drop_packet();
        self.bound.rx.latch_refused.fetch_add(1, Ordering::Relaxed);
        if let Some(inner) = self.inner.upgrade() {
            inner.latch_refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The latch moved the stream: the clock sends there (and RTCP where the latch
    /// says) from its next tick. Called with the latch held, so that a re-INVITE's
    /// [`super::RtpSession::set_remote`] cannot interleave.
    fn latch_to(&self, latch: &Latch, to: SocketAddr) {
        tracing::debug!(session = self.id, %to, symmetric = latch.is_symmetric(), "rtp latched");
        self.bound.rx.latched.fetch_add(1, Ordering::Relaxed);
        if let Some(inner) = self.inner.upgrade() {
            inner.latched.fetch_add(1, Ordering::Relaxed);
            inner.with_outbound(&self.link, self.id, |o| {
                o.route.set_remote(to);
                if let Some(rtcp) = latch.rtcp_target() {
                    o.remote_rtcp = Some(rtcp);
                }
            });
        }
    }

    /// One datagram from the RTP port, read at `now`; audio for the room goes into
    /// `rooms`, the receive thread's batch for each shard.
    pub(super) fn handle_rtp(
        &self,
        datagram: &mut [u8],
        source: SocketAddr,
        now: std::time::Instant,
        rooms: &mut [Arrivals],
    ) {
        let received_at = Instant::from_std(now);
        let mut latch = lock(&self.link.latch);
        // Before any HMAC: a source nothing from which could be accepted now.
        if !latch.may_accept(now, source) {
            drop(latch);
            self.refuse(source);
            return;
        }
        let mut state = lock(&self.state);
        let authenticated = state.srtp.is_some();
        let len = match state.srtp.as_mut() {
            Some(srtp) => match srtp.unprotect_rtp(datagram) {
                Ok(len) => len,
                Err(e) => {
                    tracing::trace!(error = %e, %source, "srtp packet dropped");
                    self.drop_packet();
                    return;
                }
            },
            None => datagram.len(),
        };
        let Some(plain) = datagram.get(..len) else {
            return;
        };
        let view = match RtpView::parse(plain) {
            Ok(view) => view,
            Err(e) => {
                tracing::trace!(error = %e, %source, "malformed rtp dropped");
                self.drop_packet();
                return;
            }
        };
        // Decided only on a well-formed (and, with SRTP, authenticated) packet, so
        // garbage cannot move the stream.
        match latch.handle_packet(now, source, view.payload_type, authenticated) {
            Verdict::Accept => {}
            Verdict::Latch(to) => self.latch_to(&latch, to),
            Verdict::Refuse => {
                drop((latch, state));
                self.refuse(source);
                return;
            }
        }
        drop(latch);
        lock(&self.link.rtcp).reception.handle_packet(
            view.ssrc,
            view.sequence,
            view.timestamp,
            now,
        );
        let room = room_payload(view.payload_type, self.payload_type);
        let audio = room == Some(false);
        let in_room = self.link.in_room.load(Ordering::Acquire);
        if let Some(comfort_noise) = room
            && in_room
        {
            // Its bytes copied into the batch: no allocation, no shared buffer. A
            // session that moves shard meanwhile loses this one packet.
            let home = self.link.home.load(Ordering::Acquire);
            if let Some(batch) = rooms.get_mut(shard::shard_of(home)) {
                batch.push_payload(
                    self.id,
                    home,
                    view.sequence,
                    view.timestamp,
                    view.payload(),
                    comfort_noise,
                    now,
                );
            }
        }
        let heard_in_room =
            room.is_some() && in_room && self.link.listening.load(Ordering::Relaxed);
        if audio && (heard_in_room || !self.link.deliver_audio.load(Ordering::Relaxed)) {
            // Mixed (and heard by the listener), not queued: no copy and no consumer
            // wake-up per packet.
            self.bound.rx.received.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if state.chunk.capacity() < MAX_DATAGRAM {
            state.chunk.reserve(CHUNK);
        }
        state.chunk.extend_from_slice(view.payload());
        let payload = state.chunk.split().freeze();
        drop(state);
        let packet = InboundRtp {
            payload_type: view.payload_type,
            sequence: view.sequence,
            timestamp: view.timestamp,
            marker: view.marker,
            ssrc: view.ssrc,
            payload,
            source,
            received_at,
        };
        // Counted before the consumer can see it; taken back if the queue is full.
        self.bound.rx.received.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(packet) {
            // A consumer gone (call torn down, session not yet) is not a loss.
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.bound.rx.received.fetch_sub(1, Ordering::Relaxed);
                self.drop_packet();
                if let Some(inner) = self.inner.upgrade() {
                    inner.queue_overflows.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// One datagram from the RTCP port: SR/RR for quality and round trip.
    pub(super) fn handle_rtcp(&self, datagram: &mut [u8], source: SocketAddr) {
        if !lock(&self.link.latch).may_accept_rtcp(source) {
            return;
        }
        let now = std::time::Instant::now();
        let mut state = lock(&self.link.rtcp);
        let len = match state.srtcp_in.as_mut() {
            Some(srtcp) => match srtcp.unprotect_rtcp(datagram) {
                Ok(len) => len,
                Err(_) => return,
            },
            None => datagram.len(),
        };
        let Some(plain) = datagram.get(..len) else {
            return;
        };
        let ntp_now = rtcp::ntp_timestamp(SystemTime::now());
        let mut understood = false;
        for report in rtcp::parse_compound(plain) {
            let Ok(report) = report else { break };
            understood = true;
            if let Some(sender) = report.sender {
                state.round_trip.handle_sender_report(&sender, now);
            }
            for block in report.blocks().filter(|b| b.ssrc == self.link.local_ssrc) {
                state.round_trip.handle_report_block(&block, ntp_now);
                state.remote_block = Some(block);
            }
        }
        if understood {
            self.bound.rx.rtcp_received.fetch_add(1, Ordering::Relaxed);
            // Released first: the clock takes the RTCP state under the table lock.
            drop(state);
            self.learn_rtcp(source);
        }
    }

    /// A latching session sends its RTCP where the far end's RTCP comes from.
    fn learn_rtcp(&self, source: SocketAddr) {
        let mut latch = lock(&self.link.latch);
        if let Some(rtcp) = latch.handle_rtcp(source)
            && let Some(inner) = self.inner.upgrade()
        {
            inner.with_outbound(&self.link, self.id, |o| o.remote_rtcp = Some(rtcp));
        }
    }
}
