//! G.722 wideband speech, ITU-T G.722 (09/2012) mode 1: 64 kbit/s sub-band ADPCM (SB-ADPCM)
//! of 16 kHz audio, with the RTP conventions of RFC 3551 §4.5.2 (static payload type 9,
//! RTP clock 8000 Hz although the audio is sampled at 16 kHz, one octet per two samples).
//!
//! The structure follows the recommendation's block diagram and keeps its names, so a
//! reader can hold the two side by side:
//! - the 24-tap transmit / receive QMF splits 16 kHz audio into a lower and a higher 8 kHz
//!   sub-band and joins them again;
//! - the lower sub-band is coded with 6 bits (QUANTL, 60-level quantizer), of which the
//!   encoder's feedback loop and the decoder's predictor use only the upper 4 (INVQAL), so a
//!   decoder may drop bits without desynchronising; the mode-1 decoder reconstructs its
//!   output with all 6 (INVQBL);
//! - the higher sub-band is coded with 2 bits (QUANTH, INVQAH);
//! - each sub-band has its own scale factor adaptation (LOGSCL/SCALEL, LOGSCH/SCALEH) and
//!   adaptive predictor (BLOCK 4: RECONS, PARREC, UPPOL2, UPPOL1, UPZERO, DELAYA, FILTEP,
//!   FILTEZ, PREDIC): two poles, six zeros.
//!
//! Word lengths: the recommendation works on 14-bit PCM and 15-bit sub-band signals. We take
//! and give 16-bit PCM: the transmit QMF scales by 1/2 (16 → 15 bits) and the receive QMF by
//! 2, the usual arrangement for 16-bit front ends; the ADPCM core between them is the
//! recommendation's integer arithmetic, saturating at 16 bits where it does.
//!
//! Without the ITU-T test sequences at hand, the known-answer test pins both directions
//! against an independent implementation (spandsp's, which follows the ITU-T reference
//! arithmetic): same codes octet for octet, same PCM sample for sample.
//!
//! Every code octet is valid, so decoding bytes from the network cannot fail or panic; both
//! directions are allocation-free and carry their state between 20 ms frames.

/// RTP payload type of G.722 (RFC 3551 §6).
pub const G722_PAYLOAD_TYPE: u8 = 9;
/// Audio sample rate, Hz.
pub const G722_SAMPLE_RATE: u32 = 16_000;
/// RTP timestamp clock rate, Hz: 8000 by an erratum kept for compatibility (RFC 3551 §4.5.2).
pub const G722_CLOCK_RATE: u32 = 8000;
/// Samples in a 20 ms frame at 16 kHz.
pub const G722_FRAME_SAMPLES: usize = 320;
/// Octets in a 20 ms frame at 64 kbit/s.
pub const G722_FRAME_BYTES: usize = 160;

/// A G.722 encoder: 16 kHz PCM in, one octet per two samples out (`IH << 6 | IL`).
#[derive(Debug, Clone)]
pub struct G722Encoder {
    /// The transmit QMF's delay line, newest sample last.
    qmf: [i32; 24],
    low: Band,
    high: Band,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    /// An encoder in the reset state: everything zero, DETL = 32, DETH = 8.
    pub const fn new() -> Self {
        Self {
            qmf: [0; 24],
            low: Band::new(LOW_INITIAL_DET),
            high: Band::new(HIGH_INITIAL_DET),
        }
    }

    /// Encodes pairs of samples of `pcm` into `out`, one octet per pair, and returns the
    /// octets written: `min(pcm.len() / 2, out.len())`. An odd last sample is ignored.
    /// Allocation-free; 320 samples (20 ms) make 160 octets.
    pub fn encode_frame(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let mut n = 0;
        for (o, pair) in out.iter_mut().zip(pcm.chunks_exact(2)) {
            let (xl, xh) = self.analyse(pair[0], pair[1]);
            *o = (self.high.encode_high(xh) << 6) | self.low.encode_low(xl);
            n += 1;
        }
        n
    }

    /// Transmit QMF: shifts in two input samples and returns the lower and higher
    /// sub-band samples `(XL, XH)` at 8 kHz.
    fn analyse(&mut self, first: i16, second: i16) -> (i32, i32) {
        self.qmf.copy_within(2.., 0);
        self.qmf[22] = i32::from(first);
        self.qmf[23] = i32::from(second);
        // XA sums the taps on x(j - 2i), XB those on x(j - 2i - 1); with the newest sample
        // last and the filter symmetric, that is odd and even positions of the buffer.
        let mut xa = 0;
        let mut xb = 0;
        for (pair, h) in self.qmf.chunks_exact(2).zip(QMF.chunks_exact(2)) {
            xb += pair[0] * h[0];
            xa += pair[1] * h[1];
        }
        // The filter's DC gain is 2^13; one more bit takes 16-bit input to 15-bit sub-bands.
        ((xa + xb) >> 14, (xa - xb) >> 14)
    }
}

