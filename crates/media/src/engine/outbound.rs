//! The sending half of a session, owned by the engine's table and driven by the
//! clock: the session's [`MemberMedia`] (prompts, codec state, the 20 ms RTP packet,
//! SRTP-protected when keyed: the pure pipeline's code), where its packets go, the
//! prompt's completion, and the RTCP report every ~5 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use crate::mixer::MixerSlot;
use crate::pipeline::{self, Jitter, MemberMedia, SentCounts};
use crate::rtcp::{self, Report, SenderInfo};
use crate::srtp::{SRTCP_TRAILER, SrtpContext};
use crate::{AudioCodec, Error, Playback, Prompt, RtpSender};

use super::endpoint::Link;
use super::{Bound, PlayEnd, lock};

/// RFC 3550 §6.2: the nominal report interval for a two-party session (the 5 s
/// minimum; our RTCP is far below the 5% bandwidth share).
pub(super) const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// One compound RTCP packet: SR with one block, SDES CNAME, SRTCP trailer.
const RTCP_LEN: usize = 256;

/// The clock's buffers, reused every tick.
#[derive(Debug)]
pub(super) struct Scratch {
    /// The pipeline's frames and packet.
    pub(super) pipeline: pipeline::Scratch,
    rtcp: [u8; RTCP_LEN],
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            pipeline: pipeline::Scratch::default(),
            rtcp: [0; RTCP_LEN],
        }
    }
}

/// Where a session's RTP goes: its socket and the remote address.
#[derive(Debug)]
pub(super) struct Route {
    pub(super) bound: Arc<Bound>,
    remote: SocketAddr,
}

impl Route {
    pub(super) fn new(bound: Arc<Bound>, remote: SocketAddr) -> Self {
        Self { bound, remote }
    }

    /// Where packets go.
    pub(super) fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Sends to `remote` from the next packet.
    pub(super) fn set_remote(&mut self, remote: SocketAddr) {
        self.remote = remote;
    }
}

#[derive(Debug)]
pub(super) struct Outbound {
    /// The session's id (its slab slot is checked against it).
    pub(super) id: u64,
    pub(super) route: Route,
    /// The SDP's `a=rtcp` address; `None`: the RTP address with port + 1.
    pub(super) remote_rtcp: Option<SocketAddr>,
    /// Codec state, squelch, prompt and packetiser: the pipeline's member.
    pub(super) media: MemberMedia,
    /// Told how the playing prompt ended.
    done: Option<oneshot::Sender<PlayEnd>>,
    /// The room and mixer slot, while in a room.
    pub(super) room: Option<(u64, MixerSlot)>,
    pub(super) muted: bool,
    /// The room's jitter buffer, filled by the clock from the shard's inbox.
    pub(super) jitter: Jitter,
    /// Quality and SRTCP state shared with the receive thread.
    pub(super) link: Arc<Link>,
    /// RTCP: when the next report is due.
    next_report: Option<Instant>,
    /// What the clock last published to `link` (depth, talking): compared here, in the
    /// clock's own memory, so that an unchanged value costs no read of the shared line.
    shown: (usize, bool),
}

