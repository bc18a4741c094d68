//! Real-time sample-rate conversion between the telephony rates (8, 16 and 48 kHz), one
//! 20 ms frame at a time, for a conference that mixes at one internal rate and speaks
//! each participant's codec rate.
//!
//! A rational polyphase FIR (up by L, low-pass, down by M, with L and M in {1, 2, 3, 6}):
//! only the phases that produce an output are computed, and the input history is carried
//! between calls, so consecutive frames join without a seam. The prototype low-pass is a
//! Kaiser-windowed sinc designed when the converter is built (the one allocation): pass
//! band to 85 % of the lower Nyquist frequency (3.4 kHz at 8 kHz, the telephone band;
//! 6.8 kHz at 16 kHz), stop band from the lower Nyquist frequency on, ≥ 70 dB down. The
//! group delay is half the prototype's length: 3.6 ms for every pair of rates.
//!
//! The offline converter in `resample.rs` serves prompts loaded from disk at arbitrary
//! rates; this one serves the per-tick path and allocates nothing per frame.

use std::f64::consts::PI;

/// A sample rate the conference speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleRate {
    /// 8 kHz narrowband: G.711.
    Hz8000,
    /// 16 kHz wideband: G.722, Opus wideband.
    Hz16000,
    /// 48 kHz fullband: Opus.
    Hz48000,
}

impl SampleRate {
    /// Samples per second.
    pub const fn hz(self) -> u32 {
        match self {
            Self::Hz8000 => 8000,
            Self::Hz16000 => 16_000,
            Self::Hz48000 => 48_000,
        }
    }

    /// Samples in a 20 ms frame.
    pub const fn frame_samples(self) -> usize {
        (self.hz() / 50) as usize
    }

    /// Multiples of 8 kHz: 1, 2 or 6.
    const fn units(self) -> usize {
        (self.hz() / 8000) as usize
    }
}

/// Pass-band edge as a fraction of the lower Nyquist frequency.
const PASS_EDGE: f64 = 0.85;
/// Stop-band attenuation the prototype is designed for, dB.
const STOP_BAND_DB: f64 = 70.0;
/// Largest input the history buffer takes in one go before it slides; callers may pass
/// any length, longer inputs are processed in chunks of this size.
const CHUNK: usize = 960;

/// A streaming converter from one [`SampleRate`] to another.
///
/// Feed it any number of input samples per call; it writes `input.len() × to / from`
/// output samples (exactly, for inputs that are whole 20 ms frames; otherwise the
/// fractional remainder carries over to the next call).
#[derive(Debug, Clone)]
pub struct Resampler {
    from: SampleRate,
    to: SampleRate,
    /// Up-sampling factor L and down-sampling factor M.
    up: usize,
    down: usize,
    /// Taps per phase K; `coefficients[p * K..(p + 1) * K]` is phase p, time-reversed so
    /// that it lines up with the oldest-first history window.
    taps: usize,
    coefficients: Vec<f32>,
    /// Input history: `history[end - K..end]` are the latest K inputs, oldest first.
    history: Vec<f32>,
    end: usize,
    /// Offset of the next output inside the current input interval, in 1/L input
    /// samples; an output is due while it is below L.
    offset: usize,
}

