//! Keeps in-band DTMF out of the conference mix: a one-frame look-ahead Goertzel
//! squelch over 8 kHz frames, so keyed digits are never heard by the others.
//!
//! Each 20 ms frame is classified on its own: Goertzel filters at the eight ITU-T
//! Q.23 frequencies, run over each half of the frame (80 samples, 10 ms) and summed
//! over the halves. Half-frame filters are ~100 Hz wide, so a tone up to a few
//! percent off its nominal frequency still lands in its filter, and a tone that
//! covers only one half of the frame is seen as clearly as a whole-frame tone
//! (the other half contributes little energy either way). A frame *carries a
//! tone* when:
//!
//! - level: the strongest row tone and the strongest column tone are each at
//!   least [`MIN_LEVEL_DBM0`];
//! - twist: they are within [`MAX_TWIST_DB`] of each other, either way;
//! - tone-to-total energy: together they hold at least [`MIN_TONE_RATIO`] of the
//!   frame's energy. Speech spreads its energy over a harmonic series and
//!   formants, noise over the whole band; a key press puts it into two lines.
//!
//! The thresholds lean toward silencing: this is not the digit detector (that is
//! the conference crate's Q.24 Goertzel detector, which must not report false
//! digits); here a speech frame silenced now and then is tolerable, a digit
//! heard is not.
//!
//! A tone's first frame may be only partly covered and fail the checks, and so may
//! its last. So the squelch delays the audio by one frame and silences a frame when
//! it, the frame after it (look-ahead) or the frame before it (hang-over) carries a
//! tone. Any key press of 40 ms or more (Q.24's minimum) fully covers one frame, so
//! every frame holding a part of it is silenced, unless the caller's own talk drowns
//! the tone (then it fails the energy check, as it would fail any detector's).

use crate::{FRAME_SAMPLES, SAMPLE_RATE};

/// Minimum level of each of the two tones, dBm0: 6 dB under the conference
/// detector's -30 dBm0, to be sure a digit the detector hears is never mixed.
pub const MIN_LEVEL_DBM0: f32 = -36.0;
/// Maximum level difference between the two tones, dB, either way (Q.24 asks
/// for forward twist up to 8 dB and reverse up to 4 dB; be lenient both ways).
pub const MAX_TWIST_DB: f32 = 8.0;
/// Minimum share of the frame's energy held by the two tones.
pub const MIN_TONE_RATIO: f32 = 0.6;

/// Samples per analysis window: half a frame.
const HALF: usize = FRAME_SAMPLES / 2;
/// Q.23 low (row) group then high (column) group, Hz.
const FREQS: [f32; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];
/// Peak amplitude (16-bit linear) of a 0 dBm0 sine (G.711's maximum is +3.17 dBm0).
const DBM0_AMPLITUDE: f32 = 22_656.0;

/// A one-frame delay line that silences frames carrying a DTMF dual tone.
/// Allocation-free; about 2 KiB of state per participant.
#[derive(Debug, Clone)]
pub struct DtmfSquelch {
    coeffs: [f32; 8],
    /// Minimum tone energy over a frame, in the units of `frame_energy`.
    min_tone_energy: f32,
    /// Twist limit as a power ratio.
    max_twist: f32,
    /// The frame received last tick, to be handed back next tick.
    held: [i16; FRAME_SAMPLES],
    /// Whether `held` carries a tone.
    held_tone: bool,
    /// Whether the frame handed back last tick carried a tone (hang-over).
    before_tone: bool,
}

impl Default for DtmfSquelch {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfSquelch {
    /// A squelch holding one frame of silence.
    pub fn new() -> Self {
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(FREQS) {
            *c = 2.0 * (2.0 * std::f32::consts::PI * f / SAMPLE_RATE as f32).cos();
        }
        let min_amp = DBM0_AMPLITUDE * 10f32.powf(MIN_LEVEL_DBM0 / 20.0);
        Self {
            coeffs,
            // A sine of amplitude A carries A²/2 per sample.
            min_tone_energy: min_amp * min_amp / 2.0 * FRAME_SAMPLES as f32,
            max_twist: 10f32.powf(MAX_TWIST_DB / 10.0),
            held: [0; FRAME_SAMPLES],
            held_tone: false,
            before_tone: false,
        }
    }

    /// Takes this tick's decoded 8 kHz frame and replaces it in place with the
    /// frame to mix: the previous tick's frame (one tick of delay), silenced when
    /// it, the frame just after it or the frame just before it carries a DTMF dual
    /// tone. Returns true when the frame handed back was silenced.
    pub fn process(&mut self, frame: &mut [i16; FRAME_SAMPLES]) -> bool {
        let tone = self.carries_tone(frame);
        std::mem::swap(&mut self.held, frame);
        let silence = self.before_tone || self.held_tone || tone;
        if silence {
            frame.fill(0);
        }
        self.before_tone = self.held_tone;
        self.held_tone = tone;
        silence
    }

