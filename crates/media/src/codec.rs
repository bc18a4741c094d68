//! G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711 (11/88), with the RTP payload
//! types of RFC 3551 §6 (PCMU = 0, PCMA = 8, both 8000 Hz, one byte per sample).
//!
//! Decoding is a 256-entry table built at compile time; encoding a clamp and a
//! lookup in a 4 KiB table of segment and mantissa, also built at compile time (no
//! branches, no 64 KiB table to miss in cache), checked exhaustively against the
//! arithmetic form in the tests. The bit patterns are those of the ITU-T reference (and of the
//! widely used Sun `g711.c`): µ-law biases the 14-bit magnitude by 33 (132 on the
//! 16-bit scale) and clips at 8158 (32635); A-law works on 13 bits and inverts the
//! even bits (XOR 0x55). Both are allocation-free: the hot path calls
//! [`Codec::encode_frame`] and [`Codec::decode_frame`] on caller-owned buffers.

/// An audio codec we can put on the wire.
///
/// The discriminant is the static RTP payload type of RFC 3551 §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Codec {
    /// G.711 µ-law, payload type 0 ("PCMU/8000").
    Pcmu = 0,
    /// G.711 A-law, payload type 8 ("PCMA/8000").
    Pcma = 8,
}

impl Codec {
    /// The static RTP payload type (RFC 3551 §6).
    pub const fn payload_type(self) -> u8 {
        self as u8
    }

    /// The codec for a static payload type, if it is one of ours.
    pub const fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }

    /// The encoding name as written in an SDP `a=rtpmap` line (RFC 4566 §6).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    /// The RTP clock rate, Hz.
    pub const fn clock_rate(self) -> u32 {
        8000
    }

    /// The byte that decodes to (near) silence: µ-law 0xFF (exactly 0),
    /// A-law 0xD5 (+8 on the 16-bit scale; A-law has no zero).
    pub const fn silence(self) -> u8 {
        match self {
            Self::Pcmu => 0xFF,
            Self::Pcma => 0xD5,
        }
    }

    /// Encodes one sample.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Self::Pcmu => linear_to_ulaw(sample),
            Self::Pcma => linear_to_alaw(sample),
        }
    }

    /// Decodes one sample.
    #[inline]
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Self::Pcmu => ULAW_DECODE[usize::from(byte)],
            Self::Pcma => ALAW_DECODE[usize::from(byte)],
        }
    }

    /// Encodes `pcm` into `out`, one byte per sample, and returns the number of samples
    /// encoded: `min(pcm.len(), out.len())`. Allocation-free.
    pub fn encode_frame(self, pcm: &[i16], out: &mut [u8]) -> usize {
        let n = pcm.len().min(out.len());
        // The match is hoisted out of the loop so that each loop is a tight kernel.
        match self {
            Self::Pcmu => {
                for (o, &s) in out.iter_mut().zip(pcm) {
                    *o = linear_to_ulaw(s);
                }
            }
            Self::Pcma => {
                for (o, &s) in out.iter_mut().zip(pcm) {
                    *o = linear_to_alaw(s);
                }
            }
        }
        n
    }

    /// Decodes `bytes` into `out` and returns the number of samples decoded:
    /// `min(bytes.len(), out.len())`. Allocation-free.
    pub fn decode_frame(self, bytes: &[u8], out: &mut [i16]) -> usize {
        let n = bytes.len().min(out.len());
        let table = match self {
            Self::Pcmu => &ULAW_DECODE,
            Self::Pcma => &ALAW_DECODE,
        };
        for (o, &b) in out.iter_mut().zip(bytes) {
            *o = table[usize::from(b)];
        }
        n
    }
}

/// µ-law bias on the 16-bit scale (33 on the 14-bit scale of G.711).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law represents before the bias is added.
const ULAW_CLIP: i32 = 32635;

/// G.711 µ-law encoder (16-bit linear in).
///
/// The code is the segment (exponent) and 4-bit mantissa of the biased magnitude
/// `m = min(|s|, 32635) + 132`, which depend only on `m >> 3` (the smallest shift is
/// 3): a 4 KiB table holds them, so encoding is a clamp, an add, a shift and a load.
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let s = i32::from(sample);
    // 0x80 for negative: the sign bit before the final inversion.
    let sign = ((s >> 24) & 0x80) as u8;
    let m = s.unsigned_abs().min(ULAW_CLIP as u32) + ULAW_BIAS as u32;
    // m <= 32767, so m >> 3 <= 4095; the mask only spares the bounds check.
    !(sign | ULAW_SEGMENT[(m >> 3) as usize & 0xFFF])
}

