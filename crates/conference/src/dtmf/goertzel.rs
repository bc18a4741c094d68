//! In-band DTMF detection over 8 kHz linear PCM: Goertzel filters at the eight
//! ITU-T Q.23 frequencies, with the Q.24-style checks that keep speech and music out.
//!
//! Audio is cut into blocks of [`BLOCK_SAMPLES`] (13.1 ms). The block length is a
//! compromise: long enough that adjacent low-group tones (697/770 Hz, 73 Hz apart)
//! leak less than -25 dB into each other's filter, short enough that a 40 ms tone
//! always covers two whole blocks. Each block passes or fails these checks:
//!
//! - level: the strongest row and column tone each at least `min_level_dbm0`;
//! - twist: forward (low group louder, the usual case because lines attenuate high
//!   frequencies) at most 8 dB, reverse (high group louder) at most 4 dB;
//! - relative peak: the strongest filter in each group beats the other three;
//! - tone-to-total energy: the two tones carry most of the block's energy (speech
//!   and music spread theirs);
//! - second harmonic: a tone's 2nd harmonic is well below it (voiced speech has a
//!   rich harmonic series, a DTMF generator none);
//! - frequency deviation: each tone nearer its nominal frequency than 4% off;
//! - steadiness: both halves of the block carry similar energy. A tone is steady,
//!   so a block it only partly covers fails; this is what makes the duration
//!   check exact.
//!
//! A digit is reported once `min_blocks` consecutive blocks agree (2 blocks: tones
//! of 40 ms and more are always found, tones under ~21 ms never) and only after
//! `min_pause_blocks` failing blocks since the previous digit (3 blocks: a 10 ms
//! drop-out in a long press does not make a second digit, a 40 ms pause does).

use super::Digit;

/// The sample rate the detector expects.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples per analysis block.
pub const BLOCK_SAMPLES: usize = 105;

/// Q.23 low (row) group, Hz.
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// Q.23 high (column) group, Hz.
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[Digit; 4]; 4] = [
    [Digit::One, Digit::Two, Digit::Three, Digit::A],
    [Digit::Four, Digit::Five, Digit::Six, Digit::B],
    [Digit::Seven, Digit::Eight, Digit::Nine, Digit::C],
    [Digit::Star, Digit::Zero, Digit::Pound, Digit::D],
];
/// Where the deviation check probes, relative to each nominal frequency.
const DEVIATION_PROBE: f32 = 0.04;
/// See the row harmonic check in `classify_block`.
const HARMONIC_GUARD_HZ: f32 = 100.0;
/// Peak amplitude (16-bit linear) of a 0 dBm0 sine: G.711's maximum is +3.17 dBm0.
const DBM0_AMPLITUDE: f32 = 22_656.0;
/// Digits detected but not yet polled; a digit needs at least five blocks
/// (pause + tone), so this is ample for any frame size a caller polls after.
const QUEUE: usize = 8;

/// Thresholds of the in-band detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoertzelConfig {
    /// Minimum level of each of the two tones, dBm0.
    pub min_level_dbm0: f32,
    /// Maximum forward twist (low group louder than high), dB.
    pub forward_twist_db: f32,
    /// Maximum reverse twist (high group louder than low), dB.
    pub reverse_twist_db: f32,
    /// How far the strongest tone of a group must be above the group's others, dB.
    pub relative_peak_db: f32,
    /// Minimum share of the block's energy carried by the two tones (0..1).
    pub min_tone_energy_ratio: f32,
    /// Minimum energy of the quieter half of a block relative to the louder (0..1):
    /// a tone is steady, so a block it only partly covers fails.
    pub min_half_energy_ratio: f32,
    /// How far each tone's second harmonic must be below the tone, dB.
    pub second_harmonic_db: f32,
    /// Consecutive passing blocks that make a digit.
    pub min_blocks: u8,
    /// Failing blocks needed after a digit before the next one.
    pub min_pause_blocks: u8,
}