    /// Forgets the held frame and tone history, e.g. when the participant is
    /// muted or rejoins: the next frame handed back is silence.
    pub fn reset(&mut self) {
        self.held = [0; FRAME_SAMPLES];
        self.held_tone = false;
        self.before_tone = false;
    }

    /// Whether `frame` carries a DTMF dual tone (see the module doc).
    fn carries_tone(&self, frame: &[i16; FRAME_SAMPLES]) -> bool {
        let mut tone_energy = [0.0f32; 8];
        let mut frame_energy = 0.0f32;
        for half in frame.chunks_exact(HALF) {
            let mut s1 = [0.0f32; 8];
            let mut s2 = [0.0f32; 8];
            for &x in half {
                let x = f32::from(x);
                frame_energy += x * x;
                for ((c, s1), s2) in self.coeffs.iter().zip(&mut s1).zip(&mut s2) {
                    let s0 = x + c * *s1 - *s2;
                    *s2 = *s1;
                    *s1 = s0;
                }
            }
            for (((e, c), s1), s2) in tone_energy.iter_mut().zip(&self.coeffs).zip(s1).zip(s2) {
                // |X(f)|² of the window; 2|X|²/N is the energy of a sine at f.
                let power = s1 * s1 + s2 * s2 - c * s1 * s2;
                *e += power * (2.0 / HALF as f32);
            }
        }
        let [r0, r1, r2, r3, c0, c1, c2, c3] = tone_energy;
        let row = r0.max(r1).max(r2).max(r3);
        let col = c0.max(c1).max(c2).max(c3);
        row >= self.min_tone_energy
            && col >= self.min_tone_energy
            && row <= col * self.max_twist
            && col <= row * self.max_twist
            && row + col >= MIN_TONE_RATIO * frame_energy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::PI;

    const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    /// Keypad order: 1 2 3 A / 4 5 6 B / 7 8 9 C / * 0 # D.
    const KEYS: &str = "123A456B789C*0#D";

    fn key_freqs() -> impl Iterator<Item = (char, f32, f32)> {
        KEYS.chars()
            .enumerate()
            .map(|(i, key)| (key, ROWS[i / 4], COLS[i % 4]))
    }

    /// Deterministic white noise in [-1, 1) (xorshift32).
    struct Noise(u32);
    impl Noise {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (self.0 as f32 / u32::MAX as f32) * 2.0 - 1.0
        }
    }

    fn amplitude(dbm0: f32) -> f32 {
        DBM0_AMPLITUDE * 10f32.powf(dbm0 / 20.0)
    }

    fn add_sine(x: &mut [f32], start: usize, len: usize, freq: f32, amp: f32) {
        let phase = freq * 0.37; // not aligned with the frame
        for (i, v) in x.iter_mut().skip(start).take(len).enumerate() {
            *v += amp * (2.0 * PI * freq * i as f32 / SAMPLE_RATE as f32 + phase).sin();
        }
    }

    fn add_noise(x: &mut [f32], seed: u32, rms: f32) {
        let mut n = Noise(seed);
        // Uniform in [-1, 1) has rms 1/√3.
        for v in x.iter_mut() {
            *v += n.next() * rms * 3f32.sqrt();
        }
    }

    fn to_frames(x: &[f32]) -> Vec<[i16; FRAME_SAMPLES]> {
        x.chunks(FRAME_SAMPLES)
            .map(|c| {
                let mut f = [0i16; FRAME_SAMPLES];
                for (o, v) in f.iter_mut().zip(c) {
                    *o = v.round().clamp(-32768.0, 32767.0) as i16;
                }
                f
            })
            .collect()
    }

    /// Runs frames through a fresh squelch (plus one flush frame of silence) and
    /// returns, per input frame, the frame handed back for it and whether it was
    /// silenced.
    fn run(frames: &[[i16; FRAME_SAMPLES]]) -> Vec<([i16; FRAME_SAMPLES], bool)> {
        let mut sq = DtmfSquelch::new();
        let mut out = Vec::new();
        for (i, f) in frames
            .iter()
            .chain([[0i16; FRAME_SAMPLES]].iter())
            .enumerate()
        {
            let mut buf = *f;
            let silenced = sq.process(&mut buf);
            if i > 0 {
                out.push((buf, silenced));
            }
        }
        out
    }