/// G.711 A-law encoder (16-bit linear in; G.711 uses the top 13 bits).
///
/// Segment and mantissa depend only on the 12-bit one's complement magnitude of the
/// 13-bit sample: a 4 KiB table again.
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    let s = i32::from(sample) >> 3;
    // Negative values use the one's complement magnitude (-1 -> 0, -4096 -> 4095).
    let negative = s >> 31; // 0 or -1
    let magnitude = (s ^ negative) as usize & 0xFFF;
    // 0xD5 for positive, 0x55 for negative: the sign bit and the even-bit inversion.
    let mask = 0x55 | (!negative as u8 & 0x80);
    ALAW_SEGMENT[magnitude] ^ mask
}

/// µ-law (exponent << 4 | mantissa) for each biased magnitude >> 3.
static ULAW_SEGMENT: [u8; 4096] = {
    let mut table = [0u8; 4096];
    let mut i = 0;
    while i < 4096 {
        // The smallest biased magnitude is 132 (index 16); lower indexes never occur
        // and are filled as if clamped there.
        let m = if i < 16 { 132 } else { (i as u32) << 3 };
        let exponent = 31 - m.leading_zeros() - 7;
        let mantissa = (m >> (exponent + 3)) & 0x0F;
        table[i] = ((exponent as u8) << 4) | mantissa as u8;
        i += 1;
    }
    table
};

/// A-law (segment << 4 | mantissa) for each 12-bit magnitude, before the XOR mask.
static ALAW_SEGMENT: [u8; 4096] = {
    let mut table = [0u8; 4096];
    let mut i = 0;
    while i < 4096 {
        let magnitude = i as u32;
        // Segment 0 below 32, else the top bit (5..=11) - 4; the mantissa is the 4
        // bits under the top bit (segments 0 and 1 both shift by 1).
        let segment = if magnitude < 32 {
            0
        } else {
            31 - magnitude.leading_zeros() - 4
        };
        let shift = if segment > 1 { segment } else { 1 };
        table[i] = ((segment as u8) << 4) | ((magnitude >> shift) & 0x0F) as u8;
        i += 1;
    }
    table
};

const fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = ((mantissa << 3) + ULAW_BIAS) << exponent;
    let value = magnitude - ULAW_BIAS;
    if u & 0x80 != 0 {
        -value as i16
    } else {
        value as i16
    }
}

const fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let segment = (a >> 4) & 0x07;
    let mut t = ((a & 0x0F) as i32) << 4;
    t = match segment {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (segment - 1),
    };
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_to_linear(i as u8)
        } else {
            ulaw_to_linear(i as u8)
        };
        i += 1;
    }
    table
}

static ULAW_DECODE: [i16; 256] = build_table(false);
static ALAW_DECODE: [i16; 256] = build_table(true);

#[cfg(test)]
mod tests {
    use super::*;

    /// The arithmetic form of the encoders (as in the ITU-T reference and Sun's
    /// g711.c), against which the table-driven ones are checked exhaustively.
    fn reference_ulaw(sample: i16) -> u8 {
        let s = i32::from(sample);
        let sign = if s < 0 { 0x80 } else { 0 };
        let magnitude = s.unsigned_abs().min(ULAW_CLIP as u32) + ULAW_BIAS as u32;
        let exponent = 31 - magnitude.leading_zeros() - 7;
        let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
        !(sign | ((exponent as u8) << 4) | mantissa as u8)
    }

    fn reference_alaw(sample: i16) -> u8 {
        let s = i32::from(sample) >> 3;
        let (mask, magnitude) = if s >= 0 {
            (0xD5u8, s as u32)
        } else {
            (0x55u8, !s as u32)
        };
        let segment = if magnitude < 32 {
            0
        } else {
            31 - magnitude.leading_zeros() - 4
        };
        let code = ((segment as u8) << 4) | ((magnitude >> segment.max(1)) & 0x0F) as u8;
        code ^ mask
    }