impl Default for GoertzelConfig {
    fn default() -> Self {
        Self {
            min_level_dbm0: -30.0,
            forward_twist_db: 8.0,
            reverse_twist_db: 4.0,
            relative_peak_db: 6.0,
            // Not more: a tone 1.5% off its nominal frequency (which Q.24 says to
            // accept) loses up to 1.5 dB in a 105-sample Goertzel filter.
            min_tone_energy_ratio: 0.7,
            // The quieter half at least -2.6 dB: a block must be about 80% covered
            // by a tone, so two passing blocks need 21 ms of tone at least.
            min_half_energy_ratio: 0.55,
            // Q.23 generators keep distortion 20 dB down; voiced speech with a
            // harmonic on a row tone has the next one within ~9 dB.
            second_harmonic_db: 10.0,
            min_blocks: 2,
            min_pause_blocks: 3,
        }
    }
}

/// The config's dB values as power ratios, computed once.
#[derive(Debug, Clone, Copy)]
struct Limits {
    min_power: f32,
    forward_twist: f32,
    reverse_twist: f32,
    relative_peak: f32,
    energy_ratio: f32,
    half_ratio: f32,
    harmonic: f32,
}

impl Limits {
    fn new(c: &GoertzelConfig) -> Self {
        let ratio = |db: f32| 10f32.powf(db / 10.0);
        let min_amp = DBM0_AMPLITUDE * 10f32.powf(c.min_level_dbm0 / 20.0);
        Self {
            min_power: min_amp * min_amp,
            forward_twist: ratio(c.forward_twist_db),
            reverse_twist: ratio(c.reverse_twist_db),
            relative_peak: ratio(c.relative_peak_db),
            energy_ratio: c.min_tone_energy_ratio,
            half_ratio: c.min_half_energy_ratio,
            harmonic: ratio(c.second_harmonic_db),
        }
    }
}

/// Finds DTMF digits in a stream of 8 kHz samples. Allocation-free: all state is
/// fixed-size, including the block buffer and the output queue.
#[derive(Debug, Clone)]
pub struct GoertzelDetector {
    config: GoertzelConfig,
    limits: Limits,
    coeffs: [f32; 8],
    /// The block's samples as received: i16, half the cache lines of f32 per member,
    /// converted (exactly) where the filters read them.
    block: [i16; BLOCK_SAMPLES],
    fill: usize,
    candidate: Option<Digit>,
    run: u8,
    /// The digit reported and not yet released by a pause.
    held: Option<Digit>,
    quiet: u8,
    queue: [Option<Digit>; QUEUE],
    queue_head: usize,
    queue_len: usize,
}

impl Default for GoertzelDetector {
    fn default() -> Self {
        Self::new(GoertzelConfig::default())
    }
}

