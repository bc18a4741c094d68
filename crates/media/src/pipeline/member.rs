//! One participant's media inside a room pipeline: its jitter buffer ([`Jitter`], by-
//! value payloads in a pool), its codec state both ways, its in-band DTMF squelch,
//! its comfort noise and concealment, its prompt, and its RTP packetiser (SRTP-
//! protected when keyed) — [`MemberMedia`]. Pure: no sockets, locks or clocks.
//!
//! G.711 members stay narrowband and stateless: outside a room a prompt frame is
//! encoded as it is; in a room they hear the 16 kHz mix decimated by 2 (the shared mix
//! once per room, a talker's own mix with its own [`Downsampler2`], whose history is
//! kept from whatever it heard). G.722 and Opus members own a [`CodecState`] (their
//! encoders and decoders carry state, so nothing encoded is shared between them) and
//! hear 8 kHz prompts through an [`Upsampler2`].

use std::time::Instant;

use crate::comfort_noise::{CN_PAYLOAD_TYPE, ComfortNoise, NoiseGenerator};
use crate::dtmf_squelch::DtmfSquelch;
use crate::halfband::{Downsampler2, Upsampler2};
use crate::jitter::{Concealer, JitterBuffer, JitterConfig, Playout};
use crate::mixer::{Frame, Heard, MIX_SILENCE, MixFrame, Mixer, MixerSlot, SILENCE, add_limited};
use crate::rtp::HEADER_LEN;
use crate::srtp::{MAX_RTP_OVERHEAD, SrtpContext};
use crate::{AudioCodec, CodecState, Error, FRAME_SAMPLES, Playback, RtpSender};

use super::shared::SharedCache;

/// The largest audio payload kept, bytes: 20 ms of G.711 or G.722 is 160; an Opus
/// frame is variable, 80 bytes at our 32 kbit/s and at most 400 at 160 kbit/s (more
/// than any VoIP softphone sends for 20 ms of mono speech). A longer payload is cut —
/// which for Opus makes it undecodable, and it is concealed.
pub const MAX_PAYLOAD: usize = 400;
/// The payload G.711 and G.722 members keep: one 20 ms frame, 160 bytes.
pub const COMPACT_PAYLOAD: usize = 160;
/// One RTP packet: header, the largest payload (see [`MAX_PAYLOAD`]), room for the
/// SRTP tag.
pub const PACKET_LEN: usize = HEADER_LEN + MAX_PAYLOAD + MAX_RTP_OVERHEAD;

/// One received audio (or comfort noise) payload of at most `N` bytes, by value: the
/// jitter buffer's ring holds these, so feeding the mixer allocates nothing and
/// shares no buffer between threads.
#[derive(Debug, Clone, Copy)]
pub struct Payload<const N: usize> {
    len: u16,
    /// An RFC 3389 comfort noise payload (PT 13), not audio.
    comfort_noise: bool,
    bytes: [u8; N],
}

impl<const N: usize> Payload<N> {
    /// The first `N` bytes of `payload` (we ask for 20 ms packets).
    pub fn new(payload: &[u8], comfort_noise: bool) -> Self {
        let len = payload.len().min(N);
        let mut bytes = [0u8; N];
        if let (Some(to), Some(from)) = (bytes.get_mut(..len), payload.get(..len)) {
            to.copy_from_slice(from);
        }
        Self {
            len: u16::try_from(len).unwrap_or(u16::MAX),
            comfort_noise,
            bytes,
        }
    }

    /// The payload bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// True for an RFC 3389 comfort noise payload.
    pub fn is_comfort_noise(&self) -> bool {
        self.comfort_noise
    }
}

/// A member's jitter buffer, its payloads sized for its codec: the thousands of G.711
/// members keep 160-byte ones, only Opus members the [`MAX_PAYLOAD`] ones.
#[derive(Debug)]
pub enum Jitter {
    /// G.711, G.722.
    Compact(JitterBuffer<Payload<COMPACT_PAYLOAD>>),
    /// Opus.
    Large(JitterBuffer<Payload<MAX_PAYLOAD>>),
}

/// What [`Jitter::pop`] gives. A value on the caller's stack for one call, never
/// stored: the size difference between variants costs nothing.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Popped {
    /// From a [`Jitter::Compact`] buffer.
    Compact(Playout<Payload<COMPACT_PAYLOAD>>),
    /// From a [`Jitter::Large`] buffer.
    Large(Playout<Payload<MAX_PAYLOAD>>),
}

