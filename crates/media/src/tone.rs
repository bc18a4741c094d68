//! Generated tones: sines, and the beeps played when someone joins or leaves a room.
//! Each tone fades in and out over 5 ms so it starts and stops without a click.

use std::f64::consts::PI;

use crate::{Prompt, SAMPLE_RATE};

/// Ramp length at each end of a tone, samples (5 ms).
const RAMP: usize = (SAMPLE_RATE / 200) as usize;

/// Tone generators; each returns a [`Prompt`] so tones play like announcements.
#[derive(Debug, Clone, Copy)]
pub struct Tone;

impl Tone {
    /// A sine of `freq_hz` lasting `ms` milliseconds with peak `amplitude`.
    pub fn sine(freq_hz: f64, ms: u32, amplitude: i16) -> Prompt {
        Prompt::from_samples(sine_samples(freq_hz, ms, amplitude))
    }

    /// `ms` milliseconds of silence.
    pub fn silence(ms: u32) -> Prompt {
        Prompt::from_samples(vec![0i16; samples_for(ms)])
    }

    /// The join beep: a rising two-note chime, 600 Hz then 900 Hz.
    pub fn join_beep() -> Prompt {
        Self::two_notes(600.0, 900.0)
    }

    /// The leave beep: a falling two-note chime, 900 Hz then 600 Hz.
    pub fn leave_beep() -> Prompt {
        Self::two_notes(900.0, 600.0)
    }

    fn two_notes(first: f64, second: f64) -> Prompt {
        let mut v = sine_samples(first, 120, BEEP_AMPLITUDE);
        v.extend(sine_samples(second, 160, BEEP_AMPLITUDE));
        Prompt::from_samples(v)
    }
}

/// About -12 dBFS: audible over speech without startling.
const BEEP_AMPLITUDE: i16 = 8000;

fn samples_for(ms: u32) -> usize {
    (u64::from(ms) * u64::from(SAMPLE_RATE) / 1000) as usize
}

fn sine_samples(freq_hz: f64, ms: u32, amplitude: i16) -> Vec<i16> {
    let n = samples_for(ms);
    let ramp = RAMP.min(n / 2).max(1);
    (0..n)
        .map(|i| {
            let envelope = (i.min(n - 1 - i) as f64 / ramp as f64).min(1.0);
            let x = f64::from(amplitude)
                * envelope
                * (2.0 * PI * freq_hz * i as f64 / f64::from(SAMPLE_RATE)).sin();
            x.round() as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goertzel power of `freq` in `x`, normalised by length.
    fn power(x: &[i16], freq: f64) -> f64 {
        let coeff = 2.0 * (2.0 * PI * freq / f64::from(SAMPLE_RATE)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s = f64::from(v) + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64).powi(2)
    }

    #[test]
    fn sine_has_its_frequency_and_length() {
        let t = Tone::sine(440.0, 1000, 10_000);
        assert_eq!(t.len(), 8000);
        let p440 = power(t.samples(), 440.0);
        let p1000 = power(t.samples(), 1000.0);
        assert!(p440 > 1000.0 * p1000, "{p440} vs {p1000}");
        let peak = t.samples().iter().map(|&s| s.abs()).max().unwrap();
        assert!((9_990..=10_000).contains(&peak));
        // Ramps: starts and ends at silence.
        assert_eq!(t.samples()[0], 0);
        assert!(t.samples()[7999].abs() < 200);
    }

    #[test]
    fn beeps_rise_and_fall() {
        let join = Tone::join_beep();
        let (a, b) = join.samples().split_at(960);
        assert!(power(a, 600.0) > 100.0 * power(a, 900.0));
        assert!(power(b, 900.0) > 100.0 * power(b, 600.0));
        let leave = Tone::leave_beep();
        let (a, _) = leave.samples().split_at(960);
        assert!(power(a, 900.0) > 100.0 * power(a, 600.0));
        assert_eq!(Tone::silence(20).samples(), &[0i16; 160][..]);
        assert!(Tone::sine(1000.0, 0, 100).is_empty());
    }
}
