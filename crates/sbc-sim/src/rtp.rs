//! The caller's media (RFC 3550; RFC 3551 G.711 and G.722, RFC 7587 Opus; RFC 4733):
//! one task per call that sends a 20 ms packet per tick of a tokio interval — the
//! source audio encoded with the negotiated codec, or a telephone-event packet while a
//! key is being sent — and decodes what it receives into a bounded recording (8 kHz
//! for G.711, 16 kHz for G.722 and Opus; see [`crate::codec`]).
//!
//! Why not `dialbridge_media::MediaEngine`: the engine opens a session once the remote
//! address is known, but a UAC must write its port in the offer before any answer, and
//! the engine's clock has no slot for interleaving RFC 4733 events. Here the socket is
//! bound first (its port goes in the offer) and the task starts with the answer.
//! Nothing is allocated per packet: one send buffer, one decode buffer, codec states
//! made when media starts, and a recording that stops growing at its limit. Each tick
//! is timed against its due time ([`crate::pacing`]): a caller that falls behind its
//! clock says so in its report.

use std::net::SocketAddr;
use std::time::Duration;

use dialbridge_media::rtp::{HEADER_LEN, RtpHeader};
use dialbridge_media::{AudioCodec, Codec, FRAME_MS, FRAME_SAMPLES, RtpView};
use dialbridge_sip::sdp::Negotiated;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::Error;
use crate::answer::prompt::PromptListener;
use crate::audio_check::{SILENCE_RMS, rms};
use crate::codec::{CallCodec, Decoder, Encoder, MAX_DECODED, MAX_FRAME, MAX_PAYLOAD};
use crate::dtmf::{GAP_MS, KEY_MS, Rfc4733Sender, TickPacket};
use crate::pacing::{Pacing, TickMeter};
use crate::source::Player;
pub use crate::source::Source;

/// Largest datagram read; longer ones are cut by the kernel and then dropped.
const MAX_DATAGRAM: usize = 1500;
/// Commands queued to one media task.
const COMMAND_QUEUE: usize = 16;

/// Where and how to send, from the SDP answer (or a later re-INVITE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    /// The `c=` address and `m=` port.
    pub addr: SocketAddr,
    /// The codec both sides agreed.
    pub codec: AudioCodec,
    /// Its payload type, as the answer numbered it (we send with it).
    pub payload_type: u8,
    /// The telephone-event payload type, if negotiated.
    pub telephone_event: Option<u8>,
    /// Whether we send at all (false on hold or `c=0.0.0.0`).
    pub send: bool,
}

impl RemoteMedia {
    /// What the media task needs from a negotiation: the codec as the answer numbered
    /// it (Opus's payload type is dynamic: the answer's number is the one we send
    /// with). A codec we do not speak is refused, naming it.
    pub fn from_negotiated(n: &Negotiated) -> Result<RemoteMedia, String> {
        let codec = AudioCodec::from_rtpmap(n.codec.name, n.codec.clock_rate, n.payload_type)
            .ok_or_else(|| format!("codec {}/{} not offered", n.codec.name, n.codec.clock_rate))?;
        Ok(RemoteMedia {
            addr: n.remote_rtp,
            codec,
            payload_type: n.payload_type,
            telephone_event: n.telephone_event,
            send: n.direction.sends()
                && !n.remote_rtp.ip().is_unspecified()
                && n.remote_rtp.port() != 0,
        })
    }
}

/// Counters and the recording, when the media task ends.
#[derive(Debug, Clone, Default)]
pub struct MediaReport {
    /// What was heard, decoded, mono at [`MediaReport::heard_rate`], in arrival
    /// order, up to the limit.
    pub heard: Vec<i16>,
    /// The rate of `heard`, Hz: 8000 for G.711, 16000 for G.722 and Opus.
    pub heard_rate: u32,
    /// RTP packets sent (audio and events).
    pub sent: u64,
    /// Telephone-event packets among them.
    pub events_sent: u64,
    /// Audio packets received and decoded.
    pub received: u64,
    /// Telephone-event packets received.
    pub events_received: u64,
    /// Packets dropped: not RTP, or an unknown payload type.
    pub dropped: u64,
    /// From [`Media::mark`] to the first audio heard after a quiet frame.
    pub response_after_mark: Option<Duration>,
    /// Whether the send clock kept time (see [`crate::pacing`]).
    pub pacing: Pacing,
}

