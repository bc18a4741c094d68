//! Every audio codec a participant may speak, behind one name and one frame API:
//! G.711 (the stateless [`Codec`]), G.722 and Opus (stateful, [`CodecState`]); and
//! [`Transcoder`], one participant's leg between the wire and a mix at another rate.
//!
//! [`Codec`] stays the two-variant G.711 enum that the engine and the SIP glue match on
//! exhaustively; [`AudioCodec`] wraps it and adds the wideband codecs, so moving a caller
//! over is a type change at the edge (`AudioCodec::from(codec)`), not a rewrite of every
//! match. Payload types: PCMU 0, PCMA 8, G722 9 are static (RFC 3551 §6); Opus is dynamic
//! (RFC 7587 §7: `a=rtpmap:<pt> opus/48000/2`), so it carries the number the SDP
//! negotiated. Comfort noise (PT 13) is not a codec of its own but a payload that may
//! arrive between any codec's frames: see [`crate::comfort_noise`].

use crate::Error;
use crate::codec::Codec;
use crate::g722::{G722_PAYLOAD_TYPE, G722Decoder, G722Encoder};
use crate::opus::{OpusDecoder, OpusEncoder, OpusRate};
use crate::resampler::{Resampler, SampleRate};

/// A codec with its RTP payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 µ-law or A-law, 8 kHz.
    G711(Codec),
    /// G.722 at 64 kbit/s, 16 kHz audio on an 8 kHz RTP clock, payload type 9.
    G722,
    /// Opus, mono, with the dynamic payload type the SDP negotiated.
    Opus {
        /// 96..=127 in practice.
        payload_type: u8,
    },
}

impl From<Codec> for AudioCodec {
    fn from(codec: Codec) -> Self {
        Self::G711(codec)
    }
}

impl AudioCodec {
    /// The codec for a static payload type (0, 8, 9), if it is one of ours.
    pub const fn from_static_payload_type(pt: u8) -> Option<Self> {
        match pt {
            G722_PAYLOAD_TYPE => Some(Self::G722),
            _ => match Codec::from_payload_type(pt) {
                Some(c) => Some(Self::G711(c)),
                None => None,
            },
        }
    }

    /// The codec of an SDP `a=rtpmap:<pt> <name>/<clock>[/<channels>]` line, if we speak
    /// it: names compare case-insensitively (RFC 4855 §3), the clock must be the one
    /// the codec's RTP mapping defines.
    pub fn from_rtpmap(name: &str, clock_rate: u32, payload_type: u8) -> Option<Self> {
        let codec = if name.eq_ignore_ascii_case("PCMU") {
            Self::G711(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Self::G711(Codec::Pcma)
        } else if name.eq_ignore_ascii_case("G722") {
            Self::G722
        } else if name.eq_ignore_ascii_case("opus") && payload_type <= 127 {
            Self::Opus { payload_type }
        } else {
            return None;
        };
        (codec.clock_rate() == clock_rate).then_some(codec)
    }

    /// The RTP payload type.
    pub const fn payload_type(self) -> u8 {
        match self {
            Self::G711(c) => c.payload_type(),
            Self::G722 => G722_PAYLOAD_TYPE,
            Self::Opus { payload_type } => payload_type,
        }
    }

    /// The encoding name of the `a=rtpmap` line.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Self::G711(c) => c.encoding_name(),
            Self::G722 => "G722",
            Self::Opus { .. } => "opus",
        }
    }

    /// The RTP clock rate, Hz (8000 for G.722 too, RFC 3551 §4.5.2; 48000 for Opus).
    pub const fn clock_rate(self) -> u32 {
        match self {
            Self::G711(_) | Self::G722 => 8000,
            Self::Opus { .. } => crate::opus::OPUS_CLOCK_RATE,
        }
    }

    /// The channel count written in the rtpmap (`opus/48000/2`, RFC 7587 §7), if any.
    pub const fn rtpmap_channels(self) -> Option<u8> {
        match self {
            Self::Opus { .. } => Some(2),
            _ => None,
        }
    }

    /// The PCM rate frames are exchanged at with [`CodecState`].
    pub const fn sample_rate(self) -> SampleRate {
        match self {
            Self::G711(_) => SampleRate::Hz8000,
            Self::G722 | Self::Opus { .. } => SampleRate::Hz16000,
        }
    }

    /// RTP timestamp increment per 20 ms frame.
    pub const fn timestamp_step(self) -> u32 {
        self.clock_rate() / 50
    }

    /// The G.711 codec, for callers that only speak G.711.
    pub const fn g711(self) -> Option<Codec> {
        match self {
            Self::G711(c) => Some(c),
            _ => None,
        }
    }
}