/// A G.722 decoder (mode 1, 64 kbit/s): one octet in, two 16 kHz samples out.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    /// The receive QMF's delay lines of `XD = RL - RH` and `XS = RL + RH`, newest first.
    xd: [i32; 12],
    xs: [i32; 12],
    low: Band,
    high: Band,
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    /// A decoder in the reset state: everything zero, DETL = 32, DETH = 8.
    pub const fn new() -> Self {
        Self {
            xd: [0; 12],
            xs: [0; 12],
            low: Band::new(LOW_INITIAL_DET),
            high: Band::new(HIGH_INITIAL_DET),
        }
    }

    /// Decodes `bytes` into `out`, two samples per octet, and returns the samples written:
    /// `2 * min(bytes.len(), out.len() / 2)`. Allocation-free; every octet is valid.
    pub fn decode_frame(&mut self, bytes: &[u8], out: &mut [i16]) -> usize {
        let mut n = 0;
        for (pair, &code) in out.chunks_exact_mut(2).zip(bytes) {
            let rl = self.low.decode_low(code & 0x3F);
            let rh = self.high.decode_high(code >> 6);
            let (first, second) = self.synthesise(rl, rh);
            pair[0] = first;
            pair[1] = second;
            n += 2;
        }
        n
    }

    /// Receive QMF: two output samples from one pair of sub-band samples.
    fn synthesise(&mut self, rl: i32, rh: i32) -> (i16, i16) {
        self.xd.copy_within(..11, 1);
        self.xs.copy_within(..11, 1);
        self.xd[0] = rl - rh;
        self.xs[0] = rl + rh;
        let mut xout1 = 0;
        let mut xout2 = 0;
        for ((d, s), h) in self.xd.iter().zip(&self.xs).zip(QMF.chunks_exact(2)) {
            xout1 += d * h[0];
            xout2 += s * h[1];
        }
        // Each polyphase branch has a DC gain of 2^12; interpolation by two needs a gain of
        // 2 and the transmit side took one bit away, hence 2^12 / 4.
        (saturate16(xout1 >> 11), saturate16(xout2 >> 11))
    }
}

/// The QMF coefficients h(0)..h(23) of the recommendation, scaled by 2^13.
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Scale factors after reset: DETL = 32, DETH = 8.
const LOW_INITIAL_DET: i32 = 32;
const HIGH_INITIAL_DET: i32 = 8;

/// QUANTL decision levels Q6(1..29) (Table 14), applied as `Q6 * DETL >> 12`.
const Q6: [i32; 31] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0,
];
/// The 6-bit code IL of quantizer interval `mil` for a negative / positive EL (Table 14).
const ILN: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];
const ILP: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];
/// INVQAL: 4-bit inverse quantizer outputs by `IL >> 2` (QQ4 of Table 14, signed, × 8).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// INVQBL (mode 1): 6-bit inverse quantizer outputs by IL (QQ6 of Table 14, signed, × 8).
/// Codes 0..=3 never leave an encoder; they decode as the smallest negative level.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// LOGSCL: the 3-bit magnitude of `IL >> 2` (RIL → IL4) and its log-scale increment WL.
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// SCALEL/SCALEH: 2^(i/32) × 2048, the mantissa of the inverse log.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// QUANTH decision level Q2 = 564 (× DETH >> 12) and the 2-bit codes IH for a negative /
/// positive EH in interval `mih` 1 or 2.
const Q2: i32 = 564;
const IHN: [u8; 3] = [0, 1, 0];
const IHP: [u8; 3] = [0, 3, 2];
/// INVQAH: 2-bit inverse quantizer outputs by IH (QQ2, signed, × 8).
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// LOGSCH: IH → the magnitude IH2 and its log-scale increment WH.
const RH2: [usize; 4] = [2, 1, 2, 1];
const WH: [i32; 3] = [0, -214, 798];

/// Limits of the log scale factors NBL and NBH (LOGSCL, LOGSCH).
const NBL_MAX: i32 = 18_432;
const NBH_MAX: i32 = 22_528;

