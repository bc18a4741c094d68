//! Checks on what the caller heard: a tone at a frequency (Goertzel), silence, or
//! audible audio (a prompt).
//!
//! The recording (8 kHz for G.711, 16 kHz for G.722 and Opus) is cut into 100 ms
//! blocks. A block holds the tone when the Goertzel
//! power at the target is ten times (10 dB) the power at either neighbour 150 Hz away,
//! the tone's own amplitude reaches the silence floor and so does the block's; a wideband sound (speech, noise) has
//! comparable power at all three and does not count. A tone is heard when it lasts
//! [`MIN_BLOCKS`] blocks in a row: the demo prompts are made of short notes, which
//! must not pass for another caller's steady tone. Pure functions, no I/O.

use serde::Serialize;

/// Samples per analysis block at 8 kHz: 100 ms (10 Hz bins; at other rates a block
/// is 100 ms too).
pub const BLOCK: usize = 800;
/// RMS below which a block is silence (about -44 dBFS; G.711 silence decodes to 0 or 8).
pub const SILENCE_RMS: f64 = 200.0;
/// How far the neighbour frequencies are from the target, Hz.
pub const NEIGHBOUR_HZ: f64 = 150.0;
/// How many times stronger the target must be than each neighbour (10 dB).
pub const DOMINANCE: f64 = 10.0;
/// Blocks needed for `--expect-tone` and `--expect-audio` (500 ms).
pub const MIN_BLOCKS: usize = 5;

/// The Goertzel power of `samples` at `freq` Hz for a sample `rate` (the squared
/// magnitude of the DFT term nearest `freq`, unnormalised).
pub fn goertzel_power(samples: &[i16], freq: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Root mean square of `samples` (0 for none).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// What the analysis of one recording found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Analysis {
    /// 100 ms blocks analysed.
    pub blocks: usize,
    /// Blocks above the silence floor.
    pub audible_blocks: usize,
    /// Blocks where the target tone dominates (0 without a target).
    pub tone_blocks: usize,
    /// The longest run of consecutive tone blocks.
    pub tone_run: usize,
    /// Loudest block RMS.
    pub peak_rms: f64,
}

/// Analyses `heard` (8 kHz), looking for `tone_hz` when given.
pub fn analyse(heard: &[i16], tone_hz: Option<f64>) -> Analysis {
    analyse_at(heard, dialbridge_media::SAMPLE_RATE, tone_hz)
}

/// Analyses `heard`, sampled at `rate` Hz, looking for `tone_hz` when given.
pub fn analyse_at(heard: &[i16], rate: u32, tone_hz: Option<f64>) -> Analysis {
    let block_len = (rate / 10).max(1) as usize;
    let mut a = Analysis {
        blocks: 0,
        audible_blocks: 0,
        tone_blocks: 0,
        tone_run: 0,
        peak_rms: 0.0,
    };
    let mut run = 0;
    for block in heard.chunks_exact(block_len) {
        a.blocks += 1;
        let level = rms(block);
        a.peak_rms = a.peak_rms.max(level);
        if level < SILENCE_RMS {
            run = 0;
            continue;
        }
        a.audible_blocks += 1;
        match tone_hz {
            Some(f) if has_tone_at(block, f, rate) => {
                a.tone_blocks += 1;
                run += 1;
                a.tone_run = a.tone_run.max(run);
            }
            _ => run = 0,
        }
    }
    a
}

/// Whether a block (8 kHz) is dominated by `freq` compared with its neighbours.
pub fn has_tone(block: &[i16], freq: f64) -> bool {
    has_tone_at(block, freq, dialbridge_media::SAMPLE_RATE)
}

/// Whether a block sampled at `rate` Hz is dominated by `freq` compared with its
/// neighbours.
pub fn has_tone_at(block: &[i16], freq: f64, rate: u32) -> bool {
    let rate = f64::from(rate);
    let target = goertzel_power(block, freq, rate);
    let below = goertzel_power(block, (freq - NEIGHBOUR_HZ).max(10.0), rate);
    let above = goertzel_power(block, freq + NEIGHBOUR_HZ, rate);
    // A sine of peak A gives (A·N/2)²: the tone alone must reach the silence floor, or
    // a trace of it under other audio (codec noise) would pass for it.
    let floor = (SILENCE_RMS * block.len() as f64 / 2.0).powi(2);
    target > DOMINANCE * below.max(above) && target > floor
}