    #[test]
    fn tables_match_the_arithmetic_reference() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(linear_to_ulaw(x), reference_ulaw(x), "µ-law {x}");
            assert_eq!(linear_to_alaw(x), reference_alaw(x), "A-law {x}");
        }
    }

    #[test]
    fn ulaw_reference_vectors() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(Codec::Pcmu.decode(0xFF), 0);
        // "Negative zero" decodes to zero as well.
        assert_eq!(Codec::Pcmu.decode(0x7F), 0);
        // Full scale: code 0x80 (positive) and 0x00 (negative), decoding to ±32124.
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(Codec::Pcmu.decode(0x80), 32124);
        assert_eq!(Codec::Pcmu.decode(0x00), -32124);
        // Segment boundaries of the reference encoder.
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(1000), 0xCE);
        assert_eq!(linear_to_ulaw(-1000), 0x4E);
        assert_eq!(Codec::Pcmu.decode(0xCE), 988);
    }

    #[test]
    fn alaw_reference_vectors() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(Codec::Pcma.decode(0xD5), 8);
        assert_eq!(Codec::Pcma.decode(0x55), -8);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(Codec::Pcma.decode(0xAA), 32256);
        assert_eq!(Codec::Pcma.decode(0x2A), -32256);
        assert_eq!(linear_to_alaw(1000), 0xFA);
        assert_eq!(Codec::Pcma.decode(0xFA), 1008);
    }

    /// Every code word survives decode -> encode (µ-law's negative zero excepted,
    /// which re-encodes as positive zero).
    #[test]
    fn codes_round_trip() {
        for byte in 0..=255u8 {
            let expected_ulaw = if byte == 0x7F { 0xFF } else { byte };
            assert_eq!(
                linear_to_ulaw(Codec::Pcmu.decode(byte)),
                expected_ulaw,
                "µ {byte:#x}"
            );
            assert_eq!(
                linear_to_alaw(Codec::Pcma.decode(byte)),
                byte,
                "A {byte:#x}"
            );
        }
    }

    /// The quantisation error is at most half a step of the segment the sample falls
    /// in, i.e. logarithmic: about 1/32 of the magnitude, plus the clip at full scale.
    #[test]
    fn round_trip_error_is_bounded() {
        for x in i16::MIN..=i16::MAX {
            let mag = i32::from(x).abs();
            let err_u = (i32::from(Codec::Pcmu.decode(linear_to_ulaw(x))) - i32::from(x)).abs();
            let bound_u = if mag <= ULAW_CLIP {
                (mag + ULAW_BIAS) / 32 + 1
            } else {
                32768 - 32124
            };
            assert!(err_u <= bound_u, "µ-law {x}: error {err_u} > {bound_u}");

            let err_a = (i32::from(Codec::Pcma.decode(linear_to_alaw(x))) - i32::from(x)).abs();
            let bound_a = if mag < 32256 {
                (mag / 32).max(8) + 1
            } else {
                32768 - 32256
            };
            assert!(err_a <= bound_a, "A-law {x}: error {err_a} > {bound_a}");
        }
    }

    /// Encoding is monotonic: a louder sample never decodes quieter.
    #[test]
    fn decode_of_encode_is_monotonic() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut previous = i16::MIN;
            for x in i16::MIN..=i16::MAX {
                let y = codec.decode(codec.encode(x));
                assert!(y >= previous, "{codec:?} at {x}");
                previous = y;
            }
        }
    }

    /// A -6 dBFS sine keeps the ~38 dB SNR G.711 is known for (1013 Hz rather than
    /// 1 kHz, which hits only 8 phases and so measures 8 quantisation errors).
    #[test]
    fn sine_snr_above_35_db() {
        let pcm: Vec<i16> = (0..8000)
            .map(|n| {
                (16384.0 * (2.0 * std::f64::consts::PI * 1013.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut bytes = vec![0u8; pcm.len()];
            let mut back = vec![0i16; pcm.len()];
            assert_eq!(codec.encode_frame(&pcm, &mut bytes), pcm.len());
            assert_eq!(codec.decode_frame(&bytes, &mut back), pcm.len());
            let signal: f64 = pcm.iter().map(|&s| f64::from(s).powi(2)).sum();
            let noise: f64 = pcm
                .iter()
                .zip(&back)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            let snr = 10.0 * (signal / noise).log10();
            assert!(snr > 35.0, "{codec:?}: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn frames_stop_at_the_shorter_buffer() {
        let pcm = [0i16; 160];
        let mut out = [0u8; 100];
        assert_eq!(Codec::Pcmu.encode_frame(&pcm, &mut out), 100);
        let mut back = [1i16; 200];
        assert_eq!(Codec::Pcma.decode_frame(&[0xD5; 160], &mut back), 160);
        assert_eq!(back[159], 8);
        assert_eq!(back[160], 1);
    }

    #[test]
    fn payload_types() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_payload_type(18), None);
        assert_eq!(Codec::Pcma.encoding_name(), "PCMA");
    }
}
