//! Opus (RFC 6716) for softphones, through `opus-rs`, framed like G.711: one 20 ms frame
//! of mono PCM in, one packet out, and back. RTP conventions of RFC 7587: a dynamic
//! payload type, `a=rtpmap:<pt> opus/48000/2` whatever the audio rate (§7), the RTP clock
//! always 48 kHz (§4.1), one Opus packet per RTP payload.
//!
//! Why `opus-rs` (a pure-Rust port of libopus 1.6, BSD-3-Clause like libopus): it builds
//! with the Rust toolchain alone, so `cargo run` works on a machine with neither a
//! system libopus nor pkg-config nor cmake, the three things every libopus binding on
//! crates.io needs (they either link libopus through pkg-config or build their bundled
//! copy with cmake). It interoperates with libopus both ways: libopus 1.3.1 (Debian
//! bookworm's) decodes its packets, and it decodes libopus's to within one LSB of what
//! libopus itself gives (packet loss concealment aside, which libopus changed after
//! 1.3); 400,000 random and mutated packets, FEC decoding included, gave errors and
//! never a panic. Its cost is libopus's on speech (0.2–0.4 ms to encode a 20 ms frame at
//! complexity 9, ~16 µs to decode one), but it keeps a steady tone in SILK where libopus
//! switches to its cheaper CELT mode (the `codec` bench's tone: 0.4 ms against 57 µs).
//! The workspace builds it optimised even in dev profiles
//! (`[profile.dev.package.opus-rs]`) so that debug tests keep real time.
//!
//! Decoding never fails from the caller's point of view: a packet the decoder rejects is
//! counted and concealed, as a lost one is (packet loss concealment, RFC 6716 §4.4), so
//! bytes from the network can only ever produce audio. Neither direction allocates per
//! frame: the decoder's floating-point output goes through a buffer allocated with it.

use crate::Error;

/// The RTP clock rate of Opus, Hz, whatever the audio rate (RFC 7587 §4.1).
pub const OPUS_CLOCK_RATE: u32 = 48_000;
/// The largest packet one Opus frame can produce, octets (RFC 6716 §3.4, R2).
pub const OPUS_MAX_PACKET: usize = 1275;
/// The bit rate we ask for: wideband speech at 32 kbit/s is transparent enough for a
/// conference and leaves room for in-band FEC.
pub const OPUS_BITRATE: i32 = 32_000;
/// The loss rate we tell the encoder to expect, percent: enables in-band FEC (LBRR) for
/// peers that decode it.
const EXPECTED_LOSS_PERCENT: i32 = 5;
/// The smallest output buffer the encoder writes a packet into, octets: a TOC octet and
/// one of payload.
const MIN_PACKET: usize = 2;
/// The longest packet a peer may send, ms (RFC 6716 §3.2.5: 120 ms in all).
const MAX_PACKET_MS: usize = 120;

/// The PCM rate we run Opus at on our side; the wire format is the same for both
/// (RFC 7587 §4.1: the decoder picks its own output rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpusRate {
    /// 16 kHz: matches a wideband conference mix, no resampling for G.722 peers.
    Wideband,
    /// 48 kHz: full band.
    Fullband,
}

impl OpusRate {
    /// Samples per second.
    pub const fn hz(self) -> u32 {
        match self {
            Self::Wideband => 16_000,
            Self::Fullband => 48_000,
        }
    }

    /// Samples in a 20 ms frame.
    pub const fn frame_samples(self) -> usize {
        (self.hz() / 50) as usize
    }

    /// RTP timestamp units per frame: always 960 (20 ms at 48 kHz).
    pub const fn frame_timestamp_step(self) -> u32 {
        OPUS_CLOCK_RATE / 50
    }

    /// The rate as `opus-rs` takes it.
    const fn hz_i32(self) -> i32 {
        match self {
            Self::Wideband => 16_000,
            Self::Fullband => 48_000,
        }
    }
}