/// One sub-band's ADPCM state: the scale factor and the pole-zero predictor (BLOCK 4).
/// Index 0 of each delay line is the current sample, 1.. the previous ones.
#[derive(Debug, Clone)]
struct Band {
    /// Predicted signal S = SP + SZ for the next sample (PREDIC).
    s: i32,
    /// Output of the zero section (FILTEZ), for the next PARREC.
    sz: i32,
    /// Log scale factor (NBL / NBH) and scale factor (DETL / DETH).
    nb: i32,
    det: i32,
    /// Pole coefficients A1, A2 (index 1, 2) and zero coefficients B1..B6 (index 1..=6).
    a: [i32; 3],
    b: [i32; 7],
    /// Quantized difference signal DLT / DH and its past six values.
    d: [i32; 7],
    /// Partially reconstructed signal P and reconstructed signal R, with two past values.
    p: [i32; 3],
    r: [i32; 3],
}

impl Band {
    const fn new(det: i32) -> Self {
        Self {
            s: 0,
            sz: 0,
            nb: 0,
            det,
            a: [0; 3],
            b: [0; 7],
            d: [0; 7],
            p: [0; 3],
            r: [0; 3],
        }
    }

    /// The lower sub-band encoder for one sample XL: SUBTL, QUANTL, then the decoder's
    /// feedback half. Returns the 6-bit code IL.
    fn encode_low(&mut self, xl: i32) -> u8 {
        let el = saturate(xl - self.s);
        let wd = magnitude(el);
        // QUANTL: the first interval whose upper decision level exceeds |EL|. The levels
        // grow with the index, so a binary search finds the interval the recommendation's
        // linear scan does.
        let mil = 1 + Q6[1..30].partition_point(|&q| (q * self.det) >> 12 <= wd);
        let il = if el < 0 { ILN[mil] } else { ILP[mil] };
        self.update_low(usize::from(il >> 2));
        il
    }

    /// The lower sub-band decoder for the 6-bit code ILR (mode 1): returns RL.
    fn decode_low(&mut self, ilr: u8) -> i32 {
        let ilr = usize::from(ilr & 0x3F);
        // INVQBL and RECONS with all six bits, for the output only.
        let dl = (self.det * QM6[ilr]) >> 15;
        let rl = (self.s + dl).clamp(-16_384, 16_383);
        self.update_low(ilr >> 2);
        rl
    }

    /// INVQAL, LOGSCL, SCALEL and BLOCK 4 of the lower sub-band, from `RIL = IL >> 2`:
    /// identical in encoder and decoder, which is what keeps them in step.
    fn update_low(&mut self, ril: usize) {
        let ril = ril & 0x0F;
        let dlt = (self.det * QM4[ril]) >> 15;
        self.nb = (((self.nb * 127) >> 7) + WL[RL42[ril]]).clamp(0, NBL_MAX);
        self.det = scale_factor(self.nb, 8);
        self.predict(dlt);
    }

    /// The higher sub-band encoder for one sample XH: SUBTH, QUANTH and the feedback half.
    /// Returns the 2-bit code IH.
    fn encode_high(&mut self, xh: i32) -> u8 {
        let eh = saturate(xh - self.s);
        let mih = if magnitude(eh) >= (Q2 * self.det) >> 12 {
            2
        } else {
            1
        };
        let ih = if eh < 0 { IHN[mih] } else { IHP[mih] };
        self.update_high(usize::from(ih));
        ih
    }

    /// The higher sub-band decoder for the 2-bit code IH: returns RH.
    fn decode_high(&mut self, ih: u8) -> i32 {
        let ih = usize::from(ih & 0x03);
        let dh = (self.det * QM2[ih]) >> 15;
        let rh = (self.s + dh).clamp(-16_384, 16_383);
        self.update_high(ih);
        rh
    }

    /// INVQAH, LOGSCH, SCALEH and BLOCK 4 of the higher sub-band.
    fn update_high(&mut self, ih: usize) {
        let ih = ih & 0x03;
        let dh = (self.det * QM2[ih]) >> 15;
        self.nb = (((self.nb * 127) >> 7) + WH[RH2[ih]]).clamp(0, NBH_MAX);
        self.det = scale_factor(self.nb, 10);
        self.predict(dh);
    }