/// A running media task.
#[derive(Debug)]
pub struct Media {
    commands: mpsc::Sender<Command>,
    task: JoinHandle<MediaReport>,
}

#[derive(Debug)]
enum Command {
    Remote(RemoteMedia),
    Keys(String, oneshot::Sender<bool>),
    /// Keys sounded as tones in the audio (for trunks without telephone-event).
    InBandKeys(String, oneshot::Sender<bool>),
    Mark,
    /// Say when a prompt and the silence after it have been heard.
    ListenForPrompt(PromptListener, oneshot::Sender<()>),
    /// Forget what was heard so far: the checks are about what comes next.
    RestartRecording,
}

impl Media {
    /// Binds the RTP socket on `ip` (any free port); its port goes in the offer.
    pub async fn bind(ip: std::net::IpAddr) -> std::io::Result<UdpSocket> {
        UdpSocket::bind((ip, 0)).await
    }

    /// Starts sending to `remote` and receiving on `socket`; at most `record_limit`
    /// samples are kept, counted at 8 kHz (a 16 kHz recording keeps the same length of
    /// audio in twice the samples). Fails only when a codec state cannot be made.
    pub fn start(
        socket: UdpSocket,
        remote: RemoteMedia,
        source: Source,
        record_limit: usize,
    ) -> Result<Media, Error> {
        let codecs = Codecs::new(remote.codec, &source)?;
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let task = tokio::spawn(run(socket, remote, source, codecs, record_limit, rx));
        Ok(Media { commands, task })
    }

    /// Changes where and how we send (a re-INVITE).
    pub fn set_remote(&self, remote: RemoteMedia) {
        let _ = self.commands.try_send(Command::Remote(remote));
    }

    /// Sends `keys` as RFC 4733 events; resolves to true once the last end packet and
    /// the gap after it are sent, false when they could not be queued.
    pub fn keys(&self, keys: &str) -> oneshot::Receiver<bool> {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.commands.try_send(Command::Keys(keys.to_owned(), done))
            && let Command::Keys(_, done) = e.into_inner()
        {
            let _ = done.send(false);
        }
        rx
    }

    /// Sends `keys` in-band: each key's two DTMF tones (ITU-T Q.23) in the audio, timed
    /// like the RFC 4733 keys. Resolves like [`Media::keys`].
    pub fn keys_in_band(&self, keys: &str) -> oneshot::Receiver<bool> {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self
            .commands
            .try_send(Command::InBandKeys(keys.to_owned(), done))
            && let Command::InBandKeys(_, done) = e.into_inner()
        {
            let _ = done.send(false);
        }
        rx
    }

    /// Starts the response-latency measurement now (after the last key).
    pub fn mark(&self) {
        let _ = self.commands.try_send(Command::Mark);
    }

    /// Resolves once `listener` has heard a prompt and the silence after it (a called
    /// phone keying its answer to the invitation); never, if the media ends first.
    pub fn listen_for_prompt(&self, listener: PromptListener) -> oneshot::Receiver<()> {
        let (heard, rx) = oneshot::channel();
        let _ = self
            .commands
            .try_send(Command::ListenForPrompt(listener, heard));
        rx
    }

    /// Drops what was recorded so far: what is heard from now on is what the report
    /// and the checks look at.
    pub fn restart_recording(&self) {
        let _ = self.commands.try_send(Command::RestartRecording);
    }

    /// Stops the task and returns what it counted and heard.
    pub async fn finish(self) -> MediaReport {
        drop(self.commands);
        self.task.await.unwrap_or_default()
    }
}

/// Measures how long the far end takes to answer the last key with audio: from the
/// mark to the first audible frame that follows a quiet one (a prompt still playing
/// when the key went out does not count as the answer).
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseClock {
    mark: Option<Instant>,
    quiet_seen: bool,
    measured: Option<Duration>,
}

impl ResponseClock {
    /// Starts (or restarts) the measurement.
    pub fn mark(&mut self, now: Instant) {
        *self = ResponseClock {
            mark: Some(now),
            ..ResponseClock::default()
        };
    }