impl Jitter {
    /// An empty buffer for `codec` (allocates the ring).
    pub fn new(codec: AudioCodec) -> Self {
        Self::tuned(codec, false)
    }

    /// An empty buffer for `codec`, tuned for a steady stream ([`JitterConfig::steady`]:
    /// a leg between bridges) or for a caller's.
    pub fn tuned(codec: AudioCodec, steady: bool) -> Self {
        let config = if steady {
            jitter_config(codec).steady()
        } else {
            jitter_config(codec)
        };
        match codec {
            AudioCodec::Opus { .. } => Self::Large(JitterBuffer::new(config)),
            AudioCodec::G711(_) | AudioCodec::G722 => Self::Compact(JitterBuffer::new(config)),
        }
    }

    /// Offers a received payload (copied by value into the ring).
    pub fn push(
        &mut self,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
        comfort_noise: bool,
        now: Instant,
    ) {
        match self {
            Self::Compact(jb) => {
                jb.push(
                    sequence,
                    timestamp,
                    Payload::new(payload, comfort_noise),
                    now,
                );
            }
            Self::Large(jb) => {
                jb.push(
                    sequence,
                    timestamp,
                    Payload::new(payload, comfort_noise),
                    now,
                );
            }
        }
    }

    /// The frame to play this tick.
    pub fn pop(&mut self, now: Instant) -> Popped {
        match self {
            Self::Compact(jb) => Popped::Compact(jb.pop(now)),
            Self::Large(jb) => Popped::Large(jb.pop(now)),
        }
    }

    /// Frames waiting.
    pub fn depth(&self) -> usize {
        match self {
            Self::Compact(jb) => jb.depth(),
            Self::Large(jb) => jb.depth(),
        }
    }

    /// The buffer's counters (late, lost, ...).
    pub fn stats(&self) -> crate::jitter::JitterStats {
        match self {
            Self::Compact(jb) => jb.stats(),
            Self::Large(jb) => jb.stats(),
        }
    }
}

/// Whether a received packet of payload type `payload_type` goes into the room's
/// jitter buffer of a member sending `audio_pt`: `Some(comfort_noise)` for its audio
/// or RFC 3389 comfort noise (which keeps its place in the sequence, so a silence is
/// not taken for loss), `None` for anything else (RFC 4733 events go to the call).
pub fn room_payload(payload_type: u8, audio_pt: u8) -> Option<bool> {
    if payload_type == audio_pt {
        Some(false)
    } else if payload_type == CN_PAYLOAD_TYPE {
        Some(true)
    } else {
        None
    }
}

/// The jitter buffer of a member: its timestamps tick at the codec's RTP clock.
fn jitter_config(codec: AudioCodec) -> JitterConfig {
    JitterConfig {
        frame_ts: codec.timestamp_step(),
        clock_rate: codec.clock_rate(),
        ..JitterConfig::default()
    }
}

/// The buffers a tick works in, reused every tick (one per clock, not per member).
#[derive(Debug)]
pub struct Scratch {
    pub(crate) pcm: Frame,
    pub(crate) prompt: Frame,
    pub(crate) wide: MixFrame,
    /// The packet being built; a send returns its length in here.
    pub(crate) packet: [u8; PACKET_LEN],
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            pcm: SILENCE,
            prompt: SILENCE,
            wide: MIX_SILENCE,
            packet: [0; PACKET_LEN],
        }
    }
}

impl Scratch {
    /// The payload area of the packet buffer ([`MAX_PAYLOAD`] bytes after the header;
    /// the constant sizes make the split infallible).
    fn payload_mut(&mut self) -> &mut [u8] {
        let (_, rest) = self.packet.split_at_mut(HEADER_LEN);
        rest.split_at_mut(MAX_PAYLOAD).0
    }

    /// The packet built by the last send.
    pub fn packet(&self) -> &[u8; PACKET_LEN] {
        &self.packet
    }
}

/// What the RTCP sender report says of a stream (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentCounts {
    /// The timestamp of the last packet sent.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// Hears a member's received audio where the room decodes it, on the clock: a call