    /// BLOCK 4: adapt the predictor to the quantized difference `d` and compute the
    /// prediction S for the next sample.
    fn predict(&mut self, d: i32) {
        // RECONS and PARREC.
        self.d[0] = d;
        self.r[0] = saturate(self.s + d);
        self.p[0] = saturate(self.sz + d);

        // UPPOL2: A2 leaks by 2^-7 and moves by ±2^-7 with the sign agreement of P(k) and
        // P(k-2), corrected by f(A1) = 4·A1 (saturated) for that of P(k) and P(k-1).
        let sg0 = self.p[0] < 0;
        let sg1 = self.p[1] < 0;
        let sg2 = self.p[2] < 0;
        let wd1 = saturate(self.a[1] * 4);
        let wd2 = if sg0 == sg1 { -wd1 } else { wd1 }.min(32_767);
        let wd3 = if sg0 == sg2 { 128 } else { -128 };
        let ap2 = ((wd2 >> 7) + wd3 + ((self.a[2] * 32_512) >> 15)).clamp(-12_288, 12_288);

        // UPPOL1: A1 leaks by 2^-8 and moves by ±3·2^-8; |A1| ≤ 1 - 2^-4 - A2 keeps the
        // poles stable.
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let ap1 = saturate(wd1 + ((self.a[1] * 32_640) >> 15));
        let limit = saturate(15_360 - ap2);
        let ap1 = ap1.clamp(-limit, limit);

        // UPZERO: each B leaks by 2^-8 and moves by ±2^-7 with the sign agreement of D(k)
        // and D(k-i), unless D(k) is zero.
        let step = if d == 0 { 0 } else { 128 };
        let sd0 = d < 0;
        for i in 1..7 {
            let wd2 = if (self.d[i] < 0) == sd0 { step } else { -step };
            self.b[i] = saturate(wd2 + ((self.b[i] * 32_640) >> 15));
        }

        // DELAYA.
        self.d.copy_within(..6, 1);
        self.r.copy_within(..2, 1);
        self.p.copy_within(..2, 1);
        self.a[1] = ap1;
        self.a[2] = ap2;

        // FILTEP, FILTEZ, PREDIC: coefficients are Q14, hence the doubled inputs and >> 15.
        let sp1 = (self.a[1] * saturate(self.r[1] * 2)) >> 15;
        let sp2 = (self.a[2] * saturate(self.r[2] * 2)) >> 15;
        let sp = saturate(sp1 + sp2);
        let mut sz = 0;
        for i in 1..7 {
            sz += (self.b[i] * saturate(self.d[i] * 2)) >> 15;
        }
        self.sz = saturate(sz);
        self.s = saturate(sp + self.sz);
    }
}

/// SCALEL (`shift` 8) and SCALEH (`shift` 10): the scale factor 2^(NB / 2048 + 2 - shift)
/// from the log scale factor NB, through the 32-entry mantissa table ILB.
fn scale_factor(nb: i32, shift: i32) -> i32 {
    let mantissa = ILB[((nb >> 6) & 31) as usize];
    let exponent = shift - (nb >> 11);
    let wd3 = if exponent >= 0 {
        mantissa >> exponent
    } else {
        mantissa << -exponent
    };
    wd3 << 2
}

/// The recommendation's 16-bit magnitude: one's complement for negative values, so that
/// -32768 does not overflow.
fn magnitude(x: i32) -> i32 {
    if x >= 0 { x } else { -(x + 1) }
}

fn saturate(x: i32) -> i32 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