impl GoertzelDetector {
    /// A detector with the given thresholds.
    pub fn new(config: GoertzelConfig) -> Self {
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS.iter().chain(COLS.iter())) {
            *c = coeff(*f);
        }
        Self {
            config,
            limits: Limits::new(&config),
            coeffs,
            block: [0; BLOCK_SAMPLES],
            fill: 0,
            candidate: None,
            run: 0,
            held: None,
            quiet: 0,
            queue: [None; QUEUE],
            queue_head: 0,
            queue_len: 0,
        }
    }

    /// Feeds samples (any frame length; blocks span frames). Digits found are
    /// queued for [`poll_digit`](Self::poll_digit).
    pub fn handle_samples(&mut self, mut samples: &[i16]) {
        // A run of samples at a time into the block (the copy vectorises): this runs
        // on every frame of every call in a meeting.
        while !samples.is_empty() {
            let free = self.block.get_mut(self.fill..).unwrap_or_default();
            let take = free.len().min(samples.len());
            let (now, later) = samples.split_at(take);
            if let Some(free) = free.get_mut(..take) {
                free.copy_from_slice(now);
            }
            samples = later;
            self.fill += take;
            if self.fill >= BLOCK_SAMPLES {
                self.fill = 0;
                let found = self.classify_block();
                self.step(found);
            }
        }
    }

    /// The next digit found, at its start (after `min_blocks`).
    pub fn poll_digit(&mut self) -> Option<Digit> {
        if self.queue_len == 0 {
            return None;
        }
        let d = self.queue.get_mut(self.queue_head).and_then(Option::take);
        self.queue_head = (self.queue_head + 1) % QUEUE;
        self.queue_len -= 1;
        d
    }

    /// The thresholds in use.
    pub fn config(&self) -> &GoertzelConfig {
        &self.config
    }

    /// Advances the press/pause state machine by one block's verdict.
    fn step(&mut self, found: Option<Digit>) {
        if found.is_some() && found == self.candidate {
            self.run = self.run.saturating_add(1);
        } else {
            self.candidate = found;
            self.run = u8::from(found.is_some());
        }
        if self.held.is_some() {
            if found == self.held {
                self.quiet = 0;
            } else {
                self.quiet = self.quiet.saturating_add(1);
                if self.quiet >= self.config.min_pause_blocks {
                    self.held = None;
                }
            }
        }
        if self.held.is_none()
            && self.run >= self.config.min_blocks
            && let Some(d) = self.candidate
        {
            self.held = Some(d);
            self.quiet = 0;
            self.push(d);
        }
    }

    fn push(&mut self, d: Digit) {
        if self.queue_len == QUEUE {
            // The caller stopped polling; keep the newest digits.
            self.queue_head = (self.queue_head + 1) % QUEUE;
            self.queue_len -= 1;
        }
        let tail = (self.queue_head + self.queue_len) % QUEUE;
        if let Some(slot) = self.queue.get_mut(tail) {
            *slot = Some(d);
            self.queue_len += 1;
        }
    }

    /// Runs the eight filters over the current block and applies every check.
    fn classify_block(&self) -> Option<Digit> {
        let mut s1 = [0f32; 8];
        let mut s2 = [0f32; 8];
        let energy = sum_of_squares(&self.block);
        // No bin can hold more than the block (Cauchy-Schwarz: |X_k|² ≤ N·energy, so
        // a tone's amplitude² ≤ 4·energy/N): a block too quiet for any tone to reach
        // `min_power` is no digit, and its eight filters need not run (half the bound,
        // for rounding). Most frames of a meeting are such blocks.
        let n = BLOCK_SAMPLES as f32;
        if 4.0 * energy / n < self.limits.min_power * 0.5 {
            return None;
        }
        // Indexes are 0..8 into arrays of 8: in bounds by construction, and
        // plain indexing keeps the inner loop vectorisable.
        for &x in &self.block {
            let x = f32::from(x);
            for k in 0..8 {
                let s0 = x + self.coeffs[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
        }
        let mut power = [0f32; 8];
        for k in 0..8 {
            power[k] = amplitude_sq(s1[k], s2[k], self.coeffs[k]);
        }
        let (rows, cols) = power.split_at(4);
        let (r, row_power) = strongest(rows)?;
        let (c, col_power) = strongest(cols)?;
        let l = &self.limits;

        if row_power < l.min_power || col_power < l.min_power {
            return None;
        }
        let twist_ok = if row_power >= col_power {
            row_power <= col_power * l.forward_twist
        } else {
            col_power <= row_power * l.reverse_twist
        };
        if !twist_ok {
            return None;
        }
        let dominates = |group: &[f32], best: usize, p: f32| {
            group
                .iter()
                .enumerate()
                .all(|(i, &q)| i == best || q * l.relative_peak <= p)
        };
        if !dominates(rows, r, row_power) || !dominates(cols, c, col_power) {
            return None;
        }
        // A sine of amplitude A has mean square A²/2.
        let tone_energy = (row_power + col_power) / 2.0;
        let mean_square = energy / BLOCK_SAMPLES as f32;
        if tone_energy < l.energy_ratio * mean_square {
            return None;
        }
        let (first, _) = self.block.split_at(BLOCK_SAMPLES / 2);
        let e1: f32 = first.iter().map(|&x| f32::from(x) * f32::from(x)).sum();
        let e2 = energy - e1;
        if e1.min(e2) < l.half_ratio * e1.max(e2) {
            return None;
        }
        // Only blocks that look like DTMF pay for the harmonic filters.
        let (row_f, col_f) = (ROWS.get(r).copied()?, COLS.get(c).copied()?);
        let col_h = self.power_at(2.0 * col_f);
        if col_h * l.harmonic > col_power {
            return None;
        }
        // A row tone's 2nd harmonic lies in the high group. When it is within
        // 100 Hz of the digit's own column tone, that tone leaks into the harmonic
        // filter (-11 dB at 58 Hz, worse with frequency deviation), so the check
        // would reject real digits (2, 3, 6, B, C): skip it there.
        if (2.0 * row_f - col_f).abs() > HARMONIC_GUARD_HZ {
            let row_h = self.power_at(2.0 * row_f);
            if row_h * l.harmonic > row_power {
                return None;
            }
        }
        // Frequency deviation: each tone is closer to its nominal frequency than
        // to 4% either side, i.e. off by less than ~2% (Q.24: accept 1.5%,
        // reject 3.5%). Voiced speech lines harmonics up with the DTMF bands
        // only roughly; this is what rejects it when little else is in the block.
        for (f, p) in [(row_f, row_power), (col_f, col_power)] {
            for side in [1.0 - DEVIATION_PROBE, 1.0 + DEVIATION_PROBE] {
                if self.power_at(f * side) > p {
                    return None;
                }
            }
        }
        KEYPAD.get(r).and_then(|row| row.get(c)).copied()
    }

    fn power_at(&self, freq: f32) -> f32 {
        let c = coeff(freq);
        let (mut s1, mut s2) = (0f32, 0f32);
        for &x in &self.block {
            let s0 = f32::from(x) + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        amplitude_sq(s1, s2, c)
    }
}

fn coeff(freq: f32) -> f32 {
    2.0 * (2.0 * std::f32::consts::PI * freq / SAMPLE_RATE as f32).cos()
}

/// Squared amplitude of the sine at the filter's frequency: |X|² ≈ (A·N/2)².
/// Σx², in eight lanes (the compiler keeps a float sum in order, one add at a time,
/// unless told it may reorder: this is most of a quiet block's cost).
fn sum_of_squares(block: &[i16]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = block.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            let x = f32::from(x);
            *lane += x * x;
        }
    }
    let rest: f32 = chunks
        .remainder()
        .iter()
        .map(|&x| f32::from(x) * f32::from(x))
        .sum();
    lanes.iter().sum::<f32>() + rest
}

