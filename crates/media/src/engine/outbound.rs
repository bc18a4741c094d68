//! The sending half of a session, owned by the engine's table and driven by the
//! clock: prompts, the 20 ms RTP packet (SRTP-protected when keyed) and the RTCP
//! report every ~5 s; and the session's codec state both ways.
//!
//! G.711 sessions stay narrowband and stateless: outside a room a prompt frame is
//! encoded as it is; in a room they hear the 16 kHz mix decimated by 2 (the shared mix
//! once per room, a talker's own mix with its own [`Downsampler2`], whose history is
//! kept from whatever it heard). G.722 and Opus sessions own a [`CodecState`] (their
//! encoders and decoders carry state, so nothing encoded is shared between them) and
//! hear 8 kHz prompts through an [`Upsampler2`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use crate::comfort_noise::NoiseGenerator;
use crate::dtmf_squelch::DtmfSquelch;
use crate::halfband::{Downsampler2, Upsampler2};
use crate::jitter::Concealer;
use crate::mixer::{Frame, MIX_SILENCE, MixFrame, MixerSlot, SILENCE};
use crate::rtcp::{self, Report, SenderInfo};
use crate::rtp::HEADER_LEN;
use crate::srtp::{MAX_RTP_OVERHEAD, SRTCP_TRAILER, SrtpContext};
use crate::{AudioCodec, CodecState, Error, FRAME_SAMPLES, Playback, Prompt, RtpSender};

use super::endpoint::{Link, MAX_PAYLOAD};
use super::room::WideSquelch;
use super::{Bound, PlayEnd, lock};

/// RFC 3550 §6.2: the nominal report interval for a two-party session (the 5 s
/// minimum; our RTCP is far below the 5% bandwidth share).
pub(super) const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// One RTP packet: header, the largest payload (see [`MAX_PAYLOAD`]), room for the
/// SRTP tag.
const PACKET_LEN: usize = HEADER_LEN + MAX_PAYLOAD + MAX_RTP_OVERHEAD;
/// One compound RTCP packet: SR with one block, SDES CNAME, SRTCP trailer.
const RTCP_LEN: usize = 256;

/// The clock's buffers, reused every tick.
#[derive(Debug)]
pub(super) struct Scratch {
    pub(super) pcm: Frame,
    pub(super) prompt: Frame,
    pub(super) wide: MixFrame,
    pub(super) packet: [u8; PACKET_LEN],
    rtcp: [u8; RTCP_LEN],
    /// This tick's RTP datagrams, sent once the table lock is released.
    pub(super) outbox: Outbox,
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            pcm: SILENCE,
            prompt: SILENCE,
            wide: MIX_SILENCE,
            packet: [0; PACKET_LEN],
            rtcp: [0; RTCP_LEN],
            outbox: Outbox::default(),
        }
    }
}

impl Scratch {
    /// The payload area of the packet buffer ([`MAX_PAYLOAD`] bytes after the header;
    /// the constant sizes make the split infallible).
    pub(super) fn payload_mut(&mut self) -> &mut [u8] {
        let (_, rest) = self.packet.split_at_mut(HEADER_LEN);
        rest.split_at_mut(MAX_PAYLOAD).0
    }
}

/// One RTP datagram ready to go. The `Arc` keeps the socket (and so its fd number)
/// alive until sent, even if the session closes meanwhile.
#[derive(Debug)]
pub(super) struct Outgoing {
    bound: Arc<Bound>,
    to: SocketAddr,
    len: usize,
    bytes: [u8; PACKET_LEN],
}

/// A tick's datagrams, dealt alternately into [`SEND_LANES`] lanes so that the
/// clock thread and its send helper each take one. The vectors keep their capacity
/// from tick to tick: no allocation once they have grown to the session count.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub(super) lanes: [Vec<Outgoing>; SEND_LANES],
    turn: usize,
}

/// Threads sending each tick's datagrams: the clock and one helper (2 cores).
pub(super) const SEND_LANES: usize = 2;

impl Outbox {
    fn push(&mut self, outgoing: Outgoing) {
        if let Some(lane) = self.lanes.get_mut(self.turn) {
            lane.push(outgoing);
        }
        self.turn = (self.turn + 1) % SEND_LANES;
    }
}

/// Sends and empties one lane (keeping its capacity); returns the datagrams dropped.
pub(super) fn send_lane(lane: &mut Vec<Outgoing>) -> u64 {
    let mut dropped = 0;
    for out in lane.drain(..) {
        let Some(datagram) = out.bytes.get(..out.len) else {
            continue;
        };
        match out.bound.rtp.send_to(datagram, out.to) {
            Ok(_) => {
                out.bound.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                // A full socket buffer: late audio is worthless, drop and count.
                out.bound.send_dropped.fetch_add(1, Ordering::Relaxed);
                dropped += 1;
            }
        }
    }
    dropped
}