fn saturate16(x: i32) -> i16 {
    // The clamp makes the narrowing exact.
    saturate(x) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / 16_000.0).sin()) as i16
            })
            .collect()
    }

    /// SNR of `out` against `input` delayed by `delay`, over `range` of `out`.
    fn snr(input: &[i16], out: &[i16], delay: usize, range: std::ops::Range<usize>) -> f64 {
        let mut signal = 0.0;
        let mut noise = 0.0;
        for n in range {
            let x = f64::from(input[n - delay]);
            signal += x * x;
            noise += (x - f64::from(out[n])).powi(2);
        }
        10.0 * (signal / noise.max(1e-9)).log10()
    }

    /// A reproducible wideband test signal in integers only (so that another
    /// implementation can generate it bit for bit): xorshift32 noise, a 37-sample
    /// triangle and a 7-sample staircase (energy up to 8 kHz, so both sub-bands work),
    /// under a 250 ms ramp.
    fn kat_signal(n: usize) -> Vec<i16> {
        let mut state = 0x2545_F491u32;
        (0..n as i64)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let noise = i64::from(state >> 20) - 2048;
                let p = i % 37;
                let triangle = if p < 19 {
                    p * 1000 - 9000
                } else {
                    (36 - p) * 1000 - 9000
                };
                let staircase = (i % 7 - 3) * 1500;
                let envelope = i % 4000;
                let v = ((triangle + staircase) * envelope).div_euclid(4000) + noise;
                v.clamp(-32_768, 32_767) as i16
            })
            .collect()
    }

    /// 64-bit FNV-1a, to pin a long output in a test.
    fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
        bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// Known answers from an independent implementation: one second of [`kat_signal`]
    /// through spandsp's G.722 (64 kbit/s, 16 kHz, unpacked; the libspandsp 0.0.6 that
    /// Debian ships), whose encoder follows the ITU-T reference arithmetic. Our codes
    /// match it octet for octet, and decoding its codes gives its PCM sample for sample.
    /// (Where a decoded sample overflows 16 bits, spandsp wraps and we saturate; this
    /// signal stays clear of that.)
    #[test]
    fn known_answers_match_spandsp() {
        let input = kat_signal(16_000);
        assert_eq!(
            &input[..8],
            &[1554, 182, -439, -2052, 1830, 2027, 171, -1765]
        );
        let mut codes = vec![0u8; 8000];
        assert_eq!(G722Encoder::new().encode_frame(&input, &mut codes), 8000);
        let first = [
            0x9b, 0x30, 0x88, 0x20, 0x84, 0x20, 0xd3, 0x3f, 0xa2, 0x16, 0x92, 0xb9, 0x9a, 0x2b,
            0x96, 0x33, 0x3c, 0x3f, 0x98, 0x9b, 0xd0, 0x1f, 0xdb, 0x1c,
        ];
        assert_eq!(&codes[..24], &first);
        assert_eq!(fnv1a(codes.iter().copied()), 0xb904_0a76_29b4_0a36);

        let mut decoded = vec![0i16; 16_000];
        assert_eq!(
            G722Decoder::new().decode_frame(&codes, &mut decoded),
            16_000
        );
        assert_eq!(
            &decoded[1000..1008],
            &[1409, 1707, 2135, 3470, 280, 1032, 2129, 3621]
        );
        let bytes = decoded.iter().flat_map(|s| s.to_le_bytes());
        assert_eq!(fnv1a(bytes), 0x8f72_80b2_23c0_941b);
    }

    /// The scale-factor mantissas are 2048 · 2^(i/32), rounded.
    #[test]
    fn ilb_is_the_inverse_log_table() {
        for (i, &v) in ILB.iter().enumerate() {
            let exact = 2048.0 * 2f64.powf(i as f64 / 32.0);
            assert!(
                (f64::from(v) - exact).abs() <= 1.0,
                "ILB({i}) = {v}, {exact}"
            );
        }
    }

    /// QUANTL's binary search picks the interval the recommendation's linear scan does,
    /// for every scale factor SCALEL can produce.
    #[test]
    fn quantl_search_matches_the_linear_scan() {
        for nb in (0..=NBL_MAX).step_by(128) {
            let det = scale_factor(nb, 8);
            let mut band = Band::new(det);
            for wd in (0..=32_767).step_by(11) {
                let mut mil = 1;
                while mil < 30 && wd >= (Q6[mil] * det) >> 12 {
                    mil += 1;
                }
                band.det = det;
                band.s = 0;
                assert_eq!(band.encode_low(wd), ILP[mil], "det {det}, |EL| {wd}");
            }
        }
    }

    /// The QMF is symmetric with a DC gain of 2^13, split evenly between its two phases.
    #[test]
    fn qmf_coefficients() {
        for i in 0..12 {
            assert_eq!(QMF[i], QMF[23 - i]);
        }
        assert_eq!(QMF.iter().sum::<i32>(), 8192);
        assert_eq!(QMF.iter().step_by(2).sum::<i32>(), 4096);
    }

    /// Analysis then synthesis with no quantization in between reconstructs the input,
    /// delayed by 22 samples (alias cancellation; the two 24-tap filters' 23 samples of
    /// group delay, less the one sample by which synthesis emits a pair early).
    #[test]
    fn qmf_alone_reconstructs() {
        for freq in [300.0, 1000.0, 3100.0, 4100.0, 6000.0, 7000.0] {
            let input = sine(freq, 12_000.0, 3200);
            let mut enc = G722Encoder::new();
            let mut dec = G722Decoder::new();
            let mut out = vec![0i16; input.len()];
            for (pair, o) in input.chunks_exact(2).zip(out.chunks_exact_mut(2)) {
                let (xl, xh) = enc.analyse(pair[0], pair[1]);
                let (a, b) = dec.synthesise(xl, xh);
                o[0] = a;
                o[1] = b;
            }
            let s = snr(&input, &out, 22, 100..3200);
            assert!(s > 35.0, "{freq} Hz: QMF SNR {s:.1} dB");
        }
    }

    #[test]
    fn tone_round_trip_snr() {
        for (freq, min_db) in [(1000.0, 30.0), (440.0, 30.0), (2500.0, 25.0)] {
            let input = sine(freq, 10_000.0, 16_000);
            let mut bytes = vec![0u8; input.len() / 2];
            let mut out = vec![0i16; input.len()];
            let mut enc = G722Encoder::new();
            let mut dec = G722Decoder::new();
            for (pcm, b) in input
                .chunks(G722_FRAME_SAMPLES)
                .zip(bytes.chunks_mut(G722_FRAME_BYTES))
            {
                assert_eq!(enc.encode_frame(pcm, b), G722_FRAME_BYTES);
            }
            for (b, o) in bytes
                .chunks(G722_FRAME_BYTES)
                .zip(out.chunks_mut(G722_FRAME_SAMPLES))
            {
                assert_eq!(dec.decode_frame(b, o), G722_FRAME_SAMPLES);
            }
            // Skip the first 100 ms while the scale factors adapt.
            let s = snr(&input, &out, 22, 1600..16_000);
            assert!(s > min_db, "{freq} Hz: SNR {s:.1} dB");
        }
    }

    /// Silence stays silence: at the smallest scale factor the lower-band quantizer has
    /// no zero level (Q6(1..3) · DETL >> 12 is 0), so the codes dither around the two
    /// smallest levels, but the scale factors stay at their minimum and the decoded
    /// output within a few LSBs of zero.
    #[test]
    fn silence_stays_quiet() {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut bytes = [0u8; G722_FRAME_BYTES];
        let mut out = [0i16; G722_FRAME_SAMPLES];
        let mut loudest = 0;
        for _ in 0..50 {
            enc.encode_frame(&[0; G722_FRAME_SAMPLES], &mut bytes);
            dec.decode_frame(&bytes, &mut out);
            loudest = out.iter().map(|s| s.unsigned_abs()).fold(loudest, u16::max);
        }
        assert!(loudest < 64, "{loudest}");
        assert!(enc.low.det <= 128 && enc.high.det <= 16, "{enc:?}");
        // The higher band settles on its smallest positive level, IH = 3.
        assert_eq!(bytes[G722_FRAME_BYTES - 1] >> 6, 3);
    }

    /// Any octet stream decodes without panic, deterministically, within 16 bits.
    #[test]
    fn decoder_is_total_and_deterministic() {
        let mut x = 0x1234_5678u32;
        let bytes: Vec<u8> = (0..8000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut a = vec![0i16; 16_000];
        let mut b = vec![0i16; 16_000];
        assert_eq!(G722Decoder::new().decode_frame(&bytes, &mut a), 16_000);
        assert_eq!(G722Decoder::new().decode_frame(&bytes, &mut b), 16_000);
        assert_eq!(a, b);
    }

    #[test]
    fn full_scale_input_does_not_overflow() {
        let mut input = vec![0i16; 3200];
        for (i, s) in input.iter_mut().enumerate() {
            *s = if (i / 7) % 2 == 0 { i16::MAX } else { i16::MIN };
        }
        let mut bytes = vec![0u8; 1600];
        let mut out = vec![0i16; 3200];
        G722Encoder::new().encode_frame(&input, &mut bytes);
        G722Decoder::new().decode_frame(&bytes, &mut out);
        // A square wave near full scale comes back loud, not wrapped round to silence.
        let loud = out[400..]
            .iter()
            .filter(|s| s.unsigned_abs() > 8000)
            .count();
        assert!(loud > 1000, "{loud}");
    }

    #[test]
    fn frames_stop_at_the_shorter_buffer() {
        let mut enc = G722Encoder::new();
        let mut out = [0u8; 10];
        assert_eq!(enc.encode_frame(&[0; 320], &mut out), 10);
        assert_eq!(enc.encode_frame(&[0; 7], &mut out), 3);
        let mut dec = G722Decoder::new();
        let mut pcm = [1i16; 9];
        assert_eq!(dec.decode_frame(&[0xFA; 10], &mut pcm), 8);
        assert_eq!(pcm[8], 1);
    }
}