/// One participant's codec state, both directions: 20 ms of PCM at
/// [`AudioCodec::sample_rate`] in and out.
#[derive(Debug)]
pub struct CodecState {
    codec: AudioCodec,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    G711(Codec),
    G722(Box<(G722Encoder, G722Decoder)>),
    Opus(Box<(OpusEncoder, OpusDecoder)>),
}

impl CodecState {
    /// Fresh encoder and decoder state (allocates: call it when the call is set up).
    pub fn new(codec: AudioCodec) -> Result<Self, Error> {
        Self::with_opus_rate(codec, OpusRate::Wideband)
    }

    /// [`CodecState::new`] with Opus's PCM at `opus_rate` instead of the wideband
    /// [`AudioCodec::sample_rate`] (a softphone's 48 kHz, say); G.711 and G.722 keep
    /// their own rates.
    pub fn with_opus_rate(codec: AudioCodec, opus_rate: OpusRate) -> Result<Self, Error> {
        let inner = match codec {
            AudioCodec::G711(c) => Inner::G711(c),
            AudioCodec::G722 => Inner::G722(Box::new((G722Encoder::new(), G722Decoder::new()))),
            AudioCodec::Opus { .. } => Inner::Opus(Box::new((
                OpusEncoder::new(opus_rate)?,
                OpusDecoder::new(opus_rate)?,
            ))),
        };
        Ok(Self { codec, inner })
    }

    /// The codec.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Encodes one 20 ms frame into `out` (size it for the codec: 160 octets for G.711
    /// and G.722, [`crate::opus::OPUS_MAX_PACKET`] for Opus) and returns the payload
    /// length. Allocation-free.
    pub fn encode_frame(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, Error> {
        match &mut self.inner {
            Inner::G711(c) => Ok(c.encode_frame(pcm, out)),
            Inner::G722(state) => Ok(state.0.encode_frame(pcm, out)),
            Inner::Opus(state) => state.0.encode_frame(pcm, out),
        }
    }

    /// Decodes one RTP payload into `out` and returns the samples written. Never fails:
    /// every G.711 and G.722 octet is valid, and an Opus packet that is not is concealed.
    pub fn decode_frame(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        match &mut self.inner {
            Inner::G711(c) => c.decode_frame(payload, out),
            Inner::G722(state) => state.1.decode_frame(payload, out),
            Inner::Opus(state) => state.1.decode_frame(payload, out),
        }
    }

    /// Conceals one lost frame if the codec can (Opus), returning the samples written;
    /// 0 means "use the generic concealer" (G.711, G.722: the jitter buffer's
    /// [`crate::Concealer`]).
    pub fn conceal(&mut self, out: &mut [i16]) -> usize {
        match &mut self.inner {
            Inner::Opus(state) => state.1.conceal(out),
            Inner::G711(_) | Inner::G722(_) => 0,
        }
    }
}

/// One participant's leg between the wire and a conference mixing at `mix_rate`: the
/// codec state plus a resampler each way when the codec's rate is not the mix's. What
/// the engine holds per participant when the mix runs wideband.
#[derive(Debug)]
pub struct Transcoder {
    state: CodecState,
    mix_rate: SampleRate,
    to_mix: Option<Resampler>,
    from_mix: Option<Resampler>,
    /// One frame at the codec's rate (at most 20 ms at 48 kHz).
    pcm: [i16; MAX_FRAME],
}

/// The largest frame any leg handles: 20 ms at 48 kHz.
const MAX_FRAME: usize = 960;

impl Transcoder {
    /// A leg for `codec` into a mix at `mix_rate` (allocates: call it at call set-up).
    pub fn new(codec: AudioCodec, mix_rate: SampleRate) -> Result<Self, Error> {
        let rate = codec.sample_rate();
        let (to_mix, from_mix) = if rate == mix_rate {
            (None, None)
        } else {
            (
                Some(Resampler::new(rate, mix_rate)),
                Some(Resampler::new(mix_rate, rate)),
            )
        };
        Ok(Self {
            state: CodecState::new(codec)?,
            mix_rate,
            to_mix,
            from_mix,
            pcm: [0; MAX_FRAME],
        })
    }