/// that looks for in-band DTMF in the meeting gets each frame here instead of every
/// packet queued to its task (a wake-up per packet) and decoded again.
pub trait InBandListener: Send + std::fmt::Debug {
    /// One received 20 ms frame at 8 kHz, decoded (before the room's DTMF squelch),
    /// played out of the jitter buffer at `at`. Concealed frames and comfort noise are
    /// not heard: they carry no key.
    fn frame(&mut self, pcm: &Frame, at: Instant);
}

/// One member's media state: everything the tick needs to turn its received packets
/// into mixer input and what it hears into its next RTP packet.
#[derive(Debug)]
pub struct MemberMedia {
    codec: AudioCodec,
    /// G.722 and Opus: encoder and decoder state (`None` for G.711).
    state: Option<Box<CodecState>>,
    /// G.711 in a room: the 16 → 8 kHz converter of what this member hears.
    down: Downsampler2,
    /// Wideband codecs: the 8 → 16 kHz converter of this member's prompts.
    up: Upsampler2,
    /// RFC 3389: the far end's comfort noise, played in a room from a CN packet until
    /// its next audio packet (`noise_active`).
    noise: NoiseGenerator,
    noise_active: bool,
    /// G.711 without RFC 4733 events: keeps the caller's keyed digits out of the mix
    /// (delays its audio one tick, silences DTMF frames).
    squelch: Option<Box<DtmfSquelch>>,
    /// The same for G.722 and Opus without RFC 4733 events.
    wide_squelch: Option<Box<WideSquelch>>,
    concealer: Concealer,
    sender: RtpSender,
    playback: Option<Playback>,
    /// False while the far end holds the call (RFC 3264 §8.4 `sendonly`/`inactive`).
    sending: bool,
    srtp: Option<SrtpContext>,
    /// RTCP sender state (§6.4.1).
    packets_sent: u32,
    octets_sent: u32,
    last_timestamp: u32,
    sent_since_report: bool,
    /// Frames concealed (lost or late) since the start.
    concealed: u64,
    /// Hears the decoded audio in a room (in-band DTMF), with the 16 → 8 kHz
    /// converter a wideband member's frames go through for it.
    listener: Option<(Box<dyn InBandListener>, Downsampler2)>,
}