    /// One received frame, at `now`.
    pub fn on_frame(&mut self, samples: &[i16], now: Instant) {
        let Some(at) = self.mark else { return };
        if self.measured.is_some() {
            return;
        }
        if rms(samples) < SILENCE_RMS {
            self.quiet_seen = true;
        } else if self.quiet_seen {
            self.measured = Some(now.saturating_duration_since(at));
        }
    }

    /// The latency, once measured.
    pub fn measured(&self) -> Option<Duration> {
        self.measured
    }
}

/// The codec states and the source player, at the codec's rate; remade only when a
/// re-INVITE changes the codec.
struct Codecs {
    encoder: Encoder,
    decoder: Decoder,
    player: Player,
    /// Samples per 20 ms frame at the sending rate.
    frame_len: usize,
}

impl Codecs {
    fn new(codec: AudioCodec, source: &Source) -> Result<Codecs, Error> {
        let rate = CallCodec::of(codec).send_rate();
        Ok(Codecs {
            encoder: Encoder::new(codec)?,
            decoder: Decoder::new(codec)?,
            player: Player::new(source, rate),
            frame_len: rate.frame_samples(),
        })
    }
}

/// The per-call send/receive state.
struct State {
    remote: RemoteMedia,
    source: Source,
    codecs: Codecs,
    dtmf: Rfc4733Sender,
    /// The queued keys go as tones in the audio, not as telephone-events.
    in_band: bool,
    waiting: Vec<oneshot::Sender<bool>>,
    ssrc: u32,
    sequence: u16,
    timestamp_base: u32,
    audio_marker: bool,
    frame: [i16; MAX_FRAME],
    send_buf: [u8; HEADER_LEN + MAX_PAYLOAD],
    response: ResponseClock,
    /// A prompt being listened for, and whom to tell.
    prompt: Option<(PromptListener, oneshot::Sender<()>)>,
    /// Audio frames received since the last tick (none: the tick was quiet).
    frames_since_tick: u32,
    report: MediaReport,
    /// Most samples recorded, counted at 8 kHz.
    record_limit: usize,
}