    /// The codec on the wire.
    pub fn codec(&self) -> AudioCodec {
        self.state.codec()
    }

    /// The mix rate.
    pub fn mix_rate(&self) -> SampleRate {
        self.mix_rate
    }

    /// Decodes one RTP payload into one frame at the mix rate (`mix` should hold
    /// `mix_rate.frame_samples()`) and returns the samples written. Never fails (see
    /// [`CodecState::decode_frame`]). A payload longer than 20 ms (an Opus peer may
    /// send 40 or 60 ms packets) is cut to what `mix` holds. Allocation-free.
    pub fn decode_to_mix(&mut self, payload: &[u8], mix: &mut [i16]) -> usize {
        let n = self.state.decode_frame(payload, &mut self.pcm);
        self.resample_into(n, mix)
    }

    /// Conceals a lost frame into `mix` when the codec can (Opus); 0 otherwise, and the
    /// caller falls back on the generic concealer at the mix rate.
    pub fn conceal_to_mix(&mut self, mix: &mut [i16]) -> usize {
        let n = self.state.conceal(&mut self.pcm);
        if n == 0 {
            return 0;
        }
        self.resample_into(n, mix)
    }

    /// Encodes one frame of the mix (what this participant hears) into `out` and returns
    /// the payload length. Allocation-free.
    pub fn encode_from_mix(&mut self, mix: &[i16], out: &mut [u8]) -> Result<usize, Error> {
        match &mut self.from_mix {
            None => self.state.encode_frame(mix, out),
            Some(r) => {
                let n = r.process(mix, &mut self.pcm);
                // `n` is at most the buffer's length.
                self.state.encode_frame(&self.pcm[..n], out)
            }
        }
    }

