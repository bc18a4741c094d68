//! Opus (RFC 6716) for softphones, through libopus and the `opus` crate, framed like
//! G.711: one 20 ms frame of mono PCM in, one packet out, and back. RTP conventions of
//! RFC 7587: a dynamic payload type, `a=rtpmap:<pt> opus/48000/2` whatever the audio
//! rate (§7), the RTP clock always 48 kHz (§4.1), one Opus packet per RTP payload.
//!
//! Why libopus behind `opus` 0.3: libopus is the reference implementation every softphone
//! ships; Debian packages it (`libopus-dev`) and `opus` 0.3 links it through pkg-config
//! (its `audiopus_sys` has pregenerated bindings, so neither bindgen nor cmake is
//! needed). `opus` 0.4 builds a bundled copy with cmake instead; the pure-Rust
//! translations (`opus-rs`, `unsafe-libopus`) are young and unaudited.
//!
//! Decoding never fails from the caller's point of view: a packet libopus rejects is
//! counted and concealed, as a lost one is (packet loss concealment, RFC 6716 §4.4), so
//! bytes from the network can only ever produce audio. libopus works on the stack, so
//! neither direction allocates per frame.

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
}

/// An Opus encoder: 20 ms of mono PCM at [`OpusRate`] in, one packet out.
#[derive(Debug)]
pub struct OpusEncoder {
    inner: ::opus::Encoder,
    rate: OpusRate,
}

impl OpusEncoder {
    /// A VoIP-tuned mono encoder at [`OPUS_BITRATE`] with in-band FEC.
    pub fn new(rate: OpusRate) -> Result<Self, Error> {
        let mut inner =
            ::opus::Encoder::new(rate.hz(), ::opus::Channels::Mono, ::opus::Application::Voip)
                .map_err(host_fault)?;
        inner
            .set_bitrate(::opus::Bitrate::Bits(OPUS_BITRATE))
            .map_err(host_fault)?;
        inner.set_inband_fec(true).map_err(host_fault)?;
        inner
            .set_packet_loss_perc(EXPECTED_LOSS_PERCENT)
            .map_err(host_fault)?;
        Ok(Self { inner, rate })
    }

    /// The PCM rate this encoder takes.
    pub fn rate(&self) -> OpusRate {
        self.rate
    }

    /// Encodes one 20 ms frame (`rate.frame_samples()` samples; a shorter `pcm` is
    /// padded with silence, a longer one cut) into `out` and returns the packet length.
    /// `out` should hold [`OPUS_MAX_PACKET`] octets; a smaller one caps the bit rate of
    /// this frame (libopus degrades down to a one-octet "nothing new" packet), an empty
    /// one is [`Error::BufferTooSmall`]. Allocation-free.
    pub fn encode_frame(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, Error> {
        if out.is_empty() {
            return Err(Error::BufferTooSmall {
                needed: 1,
                available: 0,
            });
        }
        let n = self.rate.frame_samples();
        let mut frame = [0i16; 960];
        let len = pcm.len().min(n);
        // `n` is at most 960 and `len` at most `n`: the slices are in bounds.
        frame[..len].copy_from_slice(&pcm[..len]);
        self.inner
            .encode(&frame[..n], out)
            .map_err(|e| match e.code() {
                ::opus::ErrorCode::BufferTooSmall => Error::BufferTooSmall {
                    needed: OPUS_MAX_PACKET,
                    available: out.len(),
                },
                _ => host_fault(e),
            })
    }
}

/// An Opus decoder with packet loss concealment: any packet, or none, in; 20 ms of mono
/// PCM at [`OpusRate`] out.
#[derive(Debug)]
pub struct OpusDecoder {
    inner: ::opus::Decoder,
    rate: OpusRate,
    rejected: u64,
}

impl OpusDecoder {
    /// A mono decoder producing PCM at `rate`.
    pub fn new(rate: OpusRate) -> Result<Self, Error> {
        let inner = ::opus::Decoder::new(rate.hz(), ::opus::Channels::Mono).map_err(host_fault)?;
        Ok(Self {
            inner,
            rate,
            rejected: 0,
        })
    }

    /// The PCM rate this decoder gives.
    pub fn rate(&self) -> OpusRate {
        self.rate
    }

    /// Packets libopus refused (malformed, or longer than `out` holds) and that were
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
        match self.inner.decode(packet, out, false) {
            Ok(n) => n,
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
        // libopus conceals exactly as many samples as it is given room for.
        self.inner.decode(&[], frame, false).unwrap_or_else(|_| {
            frame.fill(0);
            n
        })
    }

    /// Recovers the frame *before* `next_packet` from its in-band FEC data (LBRR), when
    /// the peer sent it, or conceals it otherwise; call it for a lost packet when the
    /// following one has already arrived. Returns the samples written.
    pub fn recover_from_fec(&mut self, next_packet: &[u8], out: &mut [i16]) -> usize {
        let n = self.rate.frame_samples();
        let Some(frame) = out.get_mut(..n) else {
            return 0;
        };
        match self.inner.decode(next_packet, frame, true) {
            Ok(written) => written,
            Err(_) => self.conceal(out),
        }
    }
}

/// libopus failures that are not the peer's doing: out of memory, or a bad argument we
/// never pass (the rate and channel count are fixed by [`OpusRate`]). The crate's
/// [`Error`] has no codec variant yet, so they travel as host I/O errors.
fn host_fault(e: ::opus::Error) -> Error {
    Error::Io(std::io::Error::other(e))
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

    #[test]
    fn empty_output_buffer_is_reported() {
        let mut enc = OpusEncoder::new(OpusRate::Wideband).unwrap();
        let pcm = sine(1000.0, OpusRate::Wideband, 1);
        assert!(matches!(
            enc.encode_frame(&pcm, &mut []),
            Err(Error::BufferTooSmall { .. })
        ));
        // A tiny buffer caps the rate rather than failing.
        let mut tiny = [0u8; 3];
        let len = enc.encode_frame(&pcm, &mut tiny).unwrap();
        assert!((1..=3).contains(&len), "{len}");
    }
}