impl MemberMedia {
    /// Allocates the codec state of G.722 and Opus (fails if the Opus codec does), and
    /// the DTMF squelch of a member whose digits come in-band (no `telephone_event`).
    /// `srtp`, when keyed, protects every packet sent.
    pub fn new(
        codec: AudioCodec,
        telephone_event: bool,
        sender: RtpSender,
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
            codec,
            state,
            down: Downsampler2::default(),
            up: Upsampler2::default(),
            noise: NoiseGenerator::new(sender.ssrc()),
            noise_active: false,
            squelch,
            wide_squelch,
            concealer: Concealer::default(),
            sender,
            playback: None,
            sending: true,
            srtp,
            packets_sent: 0,
            octets_sent: 0,
            last_timestamp: 0,
            sent_since_report: false,
            concealed: 0,
            listener: None,
        })
    }

    /// The codec this member sends and receives.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// The SSRC of the stream sent to this member.
    pub fn ssrc(&self) -> u32 {
        self.sender.ssrc()
    }

    /// Plays `playback` to this member (over the room, in a room), replacing any.
    pub fn play(&mut self, playback: Playback) {
        self.playback = Some(playback);
    }

    /// Stops the member's prompt; true if one was playing.
    pub fn stop_playback(&mut self) -> bool {
        self.playback.take().is_some()
    }

    /// True while a prompt is playing (it ends on the tick that plays its last frame).
    pub fn is_playing(&self) -> bool {
        self.playback.is_some()
    }

    /// Pauses (`false`) or resumes sending, for hold; timestamps run on.
    pub fn set_sending(&mut self, sending: bool) {
        self.sending = sending;
    }

    /// Sets (or with `None`, removes) what hears this member's decoded audio in a
    /// room; returns whether one was set before.
    pub fn set_listener(&mut self, listener: Option<Box<dyn InBandListener>>) -> bool {
        let had = self.listener.is_some();
        self.listener = listener.map(|l| (l, Downsampler2::default()));
        had
    }

    /// Frames concealed since the start (lost, or the buffer ran dry while playing).
    pub fn concealed(&self) -> u64 {
        self.concealed
    }

    /// Entering a room: what was heard and decoded before belongs to no conversation.
    /// (The owner gives the member a fresh [`Jitter`] too.)
    pub fn enter_room(&mut self) {
        self.concealer = Concealer::default();
        self.noise_active = false;
        if let Some(squelch) = self.squelch.as_mut() {
            squelch.reset();
        }
        if let Some(squelch) = self.wide_squelch.as_mut() {
            squelch.reset();
        }
    }

    /// The sender report's counters, if an RTP packet was sent since the last call
    /// (else the report is an RR).
    pub fn take_sent(&mut self) -> Option<SentCounts> {
        std::mem::take(&mut self.sent_since_report).then_some(SentCounts {
            rtp_timestamp: self.last_timestamp,
            packet_count: self.packets_sent,
            octet_count: self.octets_sent,
        })
    }

    /// Moves the RTP timestamp past `ticks` frames not sent (marker on the next).
    pub fn skip(&mut self, ticks: u32) {
        self.sender
            .skip(ticks.saturating_mul(self.codec.timestamp_step()));
    }

    /// One 20 ms packet of prompt or silence (outside a room), built in
    /// `scratch.packet`; returns its length, or `None` when nothing is sent.
    pub fn tick_alone(&mut self, scratch: &mut Scratch) -> Option<usize> {
        scratch.pcm = SILENCE;
        self.mix_prompt(&mut scratch.pcm, &mut scratch.prompt);
        let pcm = scratch.pcm;
        self.encode_and_send(&pcm, scratch)
    }

    /// Moves this tick's frame from the jitter buffer into the mixer: G.711 into the
    /// narrowband input, G.722 and Opus into the 16 kHz one.
    pub(crate) fn feed(
        &mut self,
        popped: Popped,
        mixer: &mut Mixer,
        slot: MixerSlot,
        now: Instant,
    ) {
        match popped {
            Popped::Compact(playout) => self.play_out(playout, mixer, slot, now),
            Popped::Large(playout) => self.play_out(playout, mixer, slot, now),
        }
    }

    /// Feeds the mixer what the jitter buffer gave for this tick.
    fn play_out<const N: usize>(
        &mut self,
        playout: Playout<Payload<N>>,
        mixer: &mut Mixer,
        slot: MixerSlot,
        now: Instant,
    ) {
        match playout {
            Playout::Frame { item, .. } if item.comfort_noise => {
                // RFC 3389 §4: a SID frame; an empty or malformed one keeps the level.
                if let Some(cn) = ComfortNoise::parse(item.as_slice()) {
                    self.noise.set(&cn);
                }
                self.noise_active = true;
                self.fill_noise(mixer, slot);
            }
            Playout::Frame { item, .. } => {
                self.noise_active = false;
                match (self.codec, self.state.as_mut()) {
                    (AudioCodec::G711(codec), _) => {
                        if let Some(input) = mixer.narrow_input_mut(slot) {
                            let n = codec.decode_frame(item.as_slice(), input);
                            if let Some(rest) = input.get_mut(n..) {
                                rest.fill(0);
                            }
                            if let Some((listener, _)) = self.listener.as_mut() {
                                listener.frame(input, now);
                            }
                            self.concealer.good(input);
                            squelch(self.squelch.as_deref_mut(), input);
                        }
                    }
                    (_, Some(state)) => {
                        if let Some(input) = mixer.input_mut(slot) {
                            let n = state.decode_frame(item.as_slice(), input);
                            if let Some(rest) = input.get_mut(n..) {
                                rest.fill(0);
                            }
                            if let Some((listener, down)) = self.listener.as_mut() {
                                let mut narrow = SILENCE;
                                down.process(input, &mut narrow);
                                listener.frame(&narrow, now);
                            }
                            self.concealer.good(input);
                            wide_squelch(self.wide_squelch.as_deref_mut(), input);
                        }
                    }
                    (_, None) => {}
                }
            }
            Playout::Conceal | Playout::Buffering if self.noise_active => {
                self.fill_noise(mixer, slot);
            }
            Playout::Conceal => {
                self.concealed += 1;
                match (self.codec, self.state.as_mut()) {
                    (AudioCodec::G711(_), _) => {
                        if let Some(input) = mixer.narrow_input_mut(slot) {
                            self.concealer.conceal(input);
                            squelch(self.squelch.as_deref_mut(), input);
                        }
                    }
                    (_, state) => {
                        if let Some(input) = mixer.input_mut(slot) {
                            // Opus conceals from its own state; G.722 repeats and fades.
                            if state.is_none_or(|s| s.conceal(input) == 0) {
                                self.concealer.conceal(input);
                            }
                            wide_squelch(self.wide_squelch.as_deref_mut(), input);
                        }
                    }
                }
            }
            // Nothing to play yet: not mixed this tick.
            Playout::Buffering => {}
        }
    }

    /// This tick's input is the far end's comfort noise.
    fn fill_noise(&mut self, mixer: &mut Mixer, slot: MixerSlot) {
        match self.codec {
            AudioCodec::G711(_) => {
                if let Some(input) = mixer.narrow_input_mut(slot) {
                    self.noise.fill(input);
                    squelch(self.squelch.as_deref_mut(), input);
                }
            }
            // The CN model is an 8 kHz one (RFC 3389 §1); its level is what matters.
            _ => {
                if let Some(input) = mixer.input_mut(slot) {
                    self.noise.fill(input);
                    wide_squelch(self.wide_squelch.as_deref_mut(), input);
                }
            }
        }
    }

    /// Builds the packet of what this member hears, plus the room prompt and its own
    /// prompt, in `scratch.packet`; returns its length (`None`: nothing to send).
    pub(crate) fn send_heard(
        &mut self,
        heard: Heard<'_>,
        room_prompt: Option<&MixFrame>,
        shared: &mut SharedCache<'_>,
        scratch: &mut Scratch,
    ) -> Option<usize> {
        match (self.codec, heard) {
            (AudioCodec::G711(codec), Heard::Shared(_)) if self.playback.is_none() => {
                let wide = shared.wide();
                let bytes = shared.encoded(codec);
                self.send_g711_encoded(bytes, wide, scratch)
            }
            (AudioCodec::G711(_), Heard::Shared(_)) => {
                scratch.pcm = *shared.narrow();
                self.down.push(shared.wide());
                self.mix_prompt(&mut scratch.pcm, &mut scratch.prompt);
                let pcm = scratch.pcm;
                self.encode_and_send(&pcm, scratch)
            }
            (AudioCodec::G711(_), Heard::Own(own)) => {
                scratch.wide = *own;
                if let Some(extra) = room_prompt {
                    add_limited(&mut scratch.wide, extra);
                }
                if self.playback.is_some() {
                    let wide = scratch.wide;
                    self.down.process(&wide, &mut scratch.pcm);
                    self.mix_prompt(&mut scratch.pcm, &mut scratch.prompt);
                    let pcm = scratch.pcm;
                    self.encode_and_send(&pcm, scratch)
                } else {
                    let wide = scratch.wide;
                    self.encode_wide_and_send(&wide, scratch)
                }
            }
            (_, heard) => {
                scratch.wide = match heard {
                    Heard::Shared(_) => *shared.wide(),
                    Heard::Own(own) => {
                        let mut wide = *own;
                        if let Some(extra) = room_prompt {
                            add_limited(&mut wide, extra);
                        }
                        wide
                    }
                };
                if self.playback.is_some() {
                    self.mix_prompt_wide(scratch);
                }
                let wide = scratch.wide;
                self.encode_wide_and_send(&wide, scratch)
            }
        }
    }

    /// Adds the next frame of the playing prompt (if any) to `pcm`, through the limiter.
    fn mix_prompt(&mut self, pcm: &mut Frame, buf: &mut Frame) {
        let Some(playback) = self.playback.as_mut() else {
            return;
        };
        playback.fill(buf);
        add_limited(pcm, buf);
        if playback.finished() {
            self.playback = None;
        }
    }

    /// Adds the next frame of the playing prompt (if any), upsampled, to
    /// `scratch.wide` (for the wideband codecs).
    fn mix_prompt_wide(&mut self, scratch: &mut Scratch) {
        scratch.pcm = SILENCE;
        self.mix_prompt(&mut scratch.pcm, &mut scratch.prompt);
        let mut wide = MIX_SILENCE;
        self.up.process(&scratch.pcm, &mut wide);
        add_limited(&mut scratch.wide, &wide);
    }

    /// Encodes and packetises one 8 kHz frame: as it is for G.711, upsampled for the
    /// wideband codecs.
    fn encode_and_send(&mut self, pcm: &Frame, scratch: &mut Scratch) -> Option<usize> {
        match self.codec {
            AudioCodec::G711(codec) => {
                let len = codec.encode_frame(pcm, scratch.payload_mut());
                self.send(scratch, len)
            }
            _ => {
                let mut wide = MIX_SILENCE;
                self.up.process(pcm, &mut wide);
                self.encode_wide_and_send(&wide, scratch)
            }
        }
    }

    /// Encodes and packetises one 16 kHz frame of the mix: decimated for G.711 (with
    /// this member's converter), as it is for the wideband codecs.
    fn encode_wide_and_send(&mut self, wide: &MixFrame, scratch: &mut Scratch) -> Option<usize> {
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
                Err(_) => {
                    self.skip(1);
                    return None;
                }
            },
            (_, None) => {
                self.skip(1);
                return None;
            }
        };
        self.send(scratch, len)
    }

    /// Packetises bytes already encoded for this G.711 member (the room's shared mix,
    /// encoded once per codec); `heard`, the 16 kHz frame they encode, only moves this
    /// member's converter history on, so a later own mix joins without a seam.
    fn send_g711_encoded(
        &mut self,
        bytes: &[u8; FRAME_SAMPLES],
        heard: &MixFrame,
        scratch: &mut Scratch,
    ) -> Option<usize> {
        self.down.push(heard);
        if let Some(payload) = scratch.payload_mut().get_mut(..FRAME_SAMPLES) {
            payload.copy_from_slice(bytes);
        }
        self.send(scratch, FRAME_SAMPLES)
    }

    /// Writes the next header in front of the `len` payload bytes already in the
    /// scratch packet and protects it when keyed; returns the datagram's length.
    fn send(&mut self, scratch: &mut Scratch, len: usize) -> Option<usize> {
        let step = self.codec.timestamp_step();
        if !self.sending {
            // Time goes on: the timestamp keeps pace and the first packet after the
            // pause carries the marker (RFC 3551 §4.1).
            self.sender.skip(step);
            return None;
        }
        let payload_len = len.min(MAX_PAYLOAD);
        let header = self.sender.next_header(step);
        let packet = &mut scratch.packet;
        // The header is exactly HEADER_LEN bytes and the payload type came from a
        // Codec, so this cannot fail; a failure would only skip the packet.
        header.write(packet).ok()?;
        let mut len = HEADER_LEN + payload_len;
        if let Some(srtp) = self.srtp.as_mut() {
            len = srtp.protect_rtp(packet, len).ok()?;
        }
        if len > PACKET_LEN {
            return None;
        }
        // Counted for the SR as sent; a send that fails is counted by the owner.
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload_len as u32);
        self.last_timestamp = header.timestamp;
        self.sent_since_report = true;
        Some(len)
    }
}