/// An Opus encoder: 20 ms of mono PCM at [`OpusRate`] in, one packet out.
pub struct OpusEncoder {
    inner: opus_rs::OpusEncoder,
    rate: OpusRate,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("rate", &self.rate)
            .field("bitrate_bps", &self.inner.bitrate_bps)
            .field("use_inband_fec", &self.inner.use_inband_fec)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// A VoIP-tuned mono encoder at [`OPUS_BITRATE`] (VBR) with in-band FEC.
    pub fn new(rate: OpusRate) -> Result<Self, Error> {
        let mut inner = opus_rs::OpusEncoder::new(rate.hz_i32(), 1, opus_rs::Application::Voip)
            .map_err(host_fault)?;
        inner.bitrate_bps = OPUS_BITRATE;
        inner.use_cbr = false;
        inner.use_inband_fec = true;
        inner.packet_loss_perc = EXPECTED_LOSS_PERCENT;
        Ok(Self { inner, rate })
    }

    /// The PCM rate this encoder takes.
    pub fn rate(&self) -> OpusRate {
        self.rate
    }

    /// Encodes one 20 ms frame (`rate.frame_samples()` samples; a shorter `pcm` is
    /// padded with silence, a longer one cut) into `out` and returns the packet length.
    /// `out` should hold [`OPUS_MAX_PACKET`] octets; a smaller one caps the bit rate of
    /// this frame (down to a two-octet packet), one of fewer than two octets is
    /// [`Error::BufferTooSmall`]. Allocation-free.
    pub fn encode_frame(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, Error> {
        if out.len() < MIN_PACKET {
            return Err(Error::BufferTooSmall {
                needed: MIN_PACKET,
                available: out.len(),
            });
        }
        let n = self.rate.frame_samples();
        let mut frame = [0i16; 960];
        let len = pcm.len().min(n);
        // `n` is at most 960 and `len` at most `n`: the slices are in bounds.
        frame[..len].copy_from_slice(&pcm[..len]);
        self.inner
            .encode_i16(&frame[..n], n, out)
            .map_err(|e| match e {
                // opus-rs says so when a frame's minimum does not fit.
                "Output buffer too small" => Error::BufferTooSmall {
                    needed: OPUS_MAX_PACKET,
                    available: out.len(),
                },
                _ => host_fault(e),
            })
    }
}

/// An Opus decoder with packet loss concealment: any packet, or none, in; 20 ms of mono
/// PCM at [`OpusRate`] out.
pub struct OpusDecoder {
    inner: opus_rs::OpusDecoder,
    rate: OpusRate,
    rejected: u64,
    /// The decoder's output before it is rounded to 16 bits: room for the longest packet.
    float: Box<[f32]>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("rate", &self.rate)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A mono decoder producing PCM at `rate`.
    pub fn new(rate: OpusRate) -> Result<Self, Error> {
        let inner = opus_rs::OpusDecoder::new(rate.hz_i32(), 1).map_err(host_fault)?;
        Ok(Self {
            inner,
            rate,
            rejected: 0,
            float: vec![0.0; rate.frame_samples() / 20 * MAX_PACKET_MS].into_boxed_slice(),
        })
    }

    /// The PCM rate this decoder gives.
    pub fn rate(&self) -> OpusRate {
        self.rate
    }

    /// Packets the decoder refused (malformed, or longer than `out` holds) and that were
    /// concealed instead.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Decodes one packet into `out` and returns the samples written (normally one
    /// frame; a peer may send longer packets, which need a larger `out`). A packet that
    /// cannot be decoded into `out` is counted in [`Self::rejected`] and concealed: it
    /// never fails. An empty `packet` means "lost" (RFC 6716 §4.4). Allocation-free.
    pub fn decode_frame(&mut self, packet: &[u8], out: &mut [i16]) -> usize {
        if packet.is_empty() {
            return self.conceal(out);
        }
        let room = out.len().min(self.float.len());
        match self.inner.decode(packet, room, &mut self.float[..room]) {
            Ok(n) => to_i16(&self.float[..n.min(room)], out),
            Err(_) => {
                self.rejected += 1;
                self.conceal(out)
            }
        }
    }