impl Resampler {
    /// A converter from `from` to `to` (the identity when they are equal), starting from
    /// silence.
    pub fn new(from: SampleRate, to: SampleRate) -> Self {
        let (a, b) = (from.units(), to.units());
        let g = gcd(a, b);
        let (up, down) = (b / g, a / g);
        // Design at the up-sampled rate, in cycles per sample (0.5 = its Nyquist).
        let lower_nyquist = 0.5 / up.max(down) as f64;
        let pass = PASS_EDGE * lower_nyquist;
        let stop = lower_nyquist;
        let cutoff = (pass + stop) / 2.0;
        let beta = 0.1102 * (STOP_BAND_DB - 8.7);
        // Kaiser's length estimate for the transition width.
        let estimate = (STOP_BAND_DB - 8.0) / (2.285 * 2.0 * PI * (stop - pass));
        let taps = if up == 1 && down == 1 {
            1
        } else {
            (estimate.ceil() as usize).div_ceil(up)
        };
        let length = taps * up;
        let centre = (length - 1) as f64 / 2.0;
        let mut prototype = vec![0.0f64; length];
        if length == 1 {
            prototype[0] = 1.0;
        } else {
            for (n, h) in prototype.iter_mut().enumerate() {
                let t = n as f64 - centre;
                let window = bessel_i0(beta * (1.0 - (t / centre).powi(2)).max(0.0).sqrt())
                    / bessel_i0(beta);
                // Gain L restores the level lost to the zeros inserted by up-sampling.
                *h = up as f64 * 2.0 * cutoff * sinc(2.0 * cutoff * t) * window;
            }
        }
        // Polyphase split: phase p holds h[p + k·L], k = 0..K, applied to x[i - k];
        // stored reversed to match the oldest-first window.
        let mut coefficients = vec![0.0f32; length];
        for p in 0..up {
            for k in 0..taps {
                coefficients[p * taps + (taps - 1 - k)] = prototype[p + k * up] as f32;
            }
        }
        Self {
            from,
            to,
            up,
            down,
            taps,
            coefficients,
            history: vec![0.0; taps + CHUNK],
            end: taps,
            offset: 0,
        }
    }

    /// The input rate.
    pub fn from_rate(&self) -> SampleRate {
        self.from
    }

    /// The output rate.
    pub fn to_rate(&self) -> SampleRate {
        self.to
    }

    /// Delay through the filter, in output samples.
    pub fn delay(&self) -> usize {
        (self.taps * self.up - 1) / 2 / self.down
    }

    /// Output samples that `input_len` input samples will produce at most.
    pub fn max_output(&self, input_len: usize) -> usize {
        (input_len * self.up).div_ceil(self.down)
    }

    /// Converts `input`, appending to `output`, and returns the samples written. Stops
    /// early, without losing state, if `output` fills up: size it with
    /// [`Self::max_output`] (for 20 ms frames: `to.frame_samples()`). Allocation-free.
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> usize {
        let mut written = 0;
        for &x in input {
            if self.end == self.history.len() {
                // Slide the last K inputs back to the front: once per CHUNK samples.
                let start = self.end - self.taps;
                self.history.copy_within(start..self.end, 0);
                self.end = self.taps;
            }
            self.history[self.end] = f32::from(x);
            self.end += 1;
            let window = &self.history[self.end - self.taps..self.end];
            while self.offset < self.up {
                let Some(slot) = output.get_mut(written) else {
                    return written;
                };
                let phase = &self.coefficients[self.offset * self.taps..][..self.taps];
                let y = dot(phase, window);
                *slot = y.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
                written += 1;
                self.offset += self.down;
            }
            self.offset -= self.up;
        }
        written
    }

    /// Forgets the history (a new talker, a new call).
    pub fn reset(&mut self) {
        self.history.fill(0.0);
        self.end = self.taps;
        self.offset = 0;
    }
}

