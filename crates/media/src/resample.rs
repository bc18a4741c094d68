//! Offline sample-rate conversion for prompts: a Blackman-windowed sinc low-pass
//! evaluated at each output instant (band-limited interpolation, J. O. Smith's
//! "Digital Audio Resampling").
//!
//! Limits: it runs once, when a prompt is loaded, in f64 and O(output × taps)
//! (about 200 taps per output sample for 48 kHz → 8 kHz): fine for seconds of audio,
//! not meant for the real-time path. The cut-off sits at 90 % of the lower Nyquist
//! frequency, so a 8 kHz output keeps 0..3.6 kHz (the telephone band is 0.3..3.4 kHz)
//! and images above 4 kHz are attenuated by the Blackman window's ~70 dB.

use std::f64::consts::PI;

/// Zero crossings of the sinc on each side of the centre, at the filter's cut-off.
const ZERO_CROSSINGS: f64 = 16.0;
/// Cut-off as a fraction of the lower of the two Nyquist frequencies.
const ROLL_OFF: f64 = 0.9;

/// Resamples `input` from `from_hz` to `to_hz`. Returns `input` unchanged when the
/// rates are equal.
pub(crate) fn resample(input: &[i16], from_hz: u32, to_hz: u32) -> Vec<i16> {
    if from_hz == to_hz || input.is_empty() || from_hz == 0 || to_hz == 0 {
        return input.to_vec();
    }
    let ratio = f64::from(to_hz) / f64::from(from_hz);
    // Cut-off in cycles per input sample ×2 (1.0 = input Nyquist).
    let cutoff = ROLL_OFF * ratio.min(1.0);
    let half_width = (ZERO_CROSSINGS / cutoff).ceil();
    let out_len = ((input.len() as f64) * ratio).round() as usize;
    let last = input.len() as i64 - 1;

    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let t = n as f64 / ratio; // position in input samples
        let first = (t - half_width).ceil() as i64;
        let end = (t + half_width).floor() as i64;
        let mut acc = 0.0;
        let mut weight_sum = 0.0;
        for k in first.max(0)..=end.min(last) {
            let d = t - k as f64;
            let w = cutoff * sinc(cutoff * d) * blackman(d / half_width);
            // k is within 0..=last, so the index is in bounds.
            acc += w * f64::from(input[k as usize]);
            weight_sum += w;
        }
        // Normalising by the weights keeps DC gain exactly 1, including at the edges
        // where the kernel is cut short.
        let y = if weight_sum.abs() > 1e-9 {
            acc / weight_sum
        } else {
            0.0
        };
        out.push(y.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16);
    }
    out
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

/// Blackman window over x in [-1, 1].
fn blackman(x: f64) -> f64 {
    if x.abs() >= 1.0 {
        return 0.0;
    }
    0.42 + 0.5 * (PI * x).cos() + 0.08 * (2.0 * PI * x).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<i16> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| (amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as i16)
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn passband_is_kept() {
        for rate in [16_000, 22_050, 44_100, 48_000] {
            let out = resample(&sine(1000.0, rate, 1.0, 10_000.0), rate, 8000);
            assert!(
                (out.len() as i64 - 8000).abs() <= 1,
                "{rate}: {}",
                out.len()
            );
            // Skip the edges; a 10 000-peak sine has an RMS of 7071.
            let r = rms(&out[400..7600]);
            assert!((r - 7071.0).abs() < 150.0, "{rate}: rms {r}");
        }
    }

    #[test]
    fn above_nyquist_is_removed_not_aliased() {
        // 6 kHz at 48 kHz would alias to 2 kHz at 8 kHz without the low-pass.
        let out = resample(&sine(6000.0, 48_000, 1.0, 10_000.0), 48_000, 8000);
        let r = rms(&out[400..7600]);
        assert!(r < 10.0, "rms {r}");
    }

    #[test]
    fn upsampling_and_identity() {
        let input = sine(440.0, 4000, 0.5, 8000.0);
        let out = resample(&input, 4000, 8000);
        assert_eq!(out.len(), 4000);
        assert!((rms(&out[200..3800]) - 5657.0).abs() < 120.0);
        assert_eq!(resample(&input, 8000, 8000), input);
        assert!(resample(&[], 48_000, 8000).is_empty());
    }
}