    /// Packet loss concealment: extrapolates one frame from the decoder's history into
    /// `out` and returns the samples written (0 if `out` is shorter than a frame).
    pub fn conceal(&mut self, out: &mut [i16]) -> usize {
        let n = self.rate.frame_samples();
        let Some(frame) = out.get_mut(..n) else {
            return 0;
        };
        // An empty packet conceals exactly `n` samples (a whole number of 2.5 ms).
        match self.inner.decode(&[], n, &mut self.float[..n]) {
            Ok(written) => to_i16(&self.float[..written.min(n)], frame),
            Err(_) => {
                frame.fill(0);
                n
            }
        }
    }

    /// Recovers the frame *before* `next_packet` from its in-band FEC data (LBRR), when
    /// the peer sent it, or conceals it otherwise; call it for a lost packet when the
    /// following one has already arrived. Returns the samples written.
    pub fn recover_from_fec(&mut self, next_packet: &[u8], out: &mut [i16]) -> usize {
        let n = self.rate.frame_samples();
        if out.len() < n {
            return 0;
        }
        match self.inner.decode_fec(next_packet, n, &mut self.float[..n]) {
            Ok(written) => to_i16(&self.float[..written.min(n)], out),
            Err(_) => self.conceal(out),
        }
    }
}

/// Rounds the decoder's output (full scale ±1.0) to 16-bit PCM, saturating, as libopus's
/// `opus_decode` does; returns the samples written.
fn to_i16(float: &[f32], out: &mut [i16]) -> usize {
    let n = float.len().min(out.len());
    for (o, &x) in out[..n].iter_mut().zip(&float[..n]) {
        // `as` saturates (and maps NaN to 0).
        *o = (x * 32_768.0).round_ties_even() as i16;
    }
    n
}

/// Codec failures that are not the peer's doing: a bad argument we never pass (the rate
/// and channel count are fixed by [`OpusRate`]). The crate's [`Error`] has no codec
/// variant yet, so they travel as host I/O errors.
fn host_fault(e: &'static str) -> Error {
    Error::Io(std::io::Error::other(format!("opus: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: OpusRate, frames: usize) -> Vec<i16> {
        let hz = f64::from(rate.hz());
        (0..frames * rate.frame_samples())
            .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / hz).sin()) as i16)
            .collect()
    }

    #[test]
    fn rates_and_timestamps() {
        assert_eq!(OpusRate::Wideband.frame_samples(), 320);
        assert_eq!(OpusRate::Fullband.frame_samples(), 960);
        assert_eq!(OpusRate::Wideband.frame_timestamp_step(), 960);
    }

    #[test]
    fn round_trip_keeps_energy() {
        for rate in [OpusRate::Wideband, OpusRate::Fullband] {
            let input = sine(440.0, rate, 50);
            let mut enc = OpusEncoder::new(rate).unwrap();
            let mut dec = OpusDecoder::new(rate).unwrap();
            let mut packet = [0u8; OPUS_MAX_PACKET];
            let mut out = vec![0i16; input.len()];
            for (pcm, o) in input
                .chunks(rate.frame_samples())
                .zip(out.chunks_mut(rate.frame_samples()))
            {
                let len = enc.encode_frame(pcm, &mut packet).unwrap();
                assert!(len > 0 && len < 200, "{len}");
                assert_eq!(dec.decode_frame(&packet[..len], o), rate.frame_samples());
            }
            let energy = |x: &[i16]| x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            let half = out.len() / 2;
            let ratio = energy(&out[half..]) / energy(&input[half..]);
            assert!((0.7..1.4).contains(&ratio), "{rate:?}: {ratio}");
        }
    }

    #[test]
    fn garbage_is_concealed_and_counted() {
        let mut dec = OpusDecoder::new(OpusRate::Wideband).unwrap();
        let mut out = [0i16; 320];
        // TOC code 3 (arbitrary number of frames) with a frame count of 0 is invalid.
        assert_eq!(dec.decode_frame(&[0x03, 0x00], &mut out), 320);
        assert_eq!(dec.rejected(), 1);
        assert_eq!(dec.decode_frame(&[], &mut out), 320);
        assert_eq!(dec.rejected(), 1);
        assert_eq!(dec.conceal(&mut [0i16; 100]), 0);
    }