/// Most 100 ms blocks [`strongest_tone`] looks at (30 s): the scan costs about a
/// hundred Goertzel passes per block.
pub const MAX_SCANNED_BLOCKS: usize = 300;
/// Coarse and fine steps of the scan, Hz.
const COARSE_STEP: f64 = 50.0;
const FINE_STEP: f64 = 10.0;
/// Frequencies [`strongest_tone`] weighs against each other.
const MAX_CANDIDATES: usize = 5;

/// A steady tone found in a recording, and how loud.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ToneFound {
    /// Its frequency, Hz (to the 10 Hz of a 100 ms block).
    pub hz: f64,
    /// The longest run of blocks it dominated.
    pub run: usize,
    /// The blocks it dominated.
    pub blocks: usize,
    /// Its level: the mean RMS of those blocks, in dB below full scale.
    pub dbfs: f64,
}

/// The steadiest tone in `heard` (sampled at `rate` Hz), if one lasts 200 ms or more:
/// each audible block's strongest frequency, found on a 50 Hz grid then refined to
/// 10 Hz, is a candidate when it dominates its neighbours as [`has_tone_at`] asks; the
/// candidate with the longest run wins. Looks at the first [`MAX_SCANNED_BLOCKS`]
/// blocks.
pub fn strongest_tone(heard: &[i16], rate: u32) -> Option<ToneFound> {
    let block_len = (rate / 10).max(1) as usize;
    let top = f64::from(rate) / 2.0 - 2.0 * NEIGHBOUR_HZ;
    let mut votes: std::collections::BTreeMap<u32, usize> = std::collections::BTreeMap::new();
    for block in heard.chunks_exact(block_len).take(MAX_SCANNED_BLOCKS) {
        if rms(block) < SILENCE_RMS {
            continue;
        }
        let strongest = |samples: &[i16], from: f64, to: f64, step: f64| {
            let steps = ((to - from) / step).max(0.0) as u32;
            (0..=steps)
                .map(|i| from + f64::from(i) * step)
                .map(|hz| (hz, goertzel_power(samples, hz, f64::from(rate))))
                .fold(
                    (from, f64::MIN),
                    |best, p| if p.1 > best.1 { p } else { best },
                )
                .0
        };
        // The coarse pass looks at 20 ms, whose 50 Hz resolution matches its steps: over
        // the whole block a tone between two steps would leave both (exact bins) empty.
        let head = block.get(..block_len / 5).unwrap_or(block);
        let coarse = strongest(head, 100.0, top, COARSE_STEP);
        let fine = strongest(
            block,
            (coarse - COARSE_STEP).max(100.0),
            (coarse + COARSE_STEP).min(top),
            FINE_STEP,
        );
        if has_tone_at(block, fine, rate) {
            *votes.entry(fine.round() as u32).or_default() += 1;
        }
    }
    // The five most voted frequencies; the steadiest of them (longest run, then most
    // blocks, then the lower) wins. A single block is chance (noise can beat its
    // neighbours for 100 ms), not a tone.
    let mut candidates: Vec<(u32, usize)> = votes.into_iter().collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    candidates
        .into_iter()
        .take(MAX_CANDIDATES)
        .filter_map(|(hz, _)| tone_level(heard, rate, f64::from(hz)))
        .filter(|t| t.run >= 2)
        .fold(None, |best: Option<ToneFound>, t| match best {
            Some(b) if (b.run, b.blocks) >= (t.run, t.blocks) => Some(b),
            _ => Some(t),
        })
}

/// How `hz` stands in `heard`: its longest run, its blocks and their mean level.
/// `None` when it dominates no block.
pub fn tone_level(heard: &[i16], rate: u32, hz: f64) -> Option<ToneFound> {
    let block_len = (rate / 10).max(1) as usize;
    let (mut run, mut longest, mut blocks, mut level) = (0, 0, 0, 0.0);
    for block in heard.chunks_exact(block_len) {
        let level_here = rms(block);
        if level_here >= SILENCE_RMS && has_tone_at(block, hz, rate) {
            run += 1;
            longest = usize::max(longest, run);
            blocks += 1;
            level += level_here;
        } else {
            run = 0;
        }
    }
    (blocks > 0).then(|| ToneFound {
        hz,
        run: longest,
        blocks,
        dbfs: dbfs(level / blocks as f64),
    })
}