    /// A key press of `len` samples from sample `start` in `total` samples.
    fn press(
        row: f32,
        col: f32,
        dbm0: (f32, f32),
        start: usize,
        len: usize,
        total: usize,
    ) -> Vec<f32> {
        let mut x = vec![0.0f32; total];
        add_sine(&mut x, start, len, row, amplitude(dbm0.0));
        add_sine(&mut x, start, len, col, amplitude(dbm0.1));
        x
    }

    /// Asserts every frame holding a part of the tone `[start, start + len)` is
    /// silenced, so is the one after the last frame the tone fully covers
    /// (hang-over), and frames well away from it pass.
    fn assert_squelched(what: &str, x: &[f32], start: usize, len: usize) {
        let frames = to_frames(x);
        let out = run(&frames);
        let first = start / FRAME_SAMPLES;
        let last = (start + len - 1) / FRAME_SAMPLES;
        for (i, (f, silenced)) in out.iter().enumerate() {
            if (first..=last).contains(&i) {
                assert!(silenced, "{what}: frame {i} of tone {first}..={last} heard");
                assert!(f.iter().all(|&s| s == 0), "{what}: frame {i} not zeroed");
            }
            if i + 2 < first || i > last + 2 {
                assert!(
                    !silenced,
                    "{what}: frame {i} away from tone {first}..={last} silenced"
                );
            }
        }
        // The last whole-tone frame is detected, so the frame after it is silenced.
        let last_full = (start + len) / FRAME_SAMPLES - 1;
        assert!(
            out[last_full + 1].1,
            "{what}: no hang-over after frame {last_full}"
        );
    }

    #[test]
    fn every_key_at_every_level_is_silenced_from_first_frame_to_one_after() {
        for (key, row, col) in key_freqs() {
            for dbm0 in [0.0, -7.0, -15.0, -25.0, -33.0] {
                let x = press(row, col, (dbm0, dbm0), 800, 800, 3200);
                assert_squelched(&format!("{key} at {dbm0} dBm0"), &x, 800, 800);
            }
        }
    }

    #[test]
    fn keys_in_noise_with_twist_and_frequency_error_are_silenced() {
        for (n, (key, row, col)) in key_freqs().enumerate() {
            // Typical levels: low group -9, high -7 dBm0; noise 20 dB under, and
            // a level where the noise is only 12 dB under each tone.
            for (twist, noise_db, deviation) in [
                ((-9.0, -7.0), -29.0, 1.0),
                ((-10.0, -16.0), -28.0, 1.015), // 6 dB forward twist, +1.5%
                ((-20.0, -14.0), -34.0, 0.985), // 6 dB reverse twist, -1.5%
                ((-25.0, -25.0), -37.0, 1.0),
            ] {
                let mut x = press(row * deviation, col * deviation, twist, 1000, 640, 4000);
                add_noise(&mut x, 1 + n as u32, amplitude(noise_db) / 2f32.sqrt());
                let what = format!("{key} at {twist:?} dBm0, noise {noise_db}, x{deviation}");
                assert_squelched(&what, &x, 1000, 640);
            }
        }
    }

    #[test]
    fn a_tone_starting_mid_frame_is_silenced_from_its_first_sample() {
        let (_, row, col) = key_freqs().nth(13).unwrap(); // '0'
        for start in [800, 801, 840, 880, 900, 950, 959] {
            // 40 ms, Q.24's shortest digit, and a long press.
            for len in [320, 1000] {
                let x = press(row, col, (-10.0, -10.0), start, len, 3200);
                assert_squelched(&format!("start {start} len {len}"), &x, start, len);
            }
        }
    }

    #[test]
    fn a_short_press_amid_speech_is_silenced() {
        // Digits keyed while the room is noisy: the press itself still dominates.
        let (_, row, col) = key_freqs().nth(5).unwrap(); // '5'
        let mut x = vowel(
            &[(730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0)],
            4000,
            500.0,
        );
        add_sine(&mut x, 1700, 400, row, amplitude(-8.0));
        add_sine(&mut x, 1700, 400, col, amplitude(-6.0));
        let frames = to_frames(&x);
        let out = run(&frames);
        for (i, (_, silenced)) in out.iter().enumerate().take(14).skip(10) {
            assert!(silenced, "frame {i} of the press heard");
        }
    }