/// In-band DTMF (G.711 without telephone-events): the frame mixed is the squelch's
/// output, one tick late and silenced around key presses.
fn squelch(squelch: Option<&mut DtmfSquelch>, input: &mut Frame) {
    if let Some(squelch) = squelch {
        squelch.process(input);
    }
}

/// In-band DTMF of a wideband member (G.722, Opus without telephone-events): the
/// squelch decides on the frame decimated to 8 kHz, and the 16 kHz frame goes
/// through a one-tick delay line of its own, silenced when the squelch silences.
#[derive(Debug, Clone)]
struct WideSquelch {
    dtmf: DtmfSquelch,
    down: Downsampler2,
    held: MixFrame,
}

impl Default for WideSquelch {
    fn default() -> Self {
        Self {
            dtmf: DtmfSquelch::new(),
            down: Downsampler2::default(),
            held: MIX_SILENCE,
        }
    }
}

impl WideSquelch {
    /// Replaces `input` with the previous tick's frame, silenced around key presses.
    fn process(&mut self, input: &mut MixFrame) {
        let mut narrow = SILENCE;
        self.down.process(input, &mut narrow);
        let silenced = self.dtmf.process(&mut narrow);
        std::mem::swap(&mut self.held, input);
        if silenced {
            input.fill(0);
        }
    }

    fn reset(&mut self) {
        self.dtmf.reset();
        self.down.reset();
        self.held = MIX_SILENCE;
    }
}

fn wide_squelch(squelch: Option<&mut WideSquelch>, input: &mut MixFrame) {
    if let Some(squelch) = squelch {
        squelch.process(input);
    }
}