/// An RMS on the 16-bit scale in dB below full scale (a full-scale square wave is 0).
pub fn dbfs(rms: f64) -> f64 {
    20.0 * (rms.max(1.0) / 32768.0).log10()
}

/// An expectation about the audio heard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expectation {
    /// A tone at this frequency for at least [`MIN_BLOCKS`] blocks in a row.
    Tone(f64),
    /// No block above the silence floor.
    Silence,
    /// At least [`MIN_BLOCKS`] audible blocks.
    Audio,
}

impl Expectation {
    /// `Ok` when met, else why not.
    pub fn check(self, a: &Analysis) -> Result<(), String> {
        match self {
            Expectation::Tone(_) if a.tone_run >= MIN_BLOCKS => Ok(()),
            Expectation::Tone(f) => Err(format!(
                "expected a {f} Hz tone: longest run {} blocks (need {MIN_BLOCKS} in a row), \
                 {} of {} blocks; {} audible",
                a.tone_run, a.tone_blocks, a.blocks, a.audible_blocks
            )),
            Expectation::Silence if a.audible_blocks == 0 => Ok(()),
            Expectation::Silence => Err(format!(
                "expected silence: {} of {} blocks audible (peak RMS {:.0})",
                a.audible_blocks, a.blocks, a.peak_rms
            )),
            Expectation::Audio if a.audible_blocks >= MIN_BLOCKS => Ok(()),
            Expectation::Audio => Err(format!(
                "expected audio: {} of {} blocks audible (need {MIN_BLOCKS}, peak RMS {:.0})",
                a.audible_blocks, a.blocks, a.peak_rms
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, ms: u32, amplitude: f64) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * f64::from(i) / 8000.0).sin())
                    as i16
            })
            .collect()
    }

    /// A deterministic wideband signal (a linear congruential generator).
    fn noise(ms: u32, amplitude: i32) -> Vec<i16> {
        let mut x: u32 = 12345;
        (0..ms * 8)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((x >> 16) as i32 % (2 * amplitude) - amplitude) as i16
            })
            .collect()
    }

    #[test]
    fn goertzel_finds_the_tone_and_not_its_neighbours() {
        let s = sine(1000.0, 100, 8000.0);
        let at = goertzel_power(&s, 1000.0, 8000.0);
        let off = goertzel_power(&s, 1150.0, 8000.0);
        assert!(at > 1000.0 * off, "{at} vs {off}");
        // A pure sine at the bin: |X| = A*N/2.
        let expect = (8000.0 * 800.0 / 2.0f64).powi(2);
        assert!((at / expect - 1.0).abs() < 0.01, "{at} vs {expect}");
    }

    #[test]
    fn tone_check_passes_on_the_right_tone_only() {
        let heard: Vec<i16> = [sine(1000.0, 1000, 6000.0), vec![0; 4000]].concat();
        let a = analyse(&heard, Some(1000.0));
        assert_eq!(a.blocks, 15);
        assert_eq!(a.tone_blocks, 10);
        assert!(Expectation::Tone(1000.0).check(&a).is_ok());
        let a = analyse(&heard, Some(440.0));
        assert_eq!(a.tone_blocks, 0);
        assert!(Expectation::Tone(440.0).check(&a).is_err());
        // The tone survives G.711 µ-law.
        let codec = dialbridge_media::Codec::Pcmu;
        let round: Vec<i16> = heard
            .iter()
            .map(|s| codec.decode(codec.encode(*s)))
            .collect();
        assert_eq!(analyse(&round, Some(1000.0)).tone_blocks, 10);
    }

    #[test]
    fn short_notes_are_not_a_steady_tone() {
        // Eight 200 ms notes of the target separated by 100 ms of silence, like a prompt.
        let note = [sine(1000.0, 200, 6000.0), vec![0; 800]].concat();
        let heard = note.repeat(8);
        let a = analyse(&heard, Some(1000.0));
        assert_eq!((a.tone_blocks, a.tone_run), (16, 2));
        assert!(Expectation::Tone(1000.0).check(&a).is_err());
        let steady = sine(1000.0, 500, 6000.0);
        assert_eq!(analyse(&steady, Some(1000.0)).tone_run, MIN_BLOCKS);
        assert!(
            Expectation::Tone(1000.0)
                .check(&analyse(&steady, Some(1000.0)))
                .is_ok()
        );
    }

    #[test]
    fn a_trace_of_the_tone_under_loud_audio_is_no_tone() {
        // A 1000 Hz tone at amplitude 50 (-56 dBFS) under a loud 440 Hz one: the block
        // is audible and 1000 Hz beats its neighbours, but nobody would hear it.
        let faint: Vec<i16> = sine(440.0, 1000, 6000.0)
            .iter()
            .zip(sine(1000.0, 1000, 50.0))
            .map(|(a, b)| a + b)
            .collect();
        assert_eq!(analyse(&faint, Some(1000.0)).tone_blocks, 0);
        assert_eq!(analyse(&faint, Some(440.0)).tone_blocks, 10);
        let heard: Vec<i16> = sine(440.0, 1000, 6000.0)
            .iter()
            .zip(sine(1000.0, 1000, 400.0))
            .map(|(a, b)| a + b)
            .collect();
        assert_eq!(
            analyse(&heard, Some(1000.0)).tone_blocks,
            10,
            "-38 dBFS counts"
        );
    }

    #[test]
    fn noise_is_audio_but_no_tone() {
        let a = analyse(&noise(1000, 4000), Some(1000.0));
        assert_eq!(a.audible_blocks, 10);
        assert_eq!(a.tone_blocks, 0);
        assert!(Expectation::Audio.check(&a).is_ok());
        assert!(Expectation::Silence.check(&a).is_err());
        assert!(Expectation::Tone(1000.0).check(&a).is_err());
    }

    #[test]
    fn wideband_recordings_are_cut_in_100ms_blocks() {
        let sine16 = |freq: f64, ms: u32| -> Vec<i16> {
            (0..ms * 16)
                .map(|i| {
                    (6000.0 * (2.0 * std::f64::consts::PI * freq * f64::from(i) / 16_000.0).sin())
                        as i16
                })
                .collect()
        };
        // 6 kHz: above what an 8 kHz recording can hold.
        let heard = [sine16(6000.0, 1000), vec![0; 8000]].concat();
        let a = analyse_at(&heard, 16_000, Some(6000.0));
        assert_eq!((a.blocks, a.tone_blocks, a.tone_run), (15, 10, 10));
        assert!(Expectation::Tone(6000.0).check(&a).is_ok());
        assert_eq!(analyse_at(&heard, 16_000, Some(1000.0)).tone_blocks, 0);
        let a = analyse_at(&sine16(440.0, 600), 16_000, Some(440.0));
        assert_eq!((a.blocks, a.tone_run), (6, 6));
        assert_eq!(analyse(&heard, None).blocks, 30, "8 kHz blocks of 800");
    }

    #[test]
    fn the_strongest_tone_is_found_with_its_level() {
        // 440 Hz for 0.6 s, then 1000 Hz for 1.5 s: 1000 Hz dominates the most blocks.
        let heard = [
            sine(440.0, 600, 6000.0),
            vec![0; 800],
            sine(1000.0, 1500, 8000.0),
            noise(500, 3000),
        ]
        .concat();
        let found = strongest_tone(&heard, 8000).unwrap();
        assert_eq!((found.hz, found.run, found.blocks), (1000.0, 15, 15));
        // A sine of peak 8000 has an RMS of 8000/sqrt(2): -15.3 dBFS.
        assert!((found.dbfs + 15.3).abs() < 0.1, "{found:?}");
        let other = tone_level(&heard, 8000, 440.0).unwrap();
        assert_eq!((other.run, other.blocks), (6, 6));
        assert_eq!(tone_level(&heard, 8000, 2000.0), None);
        // A frequency off the 10 Hz grid lands on its nearest step.
        let found = strongest_tone(&sine(697.0, 1000, 6000.0), 8000).unwrap();
        assert!(
            (found.hz - 697.0).abs() <= 5.0 && found.run >= 8,
            "{found:?}"
        );
        assert_eq!(strongest_tone(&noise(1000, 4000), 8000), None);
        assert_eq!(strongest_tone(&vec![0; 8000], 8000), None);
    }

    #[test]
    fn silence_and_too_little_audio() {
        let a = analyse(&vec![8i16; 8000], None);
        assert!(Expectation::Silence.check(&a).is_ok());
        assert!(Expectation::Audio.check(&a).is_err());
        let short: Vec<i16> = [noise(300, 4000), vec![0; 8000]].concat();
        assert!(Expectation::Audio.check(&analyse(&short, None)).is_err());
        assert_eq!(analyse(&[], Some(1000.0)).blocks, 0);
    }
}