impl Outbound {
    /// Allocates the codec state of G.722 and Opus (fails if the Opus codec does), and the
    /// DTMF squelch of a session whose digits come in-band (no `telephone_event`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        id: u64,
        bound: Arc<Bound>,
        remote: SocketAddr,
        codec: AudioCodec,
        telephone_event: bool,
        sender: RtpSender,
        link: Arc<Link>,
        srtp: Option<SrtpContext>,
    ) -> Result<Self, Error> {
        Ok(Self {
            id,
            jitter: Jitter::new(codec),
            route: Route::new(bound, remote),
            remote_rtcp: None,
            media: MemberMedia::new(codec, telephone_event, sender, srtp)?,
            done: None,
            room: None,
            muted: false,
            link,
            next_report: None,
            shown: (0, false),
        })
    }

    pub(super) fn play(
        &mut self,
        prompt: Arc<Prompt>,
        repeat: bool,
        done: oneshot::Sender<PlayEnd>,
    ) {
        self.interrupt();
        self.media.play(Playback::new(prompt, repeat));
        self.done = Some(done);
    }

    pub(super) fn is_playing(&self) -> bool {
        self.media.is_playing()
    }

    /// Sends one 20 ms packet of prompt or silence (outside a room).
    pub(super) fn tick(&mut self, scratch: &mut Scratch, sink: &mut impl pipeline::Sink<Route>) {
        if let Some(len) = self.media.tick_alone(&mut scratch.pipeline) {
            sink.push(&self.route, scratch.pipeline.packet(), len);
        }
    }

    /// After a tick: tells the caller of [`super::RtpSession::play`] that its prompt
    /// played to its end.
    pub(super) fn notify_finished(&mut self) {
        if self.done.is_some()
            && !self.media.is_playing()
            && let Some(done) = self.done.take()
        {
            let _ = done.send(PlayEnd::Finished);
        }
    }

    /// Sends the RTCP report when it is due (RFC 3550 §6.4): an SR if we sent RTP
    /// since the last one, else an RR, with SDES CNAME; to the remote's port + 1.
    pub(super) fn report_if_due(
        &mut self,
        scratch: &mut Scratch,
        now: Instant,
        interval: Duration,
    ) {
        let due = *self
            .next_report
            .get_or_insert_with(|| now + randomized(interval));
        if now < due {
            return;
        }
        self.next_report = Some(now + randomized(interval));
        self.send_report(scratch, now, false);
    }

    /// Sends a report now; with `bye`, followed by a BYE (§6.6: the session ends).
    pub(super) fn send_report(&mut self, scratch: &mut Scratch, now: Instant, bye: bool) {
        let sender = self.media.take_sent().map(|sent: SentCounts| SenderInfo {
            ntp: rtcp::ntp_timestamp(SystemTime::now()),
            // The timestamp of the last packet sent, at most one tick behind the NTP
            // time: well inside what lip-sync or RTT need.
            rtp_timestamp: sent.rtp_timestamp,
            packet_count: sent.packet_count,
            octet_count: sent.octet_count,
        });
        let mut cname = [0u8; 32];
        let cname = cname_of(self.media.ssrc(), &mut cname);
        let mut state = lock(&self.link.rtcp);
        let state = &mut *state;
        let block = state.reception.report_block(&state.round_trip, now);
        if let Some(b) = block {
            state.last_fraction = b.fraction_lost;
        }
        let report = Report {
            ssrc: self.media.ssrc(),
            sender,
            block,
            cname,
        };
        let Ok(mut len) =
            rtcp::write_report(&report, &mut scratch.rtcp[..RTCP_LEN - SRTCP_TRAILER])
        else {
            return;
        };
        if bye {
            match rtcp::append_bye(
                report.ssrc,
                &mut scratch.rtcp[..RTCP_LEN - SRTCP_TRAILER],
                len,
            ) {
                Ok(n) => len = n,
                Err(_) => return,
            }
        }
        if let Some(srtcp) = state.srtcp_out.as_mut() {
            match srtcp.protect_rtcp(&mut scratch.rtcp, len) {
                Ok(n) => len = n,
                Err(_) => return,
            }
        }
        let to = self.remote_rtcp.unwrap_or_else(|| {
            SocketAddr::new(
                self.route.remote.ip(),
                self.route.remote.port().wrapping_add(1),
            )
        });
        if let Some(datagram) = scratch.rtcp.get(..len)
            && self.route.bound.rtcp.send_to(datagram, to).is_ok()
        {
            self.route
                .bound
                .tx
                .rtcp_sent
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes the jitter buffer's depth if it changed.
    pub(super) fn show_depth(&mut self, depth: usize) {
        if self.shown.0 != depth {
            self.shown.0 = depth;
            self.link.publish_depth(depth);
        }
    }

    /// Publishes whether the member talks if that changed.
    pub(super) fn show_talking(&mut self, talking: bool) {
        if self.shown.1 != talking {
            self.shown.1 = talking;
            self.link.publish_talking(talking);
        }
    }

    /// Moves the RTP timestamp past `ticks` frames not sent (marker on the next).
    pub(super) fn skip(&mut self, ticks: u32) {
        self.media.skip(ticks);
    }

    /// Stops the prompt; its caller hears it was cut short.
    pub(super) fn interrupt(&mut self) {
        self.media.stop_playback();
        if let Some(done) = self.done.take() {
            let _ = done.send(PlayEnd::Interrupted);
        }
    }
}

/// RFC 3550 §6.3.5: the interval times a random factor in [0.5, 1.5], so that
/// sessions opened together do not report in lock-step.
fn randomized(interval: Duration) -> Duration {
    interval.mul_f64(0.5 + rand::random::<f64>())
}

/// `dialbridge-<ssrc hex>`: unique per stream, with no address in it (RFC 7022 asks
/// for CNAMEs that do not leak identity).
fn cname_of(ssrc: u32, buf: &mut [u8; 32]) -> &[u8] {
    const PREFIX: &[u8] = b"dialbridge-";
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    for (i, slot) in buf[PREFIX.len()..PREFIX.len() + 8].iter_mut().enumerate() {
        *slot = HEX[((ssrc >> (28 - 4 * i)) & 0xf) as usize];
    }
    &buf[..PREFIX.len() + 8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cname_is_prefix_and_hex_ssrc() {
        let mut buf = [0u8; 32];
        assert_eq!(cname_of(0x00ab_cdef, &mut buf), b"dialbridge-00abcdef");
    }

    #[test]
    fn report_interval_is_randomised_within_bounds() {
        for _ in 0..100 {
            let d = randomized(REPORT_INTERVAL);
            assert!(d >= Duration::from_millis(2500) && d <= Duration::from_millis(7500));
        }
    }
}