fn amplitude_sq(s1: f32, s2: f32, coeff: f32) -> f32 {
    let n = BLOCK_SAMPLES as f32;
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 4.0 / (n * n)
}

fn strongest(group: &[f32]) -> Option<(usize, f32)> {
    group
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Test and bench signals: DTMF tones, noise, speech-like and music-like sounds.
#[doc(hidden)]
pub mod signal {
    use super::{COLS, Digit, KEYPAD, ROWS, SAMPLE_RATE};

    /// The (row, column) frequencies of a digit.
    pub fn freqs(d: Digit) -> (f32, f32) {
        for (row, &rf) in KEYPAD.iter().zip(ROWS.iter()) {
            for (k, &cf) in row.iter().zip(COLS.iter()) {
                if *k == d {
                    return (rf, cf);
                }
            }
        }
        (0.0, 0.0)
    }

    /// Adds a sum of sines (frequency Hz, peak amplitude) starting at sample `offset`.
    pub fn add_tones(out: &mut [f32], offset: usize, tones: &[(f32, f32)]) {
        for (i, s) in out.iter_mut().enumerate() {
            let t = (i + offset) as f32 / SAMPLE_RATE as f32;
            for &(f, a) in tones {
                *s += a * (2.0 * std::f32::consts::PI * f * t).sin();
            }
        }
    }

    /// Deterministic xorshift white noise, uniform in ±`amp`.
    pub fn add_noise(out: &mut [f32], seed: u64, amp: f32) {
        let mut x = seed | 1;
        for s in out.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f32 / (1u64 << 53) as f32;
            *s += amp * (2.0 * u - 1.0);
        }
    }

    /// Saturating conversion to PCM.
    pub fn to_pcm(x: &[f32]) -> Vec<i16> {
        x.iter()
            .map(|v| v.clamp(i16::MIN as f32, i16::MAX as f32) as i16)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::signal::*;
    use super::*;
    use crate::dtmf::ALL_DIGITS;

    const MS: usize = 8; // samples per millisecond

    /// Runs the detector over a signal in 20 ms frames and collects the digits.
    fn detect(pcm: &[i16]) -> Vec<Digit> {
        detect_with(GoertzelDetector::default(), pcm)
    }

    fn detect_with(mut det: GoertzelDetector, pcm: &[i16]) -> Vec<Digit> {
        let mut out = Vec::new();
        for frame in pcm.chunks(160) {
            det.handle_samples(frame);
            while let Some(d) = det.poll_digit() {
                out.push(d);
            }
        }
        out
    }

    /// `silence_ms`, then the digit for `tone_ms` at `amp` per tone (column tone
    /// `twist_db` louder than the row tone), then `silence_ms`.
    fn dtmf(d: Digit, amp: f32, twist_db: f32, tone_ms: usize, silence_ms: usize) -> Vec<f32> {
        let (r, c) = freqs(d);
        let mut x = vec![0.0; (tone_ms + 2 * silence_ms) * MS];
        let start = silence_ms * MS;
        let col_amp = amp * 10f32.powf(twist_db / 20.0);
        add_tones(
            &mut x[start..start + tone_ms * MS],
            0,
            &[(r, amp), (c, col_amp)],
        );
        x
    }

    #[test]
    fn all_sixteen_digits_in_white_noise() {
        for (i, &d) in ALL_DIGITS.iter().enumerate() {
            let mut x = dtmf(d, 6000.0, 0.0, 60, 50);
            // ~20 dB SNR against each tone.
            add_noise(&mut x, 0x9E37_79B9 + i as u64, 1000.0);
            assert_eq!(detect(&to_pcm(&x)), vec![d], "digit {}", d.as_char());
        }
    }

    #[test]
    fn a_sequence_of_keys_with_short_pauses() {
        let keys = [
            Digit::One,
            Digit::One,
            Digit::Two,
            Digit::Pound,
            Digit::Star,
            Digit::Star,
        ];
        let mut x = Vec::new();
        for (i, &d) in keys.iter().enumerate() {
            // 45 ms tones, 45 ms pauses (Q.24 asks for 40 and 40).
            let mut t = dtmf(d, 4000.0, 2.0, 45, 22);
            add_noise(&mut t, i as u64 + 7, 300.0);
            x.extend(t);
        }
        assert_eq!(detect(&to_pcm(&x)), keys);
    }

    #[test]
    fn long_press_with_a_drop_out_is_one_digit() {
        let mut x = dtmf(Digit::Five, 5000.0, 0.0, 1000, 50);
        // 10 ms of silence in the middle of the press (a lost packet concealed badly).
        let mid = 500 * MS;
        x[mid..mid + 10 * MS].iter_mut().for_each(|s| *s = 0.0);
        assert_eq!(detect(&to_pcm(&x)), vec![Digit::Five]);
    }

    #[test]
    fn minimum_duration_at_every_alignment() {
        for offset in (0..BLOCK_SAMPLES).step_by(7) {
            let mut det = GoertzelDetector::default();
            det.handle_samples(&vec![0; offset]);
            // 20 ms: too short.
            let short = to_pcm(&dtmf(Digit::Nine, 8000.0, 0.0, 20, 40));
            assert_eq!(
                detect_with(det.clone(), &short),
                vec![],
                "20 ms at {offset}"
            );
            // 40 ms: long enough.
            let ok = to_pcm(&dtmf(Digit::Nine, 8000.0, 0.0, 40, 40));
            assert_eq!(
                detect_with(det, &ok),
                vec![Digit::Nine],
                "40 ms at {offset}"
            );
        }
    }

    #[test]
    fn twist_limits() {
        let found = |twist| !detect(&to_pcm(&dtmf(Digit::Two, 5000.0, twist, 80, 30))).is_empty();
        // Column louder: reverse twist, 4 dB allowed.
        assert!(found(3.0));
        assert!(!found(6.0));
        // Row louder: forward twist, 8 dB allowed.
        assert!(found(-7.0));
        assert!(!found(-10.0));
    }

    /// A detector whose tone-to-total energy check lets everything through, so
    /// the check under test is the only one that can reject.
    fn without_energy_check(tweak: impl Fn(&mut GoertzelConfig)) -> GoertzelDetector {
        let mut config = GoertzelConfig {
            min_tone_energy_ratio: 0.0,
            ..GoertzelConfig::default()
        };
        tweak(&mut config);
        GoertzelDetector::new(config)
    }

    #[test]
    fn relative_peak_rejects_a_third_tone_in_a_group() {
        // `1` (697 + 1209 Hz) with 852 Hz at -3 dB in the low group.
        let mut x = dtmf(Digit::One, 5000.0, 0.0, 100, 30);
        let start = 30 * MS;
        add_tones(
            &mut x[start..start + 100 * MS],
            0,
            &[(852.0, 5000.0 * 0.708)],
        );
        let pcm = to_pcm(&x);
        assert_eq!(detect_with(without_energy_check(|_| {}), &pcm), vec![]);
        let off = without_energy_check(|c| c.relative_peak_db = 0.0);
        assert_eq!(detect_with(off, &pcm), vec![Digit::One]);
    }

    #[test]
    fn second_harmonic_rejects_harmonic_rich_tones() {
        // `9` (852 + 1477 Hz) with the row tone's 2nd harmonic (1704 Hz) at -1 dB:
        // what a voiced sound with its formants on the DTMF tones looks like.
        let mut x = dtmf(Digit::Nine, 5000.0, 0.0, 100, 30);
        let start = 30 * MS;
        add_tones(
            &mut x[start..start + 100 * MS],
            0,
            &[(1704.0, 5000.0 * 0.89)],
        );
        let pcm = to_pcm(&x);
        assert_eq!(detect_with(without_energy_check(|_| {}), &pcm), vec![]);
        let off = without_energy_check(|c| c.second_harmonic_db = -100.0);
        assert_eq!(detect_with(off, &pcm), vec![Digit::Nine]);
        // And the default detector rejects it too (the energy check).
        assert_eq!(detect(&pcm), vec![]);
    }

    #[test]
    fn column_tone_near_the_row_harmonic_is_not_taken_for_it() {
        // `2` (697 + 1336 Hz): 1336 Hz leaks into the 697 Hz 2nd-harmonic filter
        // (1394 Hz). At the full 4 dB reverse twist and 1.5% high it still passes;
        // so do the other digits whose column tone is near the row's harmonic.
        for d in [Digit::Two, Digit::Three, Digit::Six, Digit::B, Digit::C] {
            let (r, c) = freqs(d);
            let mut x = vec![0.0; 160 * MS];
            let tones = [(r * 1.015, 3000.0), (c * 1.015, 3000.0 * 1.57)];
            add_tones(&mut x[30 * MS..130 * MS], 0, &tones);
            add_noise(&mut x, 11, 300.0);
            assert_eq!(detect(&to_pcm(&x)), vec![d], "{}", d.as_char());
        }
    }

    /// Q.24: a tone pair off by up to 1.5% must be accepted, by 3.5% rejected; we
    /// reject from about 2%.
    #[test]
    fn frequency_deviation() {
        let found = |d: Digit, dev: f32| {
            let (r, c) = freqs(d);
            let mut x = vec![0.0; 200 * MS];
            let tones = [(r * (1.0 + dev), 5000.0), (c * (1.0 + dev), 5000.0)];
            add_tones(&mut x[40 * MS..120 * MS], 0, &tones);
            add_noise(&mut x, 5, 300.0);
            detect(&to_pcm(&x)) == vec![d]
        };
        for &d in &ALL_DIGITS {
            for dev in [-0.015, 0.015] {
                assert!(found(d, dev), "{} at {dev}", d.as_char());
            }
            for dev in [-0.035, -0.025, 0.025, 0.035] {
                assert!(!found(d, dev), "{} at {dev}", d.as_char());
            }
        }
    }

    #[test]
    fn too_quiet_is_rejected() {
        // -40 dBm0 per tone.
        let amp = DBM0_AMPLITUDE * 0.01;
        assert!(detect(&to_pcm(&dtmf(Digit::Zero, amp, 0.0, 100, 30))).is_empty());
        // -20 dBm0 is fine.
        let amp = DBM0_AMPLITUDE * 0.1;
        assert_eq!(
            detect(&to_pcm(&dtmf(Digit::Zero, amp, 0.0, 100, 30))),
            vec![Digit::Zero]
        );
    }

    /// Voiced speech: harmonics of a 90-250 Hz fundamental (1 Hz steps) under
    /// three spectral shapes.
    fn vowel(f0: f32, shape: u8) -> Vec<i16> {
        let mut x = vec![0.0; 500 * MS];
        let mut tones = Vec::new();
        let mut h = 1.0;
        while f0 * h < 3800.0 {
            let f = f0 * h;
            let amp = match shape {
                0 => 8000.0 / h,
                1 => 2000.0,
                // Narrow formants on the DTMF bands, 700 and 1250 Hz: adversarial.
                _ => {
                    500.0
                        + 6000.0 * (-(f - 700.0f32).powi(2) / 20_000.0).exp()
                        + 6000.0 * (-(f - 1250.0f32).powi(2) / 20_000.0).exp()
                }
            };
            tones.push((f, amp));
            h += 1.0;
        }
        add_tones(&mut x, 0, &tones);
        add_noise(&mut x, 3, 200.0);
        to_pcm(&x)
    }

    #[test]
    fn speech_like_harmonic_series_is_not_dtmf() {
        let f0s = || (90..250).map(|f| f as f32);
        for shape in [0, 1] {
            for f0 in f0s() {
                assert!(
                    detect(&vowel(f0, shape)).is_empty(),
                    "f0 {f0} shape {shape}"
                );
            }
        }
        // With formants sitting on the DTMF bands, a few fundamentals put one
        // harmonic within 2% of a row tone and another within 2% of a column tone,
        // with little else in the block: that is a DTMF digit, acoustically (the
        // classic talk-off case; Q.24 tolerates some). Keep it to those few.
        let hits: Vec<f32> = f0s()
            .filter(|&f0| !detect(&vowel(f0, 2)).is_empty())
            .collect();
        assert!(hits.len() <= 3, "talk-off at f0 {hits:?}");
    }

    #[test]
    fn single_tones_are_not_dtmf() {
        for f in ROWS.iter().chain(COLS.iter()).chain([440.0, 1000.0].iter()) {
            let mut x = vec![0.0; 500 * MS];
            add_tones(&mut x, 0, &[(*f, 10_000.0)]);
            assert!(detect(&to_pcm(&x)).is_empty(), "{f} Hz");
        }
    }

    #[test]
    fn music_is_not_dtmf() {
        // Chords (A major, C major, a dominant seventh) with three harmonics per note.
        let chords: [&[f32]; 3] = [
            &[440.0, 554.37, 659.25],
            &[523.25, 659.25, 783.99],
            &[392.0, 493.88, 587.33, 698.46],
        ];
        for notes in chords {
            let mut x = vec![0.0; 1000 * MS];
            let mut tones = Vec::new();
            for &n in notes {
                tones.extend([(n, 4000.0), (2.0 * n, 2000.0), (3.0 * n, 1000.0)]);
            }
            add_tones(&mut x, 0, &tones);
            assert!(detect(&to_pcm(&x)).is_empty(), "{notes:?}");
        }
    }

    #[test]
    fn noise_alone_is_not_dtmf() {
        let mut x = vec![0.0; 2000 * MS];
        add_noise(&mut x, 42, 20_000.0);
        assert!(detect(&to_pcm(&x)).is_empty());
    }
}