    /// A voiced vowel: harmonics of a 120 Hz fundamental (with slow vibrato)
    /// shaped by formants `(centre, bandwidth)`, at rms `level`.
    fn vowel(formants: &[(f32, f32)], len: usize, level: f32) -> Vec<f32> {
        let mut x = vec![0.0f32; len];
        let mut phases = [0.0f32; 28];
        for (t, v) in x.iter_mut().enumerate() {
            let f0 = 120.0 * (1.0 + 0.03 * (2.0 * PI * 5.0 * t as f32 / 8000.0).sin());
            for (h, phase) in phases.iter_mut().enumerate() {
                let f = f0 * (h + 1) as f32;
                if f > 3400.0 {
                    continue;
                }
                // Resonance gains of the formants, with a -6 dB/octave source tilt.
                let gain: f32 = formants
                    .iter()
                    .map(|&(c, bw)| 1.0 / (1.0 + ((f - c) / (bw / 2.0)).powi(2)).sqrt())
                    .sum::<f32>()
                    / (h + 1) as f32;
                *phase += 2.0 * PI * f / 8000.0;
                *v += gain * phase.sin();
            }
        }
        let rms = (x.iter().map(|v| v * v).sum::<f32>() / len as f32).sqrt();
        x.iter_mut().for_each(|v| *v *= level / rms);
        x
    }

    /// Asserts at least `min_share` of the frames pass, each unchanged and one
    /// frame late.
    fn assert_mostly_passed(what: &str, x: &[f32], min_share: f32) {
        let frames = to_frames(x);
        let out = run(&frames);
        let mut passed = 0;
        for (i, (f, silenced)) in out.iter().enumerate() {
            if !silenced {
                assert_eq!(f, &frames[i], "{what}: frame {i} altered");
                passed += 1;
            }
        }
        let share = passed as f32 / out.len() as f32;
        assert!(
            share >= min_share,
            "{what}: only {share:.3} of frames passed"
        );
    }

    #[test]
    fn vowels_and_noise_pass_unchanged_one_frame_late() {
        // Peterson & Barney formants (male): /a/ /i/ /u/ /e/ /o/ /æ/ /ɝ/.
        let vowels: [&[(f32, f32)]; 7] = [
            &[(730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0)],
            &[(270.0, 60.0), (2290.0, 100.0), (3010.0, 120.0)],
            &[(300.0, 60.0), (870.0, 90.0), (2240.0, 170.0)],
            &[(530.0, 70.0), (1840.0, 100.0), (2480.0, 160.0)],
            &[(570.0, 70.0), (840.0, 80.0), (2410.0, 170.0)],
            &[(660.0, 80.0), (1720.0, 100.0), (2410.0, 160.0)],
            &[(490.0, 70.0), (1350.0, 100.0), (1690.0, 120.0)],
        ];
        for (n, formants) in vowels.iter().enumerate() {
            for level in [300.0, 3000.0, 12000.0] {
                let x = vowel(formants, 16000, level);
                assert_mostly_passed(&format!("vowel {n} at rms {level}"), &x, 0.95);
            }
        }
        for (seed, rms) in [(1, 30.0), (2, 1000.0), (3, 8000.0)] {
            let mut x = vec![0.0f32; 16000];
            add_noise(&mut x, seed, rms);
            assert_mostly_passed(&format!("noise at rms {rms}"), &x, 1.0);
        }
    }

    #[test]
    fn single_tones_and_silence_pass() {
        for freq in [440.0, 1000.0, 697.0, 1209.0, 600.0, 900.0] {
            let mut x = vec![0.0f32; 8000];
            add_sine(&mut x, 0, 8000, freq, 8000.0);
            assert_mostly_passed(&format!("{freq} Hz"), &x, 1.0);
        }
        // The join chime, and the two notes at once.
        let mut x = vec![0.0f32; 8000];
        add_sine(&mut x, 0, 960, 600.0, 8000.0);
        add_sine(&mut x, 960, 1280, 900.0, 8000.0);
        add_sine(&mut x, 4000, 2000, 600.0, 5000.0);
        add_sine(&mut x, 4000, 2000, 900.0, 5000.0);
        assert_mostly_passed("chime", &x, 1.0);
        assert_mostly_passed("silence", &[0.0; 8000], 1.0);
    }

    #[test]
    fn the_first_frame_handed_back_is_the_initial_silence() {
        let mut sq = DtmfSquelch::default();
        let mut f = [1234i16; FRAME_SAMPLES];
        assert!(!sq.process(&mut f));
        assert_eq!(f, [0; FRAME_SAMPLES]);
        let mut g = [-7i16; FRAME_SAMPLES];
        assert!(!sq.process(&mut g));
        assert_eq!(g, [1234; FRAME_SAMPLES]);
        sq.reset();
        assert!(!sq.process(&mut g));
        assert_eq!(g, [0; FRAME_SAMPLES]);
    }

    #[test]
    fn a_long_press_is_silenced_throughout() {
        let x = press(770.0, 1336.0, (-10.0, -10.0), 0, 8000, 8000);
        let out = run(&to_frames(&x));
        assert_eq!(out.len(), 50);
        for (i, (f, silenced)) in out.iter().enumerate() {
            assert!(*silenced && f.iter().all(|&s| s == 0), "frame {i} heard");
        }
    }
}