/// Dot product with eight partial sums, which the compiler can keep in vector registers
/// (a single running f32 sum cannot be reordered, so it would not vectorise).
fn dot(h: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (hc, xc) = (h.chunks_exact(8), x.chunks_exact(8));
    let tail: f32 = hc
        .remainder()
        .iter()
        .zip(xc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in hc.zip(xc) {
        for ((s, &p), &q) in acc.iter_mut().zip(a).zip(b) {
            *s += p * q;
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

/// The zeroth-order modified Bessel function of the first kind, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= (half / k as f64).powi(2);
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [SampleRate; 3] = [SampleRate::Hz8000, SampleRate::Hz16000, SampleRate::Hz48000];

    fn sine(freq: f64, rate: SampleRate, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (10_000.0 * (2.0 * PI * freq * i as f64 / f64::from(rate.hz())).sin()) as i16)
            .collect()
    }

    /// Runs `input` through in 20 ms frames.
    fn convert(from: SampleRate, to: SampleRate, input: &[i16]) -> Vec<i16> {
        let mut r = Resampler::new(from, to);
        let mut out = vec![0i16; input.len() * to.units() / from.units()];
        let mut written = 0;
        for frame in input.chunks(from.frame_samples()) {
            let n = r.process(frame, &mut out[written..]);
            assert_eq!(n, to.frame_samples(), "{from:?} -> {to:?}");
            written += n;
        }
        out
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn every_pair_gives_whole_frames() {
        for from in RATES {
            for to in RATES {
                let out = convert(from, to, &sine(1000.0, from, from.frame_samples() * 5));
                assert_eq!(out.len(), to.frame_samples() * 5);
            }
        }
    }

    #[test]
    fn identity_is_exact() {
        let input = sine(1000.0, SampleRate::Hz16000, 640);
        assert_eq!(
            convert(SampleRate::Hz16000, SampleRate::Hz16000, &input),
            input
        );
    }

    #[test]
    fn delay_is_reported() {
        let r = Resampler::new(SampleRate::Hz8000, SampleRate::Hz16000);
        // An impulse comes out at the reported delay.
        let mut input = [0i16; 160];
        input[0] = 20_000;
        let mut out = [0i16; 320];
        r.clone().process(&input, &mut out);
        let peak = (0..320).max_by_key(|&i| out[i].unsigned_abs()).unwrap_or(0);
        assert!(peak.abs_diff(r.delay()) <= 1, "{peak} vs {}", r.delay());
    }

    #[test]
    fn output_full_keeps_state() {
        let mut r = Resampler::new(SampleRate::Hz8000, SampleRate::Hz48000);
        let input = sine(500.0, SampleRate::Hz8000, 160);
        let mut a = [0i16; 500];
        let n = r.process(&input, &mut a);
        assert_eq!(n, 500);
        assert_eq!(r.max_output(160), 960);
    }

    /// Within the pass band the level is kept to ±0.1 dB.
    #[test]
    fn pass_band_is_flat() {
        for from in RATES {
            for to in RATES {
                let low = from.hz().min(to.hz());
                let edge = PASS_EDGE * f64::from(low) / 2.0;
                for freq in [100.0, 1000.0, edge * 0.6, edge] {
                    let out = convert(from, to, &sine(freq, from, from.frame_samples() * 10));
                    let skip = to.frame_samples();
                    let db = 20.0 * (rms(&out[skip..]) / (10_000.0 / 2f64.sqrt())).log10();
                    assert!(db.abs() < 0.1, "{from:?}->{to:?} {freq} Hz: {db:.3} dB");
                }
            }
        }
    }

    /// Down-sampling removes what the lower rate cannot hold rather than folding it into
    /// the band (70 dB below a 10 000-peak tone is an RMS of about 2).
    #[test]
    fn alias_rejection() {
        for (from, to, freq) in [
            (SampleRate::Hz16000, SampleRate::Hz8000, 5000.0),
            (SampleRate::Hz16000, SampleRate::Hz8000, 7000.0),
            (SampleRate::Hz48000, SampleRate::Hz8000, 6000.0),
            (SampleRate::Hz48000, SampleRate::Hz8000, 20_000.0),
            (SampleRate::Hz48000, SampleRate::Hz16000, 9000.0),
        ] {
            let out = convert(from, to, &sine(freq, from, from.frame_samples() * 10));
            let level = rms(&out[to.frame_samples()..]);
            let db = 20.0 * (level / (10_000.0 / 2f64.sqrt())).log10();
            assert!(db < -60.0, "{from:?}->{to:?} {freq} Hz: {db:.1} dB");
        }
    }

    /// Up-sampling does not leave images of the band above the old Nyquist frequency.
    #[test]
    fn image_rejection() {
        for (from, to) in [
            (SampleRate::Hz8000, SampleRate::Hz16000),
            (SampleRate::Hz8000, SampleRate::Hz48000),
            (SampleRate::Hz16000, SampleRate::Hz48000),
        ] {
            let freq = 1000.0;
            let out = convert(from, to, &sine(freq, from, from.frame_samples() * 10));
            let image = f64::from(from.hz()) - freq;
            let skip = to.frame_samples();
            let level = goertzel(&out[skip..], image, to.hz());
            let signal = goertzel(&out[skip..], freq, to.hz());
            let db = 20.0 * (level / signal).log10();
            assert!(
                db < -60.0,
                "{from:?}->{to:?} image at {image} Hz: {db:.1} dB"
            );
        }
    }

    fn goertzel(x: &[i16], freq: f64, rate: u32) -> f64 {
        let w = 2.0 * PI * freq / f64::from(rate);
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s = f64::from(v) + c * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - c * s1 * s2).max(0.0).sqrt()
    }
}