    fn resample_into(&mut self, n: usize, mix: &mut [i16]) -> usize {
        // `n` came from writing into `self.pcm`, so it is within it.
        let pcm = &self.pcm[..n.min(MAX_FRAME)];
        match &mut self.to_mix {
            Some(r) => r.process(pcm, mix),
            None => {
                let n = pcm.len().min(mix.len());
                mix[..n].copy_from_slice(&pcm[..n]);
                n
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16 kHz mix heard by a G.711 caller and a G.722 caller, and the G.711 caller
    /// heard in the mix: the tone keeps its level on every leg; frames are whole.
    #[test]
    fn legs_into_a_wideband_mix() {
        let mix_rate = SampleRate::Hz16000;
        let mut pcmu = Transcoder::new(Codec::Pcmu.into(), mix_rate).unwrap();
        let mut g722 = Transcoder::new(AudioCodec::G722, mix_rate).unwrap();
        assert_eq!(g722.codec(), AudioCodec::G722);
        let mut far_end = CodecState::new(Codec::Pcmu.into()).unwrap();
        let mut payload = [0u8; 160];
        let mut mix = [0i16; 320];
        let mut heard = [0i16; 160];
        let mut level = 0.0f64;
        for f in 0..50 {
            // The caller's tone, 600 Hz at 8 kHz, as it arrives on the wire.
            let tone: Vec<i16> = (0..160)
                .map(|i| {
                    let t = (f * 160 + i) as f64 / 8000.0;
                    (8000.0 * (2.0 * std::f64::consts::PI * 600.0 * t).sin()) as i16
                })
                .collect();
            let len = far_end.encode_frame(&tone, &mut payload).unwrap();
            assert_eq!(pcmu.decode_to_mix(&payload[..len], &mut mix), 320);
            // The G.722 caller hears it at the wideband rate...
            assert_eq!(g722.encode_from_mix(&mix, &mut payload).unwrap(), 160);
            // ...and the G.711 caller, say, hears it back.
            let len = pcmu.encode_from_mix(&mix, &mut payload).unwrap();
            assert_eq!(len, 160);
            far_end.decode_frame(&payload[..len], &mut heard);
            if f >= 10 {
                level += heard.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            }
        }
        let rms = (level / (40.0 * 160.0)).sqrt();
        assert!((rms / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.05, "{rms}");
        assert_eq!(pcmu.conceal_to_mix(&mut mix), 0);
    }

    #[test]
    fn static_payload_types() {
        assert_eq!(
            AudioCodec::from_static_payload_type(0),
            Some(AudioCodec::G711(Codec::Pcmu))
        );
        assert_eq!(
            AudioCodec::from_static_payload_type(8),
            Some(AudioCodec::G711(Codec::Pcma))
        );
        assert_eq!(
            AudioCodec::from_static_payload_type(9),
            Some(AudioCodec::G722)
        );
        assert_eq!(AudioCodec::from_static_payload_type(13), None);
        assert_eq!(AudioCodec::from_static_payload_type(111), None);
    }

    #[test]
    fn rtpmap() {
        assert_eq!(
            AudioCodec::from_rtpmap("OPUS", 48_000, 111),
            Some(AudioCodec::Opus { payload_type: 111 })
        );
        assert_eq!(AudioCodec::from_rtpmap("opus", 16_000, 111), None);
        // G.722's famous clock-rate erratum: 8000, not 16000.
        assert_eq!(
            AudioCodec::from_rtpmap("g722", 8000, 9),
            Some(AudioCodec::G722)
        );
        assert_eq!(AudioCodec::from_rtpmap("G722", 16_000, 9), None);
        assert_eq!(
            AudioCodec::from_rtpmap("PCMA", 8000, 8),
            Some(Codec::Pcma.into())
        );
        assert_eq!(AudioCodec::from_rtpmap("iLBC", 8000, 97), None);
        let opus = AudioCodec::Opus { payload_type: 98 };
        assert_eq!(
            (
                opus.encoding_name(),
                opus.clock_rate(),
                opus.rtpmap_channels()
            ),
            ("opus", 48_000, Some(2))
        );
        assert_eq!(opus.timestamp_step(), 960);
        assert_eq!(AudioCodec::G722.timestamp_step(), 160);
        assert_eq!(AudioCodec::G722.sample_rate().frame_samples(), 320);
    }

    #[test]
    fn states_round_trip_one_frame() {
        for codec in [
            AudioCodec::G711(Codec::Pcmu),
            AudioCodec::G722,
            AudioCodec::Opus { payload_type: 111 },
        ] {
            let mut state = CodecState::new(codec).unwrap();
            let n = codec.sample_rate().frame_samples();
            let pcm = vec![0i16; n];
            let mut payload = [0u8; crate::opus::OPUS_MAX_PACKET];
            let len = state.encode_frame(&pcm, &mut payload).unwrap();
            assert!(len > 0);
            let mut out = vec![1i16; n];
            assert_eq!(
                state.decode_frame(&payload[..len], &mut out),
                n,
                "{codec:?}"
            );
            let concealed = state.conceal(&mut out);
            assert_eq!(
                concealed,
                if codec.g711().is_some() || codec == AudioCodec::G722 {
                    0
                } else {
                    n
                }
            );
        }
    }
}