async fn run(
    socket: UdpSocket,
    remote: RemoteMedia,
    source: Source,
    codecs: Codecs,
    record_limit: usize,
    mut commands: mpsc::Receiver<Command>,
) -> MediaReport {
    let heard_rate = codecs.decoder.rate().hz();
    let mut state = State {
        remote,
        source,
        codecs,
        dtmf: Rfc4733Sender::new(FRAME_MS, KEY_MS, GAP_MS),
        in_band: false,
        waiting: Vec::new(),
        ssrc: rand::random(),
        sequence: rand::random(),
        timestamp_base: rand::random(),
        audio_marker: true,
        frame: [0; MAX_FRAME],
        send_buf: [0; HEADER_LEN + MAX_PAYLOAD],
        response: ResponseClock::default(),
        prompt: None,
        frames_since_tick: 0,
        report: MediaReport {
            heard_rate,
            ..MediaReport::default()
        },
        record_limit,
    };
    // As for signaling: make tokio see the socket writable before the first try_send.
    let _ = socket.writable().await;
    let start = Instant::now();
    let period = Duration::from_millis(u64::from(FRAME_MS));
    // Tick k is due at start + k × 20 ms (the first at once, as `interval` does).
    let mut ticker = tokio::time::interval_at(start, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut meter = TickMeter::new(period);
    let mut recv_buf = [0u8; MAX_DATAGRAM];
    let mut decoded = [0i16; MAX_DECODED];
    loop {
        tokio::select! {
            at = ticker.tick() => {
                // The timestamp follows the clock even when ticks were skipped.
                let due = at.saturating_duration_since(start);
                let ticks = (due.as_millis() / u128::from(FRAME_MS)) as u32;
                let step = state.remote.codec.timestamp_step();
                let ts = state.timestamp_base.wrapping_add(ticks.wrapping_mul(step));
                // Skip runs a late tick at once, then skips to the next one on the
                // grid: the meter sees the lateness and the gap.
                let on_time = meter.on_tick(due, start.elapsed(), state.remote.send);
                if state.tick(&socket, ts) {
                    meter.sent(on_time);
                }
            }
            received = socket.recv_from(&mut recv_buf) => {
                match received {
                    Ok((len, _from)) => {
                        let packet = recv_buf.get(..len).unwrap_or_default();
                        state.receive(packet, &mut decoded, Instant::now());
                    }
                    // ICMP port unreachable from an earlier send, and the like.
                    Err(_) => continue,
                }
            }
            command = commands.recv() => match command {
                Some(Command::Remote(r)) => state.set_remote(r),
                Some(Command::InBandKeys(keys, done)) => {
                    state.in_band = true;
                    if state.dtmf.queue(&keys) {
                        state.waiting.push(done);
                    } else {
                        let _ = done.send(false);
                    }
                }
                Some(Command::Keys(keys, done)) => {
                    state.in_band = false;
                    if state.dtmf.queue(&keys) {
                        state.waiting.push(done);
                    } else {
                        let _ = done.send(false);
                    }
                }
                Some(Command::Mark) => state.response.mark(Instant::now()),
                Some(Command::ListenForPrompt(listener, heard)) => {
                    state.prompt = Some((listener, heard));
                }
                Some(Command::RestartRecording) => state.report.heard.clear(),
                None => break,
            },
        }
    }
    for done in state.waiting.drain(..) {
        let _ = done.send(false);
    }
    state.report.response_after_mark = state.response.measured();
    state.report.pacing = meter.finish(start.elapsed(), state.remote.send);
    state.report
}

impl State {
    /// A re-INVITE's answer: the new address and payload types; new codec states only
    /// when the codec itself changed (kept as they were if they cannot be made).
    fn set_remote(&mut self, remote: RemoteMedia) {
        if CallCodec::of(remote.codec) != CallCodec::of(self.remote.codec) {
            match Codecs::new(remote.codec, &self.source) {
                Ok(codecs) => {
                    self.codecs = codecs;
                    self.report.heard.clear();
                    self.report.heard_rate = self.codecs.decoder.rate().hz();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot switch codec; media stops");
                    self.remote.send = false;
                    return;
                }
            }
        }
        self.remote = remote;
        self.audio_marker = true;
    }

    /// Runs one tick: the next frame of the source (or a key's event), sent unless on
    /// hold; whether a packet went out.
    fn tick(&mut self, socket: &UdpSocket, timestamp: u32) -> bool {
        // A tick without audio is quiet to a prompt listener: a sender may stop
        // sending when it has nothing to say.
        if std::mem::take(&mut self.frames_since_tick) == 0 {
            self.hear_quiet(Duration::from_millis(u64::from(FRAME_MS)));
        }
        let frame_len = self.codecs.frame_len;
        let rate = self.codecs.encoder.rate().hz();
        let Some(frame) = self.frame.get_mut(..frame_len) else {
            return false;
        };
        // The source advances whether or not we send, like a real talker.
        self.codecs.player.fill(frame);
        let packet = match self.remote.telephone_event {
            _ if self.in_band => match self.dtmf.on_tick(timestamp) {
                // The sender's timing says a key sounds now: its tones replace the audio.
                TickPacket::Event { payload, .. } => {
                    if !payload.end {
                        // The event's duration counts 8 kHz units; the frame is at `rate`.
                        let start =
                            u32::from(payload.duration).saturating_sub(FRAME_SAMPLES as u32);
                        let start = start.saturating_mul(rate / 8000);
                        crate::dtmf::tone_into_at(payload.event, start, frame, rate);
                    }
                    TickPacket::Audio { marker: false }
                }
                audio => audio,
            },
            Some(_) => self.dtmf.on_tick(timestamp),
            None => {
                // No telephone-event negotiated: keys cannot be sent in-band.
                for done in self.waiting.drain(..) {
                    let _ = done.send(false);
                }
                TickPacket::Audio { marker: false }
            }
        };
        if self.dtmf.is_idle() {
            for done in self.waiting.drain(..) {
                let _ = done.send(true);
            }
        }
        if !self.remote.send {
            self.audio_marker = true;
            return false;
        }
        let (header, payload_len) = match packet {
            TickPacket::Audio { marker } => {
                let header = RtpHeader {
                    marker: marker || std::mem::take(&mut self.audio_marker),
                    payload_type: self.remote.payload_type,
                    sequence: self.sequence,
                    timestamp,
                    ssrc: self.ssrc,
                };
                let out = self.send_buf.get_mut(HEADER_LEN..).unwrap_or_default();
                match self.codecs.encoder.encode(frame, out) {
                    Ok(len) => (header, len),
                    Err(e) => {
                        tracing::debug!(error = %e, "frame not encoded");
                        return false;
                    }
                }
            }
            TickPacket::Event {
                payload,
                marker,
                timestamp,
            } => {
                let header = RtpHeader {
                    marker,
                    payload_type: self.remote.telephone_event.unwrap_or_default(),
                    sequence: self.sequence,
                    timestamp,
                    ssrc: self.ssrc,
                };
                let bytes = payload.to_bytes();
                if let Some(out) = self.send_buf.get_mut(HEADER_LEN..HEADER_LEN + 4) {
                    out.copy_from_slice(&bytes);
                }
                self.report.events_sent += 1;
                (header, bytes.len())
            }
        };
        if header.write(&mut self.send_buf).is_err() {
            return false;
        }
        self.sequence = self.sequence.wrapping_add(1);
        let packet = self
            .send_buf
            .get(..HEADER_LEN + payload_len)
            .unwrap_or_default();
        // A full socket buffer drops the packet: late audio is worthless anyway.
        let sent = socket.try_send_to(packet, self.remote.addr).is_ok();
        self.report.sent += u64::from(sent);
        sent
    }

    fn hear_quiet(&mut self, length: Duration) {
        if let Some((listener, _)) = self.prompt.as_mut()
            && listener.on_quiet(length)
        {
            self.prompt_heard();
        }
    }

    fn prompt_heard(&mut self) {
        if let Some((_, heard)) = self.prompt.take() {
            let _ = heard.send(());
        }
    }

    fn receive(&mut self, packet: &[u8], decoded: &mut [i16], now: Instant) {
        let Ok(view) = RtpView::parse(packet) else {
            self.report.dropped += 1;
            return;
        };
        if Some(view.payload_type) == self.remote.telephone_event {
            self.report.events_received += 1;
            return;
        }
        let pt = view.payload_type;
        let ours = CallCodec::of(self.remote.codec)
            .audio_codec()
            .payload_type();
        let n = if pt == self.remote.payload_type || pt == ours {
            self.codecs.decoder.decode(view.payload(), decoded)
        } else if let (Some(_), Some(c)) = (self.remote.codec.g711(), Codec::from_payload_type(pt))
        {
            // A G.711 call takes either law, whichever was agreed (both are 8 kHz).
            c.decode_frame(view.payload(), decoded)
        } else {
            self.report.dropped += 1;
            return;
        };
        self.report.received += 1;
        let samples = decoded.get(..n).unwrap_or_default();
        self.response.on_frame(samples, now);
        self.frames_since_tick += 1;
        if let Some((listener, _)) = self.prompt.as_mut()
            && listener.on_frame(samples, self.report.heard_rate)
        {
            self.prompt_heard();
        }
        let limit = self
            .record_limit
            .saturating_mul(self.report.heard_rate as usize / 8000);
        let room = limit.saturating_sub(self.report.heard.len());
        self.report
            .heard
            .extend_from_slice(samples.get(..n.min(room)).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn response_clock_waits_for_quiet_then_audio() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let loud = [4000i16, -4000].repeat(80);
        let quiet = [0i16; 160];
        let mut clock = ResponseClock::default();
        clock.on_frame(&quiet, at(0));
        clock.on_frame(&loud, at(20));
        assert_eq!(clock.measured(), None, "nothing before the mark");
        clock.mark(at(100));
        clock.on_frame(&loud, at(120));
        assert_eq!(
            clock.measured(),
            None,
            "the prompt still playing is not the answer"
        );
        clock.on_frame(&quiet, at(140));
        clock.on_frame(&loud, at(400));
        assert_eq!(clock.measured(), Some(Duration::from_millis(300)));
        clock.on_frame(&quiet, at(420));
        clock.on_frame(&loud, at(900));
        assert_eq!(
            clock.measured(),
            Some(Duration::from_millis(300)),
            "first answer only"
        );
    }
}