#[derive(Debug)]
pub(super) struct Outbound {
    bound: Arc<Bound>,
    pub(super) remote: SocketAddr,
    /// The SDP's `a=rtcp` address; `None`: the RTP address with port + 1.
    pub(super) remote_rtcp: Option<SocketAddr>,
    pub(super) codec: AudioCodec,
    /// G.722 and Opus: encoder and decoder state (`None` for G.711).
    pub(super) state: Option<Box<CodecState>>,
    /// G.711 in a room: the 16 → 8 kHz converter of what this member hears.
    pub(super) down: Downsampler2,
    /// Wideband codecs: the 8 → 16 kHz converter of this session's prompts.
    up: Upsampler2,
    /// RFC 3389: the far end's comfort noise, played in a room from a CN packet until
    /// its next audio packet (`noise_active`).
    pub(super) noise: NoiseGenerator,
    pub(super) noise_active: bool,
    /// G.711 without RFC 4733 events: keeps the caller's keyed digits out of the mix
    /// (delays its audio one tick, silences DTMF frames).
    pub(super) squelch: Option<Box<DtmfSquelch>>,
    /// The same for G.722 and Opus without RFC 4733 events.
    pub(super) wide_squelch: Option<Box<WideSquelch>>,
    sender: RtpSender,
    pub(super) playback: Option<(Playback, oneshot::Sender<PlayEnd>)>,
    /// The room and mixer slot, while in a room.
    pub(super) room: Option<(u64, MixerSlot)>,
    pub(super) muted: bool,
    /// Jitter buffer, quality and SRTCP state shared with the receive thread.
    pub(super) link: Arc<Link>,
    pub(super) concealer: Concealer,
    /// False while the far end holds the call (RFC 3264 §8.4 `sendonly`/`inactive`).
    pub(super) sending: bool,
    srtp: Option<SrtpContext>,
    /// RTCP sender state (§6.4.1).
    next_report: Option<Instant>,
    packets_sent: u32,
    octets_sent: u32,
    last_timestamp: u32,
    sent_since_report: bool,
}

impl Outbound {
    /// Allocates the codec state of G.722 and Opus (fails if the Opus codec does), and the
    /// DTMF squelch of a session whose digits come in-band (no `telephone_event`).
    pub(super) fn new(
        bound: Arc<Bound>,
        remote: SocketAddr,
        codec: AudioCodec,
        telephone_event: bool,
        sender: RtpSender,
        link: Arc<Link>,
        srtp: Option<SrtpContext>,
    ) -> Result<Self, Error> {
        let in_band = !telephone_event;
        let (state, squelch, wide_squelch) = match codec {
            AudioCodec::G711(_) => (None, in_band.then(Box::default), None),
            _ => (
                Some(Box::new(CodecState::new(codec)?)),
                None,
                in_band.then(Box::default),
            ),
        };
        Ok(Self {
            bound,
            remote,
            remote_rtcp: None,
            codec,
            state,
            down: Downsampler2::default(),
            up: Upsampler2::default(),
            noise: NoiseGenerator::new(sender.ssrc()),
            noise_active: false,
            squelch,
            wide_squelch,
            sender,
            playback: None,
            room: None,
            muted: false,
            link,
            concealer: Concealer::default(),
            sending: true,
            srtp,
            next_report: None,
            packets_sent: 0,
            octets_sent: 0,
            last_timestamp: 0,
            sent_since_report: false,
        })
    }

    pub(super) fn play(
        &mut self,
        prompt: Arc<Prompt>,
        repeat: bool,
        done: oneshot::Sender<PlayEnd>,
    ) {
        self.interrupt();
        self.playback = Some((Playback::new(prompt, repeat), done));
    }

    pub(super) fn is_playing(&self) -> bool {
        self.playback.is_some()
    }

    /// Sends one 20 ms packet of prompt or silence (outside a room).
    pub(super) fn tick(&mut self, scratch: &mut Scratch) {
        scratch.pcm = SILENCE;
        self.mix_prompt(&mut scratch.pcm, &mut scratch.prompt);
        let pcm = scratch.pcm;
        self.encode_and_send(&pcm, scratch);
    }