    /// Bytes from the network, random or valid packets with bits flipped and cut short,
    /// through both decoding paths: always audio or concealment, never a panic.
    #[test]
    fn hostile_packets_are_decoded_or_concealed() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for rate in [OpusRate::Wideband, OpusRate::Fullband] {
            let mut enc = OpusEncoder::new(rate).unwrap();
            let mut dec = OpusDecoder::new(rate).unwrap();
            let mut packet = [0u8; OPUS_MAX_PACKET];
            let valid: Vec<Vec<u8>> = sine(700.0, rate, 20)
                .chunks(rate.frame_samples())
                .map(|pcm| {
                    let len = enc.encode_frame(pcm, &mut packet).unwrap();
                    packet[..len].to_vec()
                })
                .collect();
            let mut out = vec![0i16; rate.frame_samples() * 6];
            for i in 0..2000 {
                let bytes: Vec<u8> = if i % 2 == 0 {
                    (0..next() % 300).map(|_| next() as u8).collect()
                } else {
                    let mut p = valid[next() as usize % valid.len()].clone();
                    for _ in 0..1 + next() % 8 {
                        let at = next() as usize % p.len();
                        p[at] ^= 1 << (next() % 8);
                    }
                    p.truncate(next() as usize % (p.len() + 1));
                    p
                };
                let n = if i % 5 == 0 {
                    dec.recover_from_fec(&bytes, &mut out)
                } else {
                    dec.decode_frame(&bytes, &mut out)
                };
                assert!(n <= out.len() && n % (rate.frame_samples() / 8) == 0, "{n}");
            }
            assert!(dec.rejected() > 0, "{rate:?}");
        }
    }

    #[test]
    fn a_lost_frame_comes_back_from_the_next_packets_fec() {
        let rate = OpusRate::Wideband;
        // A voice-like signal: 150 Hz with harmonics, so the encoder runs SILK with LBRR.
        let input: Vec<i16> = (0..30 * rate.frame_samples())
            .map(|i| {
                let t = i as f64 / f64::from(rate.hz());
                let v: f64 = (1..6)
                    .map(|k| (2.0 * std::f64::consts::PI * 150.0 * f64::from(k) * t).sin())
                    .sum();
                (2500.0 * v) as i16
            })
            .collect();
        let mut enc = OpusEncoder::new(rate).unwrap();
        let mut dec = OpusDecoder::new(rate).unwrap();
        let mut packets = Vec::new();
        let mut packet = [0u8; OPUS_MAX_PACKET];
        for pcm in input.chunks(rate.frame_samples()) {
            let len = enc.encode_frame(pcm, &mut packet).unwrap();
            packets.push(packet[..len].to_vec());
        }
        let mut out = [0i16; 320];
        for p in &packets[..20] {
            dec.decode_frame(p, &mut out);
        }
        // Packet 20 is lost; 21 has arrived and carries 20 at a lower rate.
        assert_eq!(dec.recover_from_fec(&packets[21], &mut out), 320);
        let rms = (out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 320.0).sqrt();
        assert!(rms > 2000.0, "{rms}");
        assert_eq!(dec.decode_frame(&packets[21], &mut out), 320);
        assert_eq!(dec.rejected(), 0);
        assert_eq!(dec.recover_from_fec(&packets[22], &mut [0i16; 100]), 0);
    }

    #[test]
    fn empty_output_buffer_is_reported() {
        let mut enc = OpusEncoder::new(OpusRate::Wideband).unwrap();
        let pcm = sine(1000.0, OpusRate::Wideband, 1);
        assert!(matches!(
            enc.encode_frame(&pcm, &mut []),
            Err(Error::BufferTooSmall { .. })
        ));
        assert!(matches!(
            enc.encode_frame(&pcm, &mut [0u8; 1]),
            Err(Error::BufferTooSmall { needed: 2, .. })
        ));
        // A tiny buffer caps the rate rather than failing.
        let mut tiny = [0u8; 3];
        let len = enc.encode_frame(&pcm, &mut tiny).unwrap();
        assert!((1..=3).contains(&len), "{len}");
    }
}