    /// Adds the next frame of the playing prompt (if any) to `pcm`, saturating.
    pub(super) fn mix_prompt(&mut self, pcm: &mut Frame, buf: &mut Frame) {
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

    /// Adds the next frame of the playing prompt (if any), upsampled, to
    /// `scratch.wide` (for the wideband codecs).
    pub(super) fn mix_prompt_wide(&mut self, scratch: &mut Scratch) {
        scratch.pcm = SILENCE;
        self.mix_prompt(&mut scratch.pcm, &mut scratch.prompt);
        let mut wide = MIX_SILENCE;
        self.up.process(&scratch.pcm, &mut wide);
        add_saturating(&mut scratch.wide, &wide);
    }

    /// Encodes and sends one 8 kHz frame: as it is for G.711, upsampled for the
    /// wideband codecs.
    pub(super) fn encode_and_send(&mut self, pcm: &Frame, scratch: &mut Scratch) {
        match self.codec {
            AudioCodec::G711(codec) => {
                let len = codec.encode_frame(pcm, scratch.payload_mut());
                self.send(scratch, len);
            }
            _ => {
                let mut wide = MIX_SILENCE;
                self.up.process(pcm, &mut wide);
                self.encode_wide_and_send(&wide, scratch);
            }
        }
    }

    /// Encodes and sends one 16 kHz frame of the mix: decimated for G.711 (with this
    /// session's converter), as it is for the wideband codecs.
    pub(super) fn encode_wide_and_send(&mut self, wide: &MixFrame, scratch: &mut Scratch) {
        let len = match (self.codec, self.state.as_mut()) {
            (AudioCodec::G711(codec), _) => {
                let mut pcm = SILENCE;
                self.down.process(wide, &mut pcm);
                codec.encode_frame(&pcm, scratch.payload_mut())
            }
            (_, Some(state)) => match state.encode_frame(wide, scratch.payload_mut()) {
                Ok(len) => len,
                // The encoder refused (it does not, for a valid frame and buffer): the
                // frame is not sent, time goes on.
                Err(_) => return self.skip(1),
            },
            (_, None) => return self.skip(1),
        };
        self.send(scratch, len);
    }

    /// Sends bytes already encoded for this G.711 session (the room's shared mix,
    /// encoded once per codec); `heard`, the 16 kHz frame they encode, only moves this
    /// session's converter history on, so a later own mix joins without a seam.
    pub(super) fn send_g711_encoded(
        &mut self,
        bytes: &[u8; FRAME_SAMPLES],
        heard: &MixFrame,
        scratch: &mut Scratch,
    ) {
        self.down.push(heard);
        scratch.payload_mut()[..FRAME_SAMPLES].copy_from_slice(bytes);
        self.send(scratch, FRAME_SAMPLES);
    }

    /// Writes the next header in front of the `len` payload bytes already in the
    /// scratch packet, protects it when keyed, and sends.
    pub(super) fn send(&mut self, scratch: &mut Scratch, len: usize) {
        let step = self.codec.timestamp_step();
        if !self.sending {
            // Time goes on: the timestamp keeps pace and the first packet after the
            // pause carries the marker (RFC 3551 §4.1).
            self.sender.skip(step);
            return;
        }
        let payload_len = len.min(MAX_PAYLOAD);
        let header = self.sender.next_header(step);
        let packet = &mut scratch.packet;
        // The header is exactly HEADER_LEN bytes and the payload type came from a
        // Codec, so this cannot fail; a failure would only skip the packet.
        if header.write(packet).is_err() {
            return;
        }
        let mut len = HEADER_LEN + payload_len;
        if let Some(srtp) = self.srtp.as_mut() {
            match srtp.protect_rtp(packet, len) {
                Ok(n) => len = n,
                Err(_) => return,
            }
        }
        if len > PACKET_LEN {
            return;
        }
        // The whole buffer by value (one copy, no zeroing); `len` says what is sent.
        let bytes = *packet;
        scratch.outbox.push(Outgoing {
            bound: self.bound.clone(),
            to: self.remote,
            len,
            bytes,
        });
        // Counted for the SR as sent; a send that fails is counted in the session's
        // and the engine's drop counters by the sender.
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload_len as u32);
        self.last_timestamp = header.timestamp;
        self.sent_since_report = true;
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
        let sender = std::mem::take(&mut self.sent_since_report).then(|| SenderInfo {
            ntp: rtcp::ntp_timestamp(SystemTime::now()),
            // The timestamp of the last packet sent, at most one tick behind the NTP
            // time: well inside what lip-sync or RTT need.
            rtp_timestamp: self.last_timestamp,
            packet_count: self.packets_sent,
            octet_count: self.octets_sent,
        });
        let mut cname = [0u8; 32];
        let cname = cname_of(self.sender.ssrc(), &mut cname);
        let mut state = lock(&self.link.rtcp);
        let state = &mut *state;
        let block = state.reception.report_block(&state.round_trip, now);
        if let Some(b) = block {
            state.last_fraction = b.fraction_lost;
        }
        let report = Report {
            ssrc: self.sender.ssrc(),
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
            SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1))
        });
        if let Some(datagram) = scratch.rtcp.get(..len)
            && self.bound.rtcp.send_to(datagram, to).is_ok()
        {
            self.bound.rtcp_sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Moves the RTP timestamp past `ticks` frames not sent (marker on the next).
    pub(super) fn skip(&mut self, ticks: u32) {
        self.sender
            .skip(ticks.saturating_mul(self.codec.timestamp_step()));
    }

    pub(super) fn interrupt(&mut self) {
        if let Some((_, done)) = self.playback.take() {
            let _ = done.send(PlayEnd::Interrupted);
        }
    }
}

/// Adds `extra` to `pcm`, saturating at full scale (frames of any one length).
pub(super) fn add_saturating<const N: usize>(pcm: &mut [i16; N], extra: &[i16; N]) {
    for (p, &e) in pcm.iter_mut().zip(extra) {
        *p = p.saturating_add(e);
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
