//! What the caller sends: silence, a sine, an 8 kHz prompt or a WAV file, played out
//! 20 ms at a time at the sending codec's rate (8, 16 or 48 kHz, mono).
//!
//! A sine is generated at that rate with a running phase, so it has no seam and
//! reaches up to the codec's band edge (a 6 kHz tone through G.722 or Opus). Stored
//! audio is brought to the rate once, when media starts (the one allocation); the
//! per-frame path only copies.

use std::f64::consts::TAU;
use std::path::Path;
use std::sync::Arc;

use dialbridge_media::{Prompt, Resampler, SampleRate};

use crate::Error;

/// What the caller sends.
#[derive(Debug, Clone)]
pub enum Source {
    /// Silence.
    Silence,
    /// A prompt (8 kHz: a [`dialbridge_media::Tone`] or a prompt file), looped for as
    /// long as the call lasts.
    Prompt(Arc<Prompt>),
    /// A steady sine generated at the codec's rate.
    Tone {
        /// Frequency, Hz (below half the codec's rate).
        hz: f64,
        /// Peak amplitude.
        amplitude: i16,
    },
    /// Mono samples at `rate` (a WAV file), looped.
    Pcm {
        /// Their rate.
        rate: SampleRate,
        /// The samples.
        samples: Arc<[i16]>,
    },
}

impl Source {
    /// Loads a 16-bit integer PCM WAV. At 8, 16 or 48 kHz it is kept at its rate
    /// (channels averaged to mono) and converted to the codec's when media starts;
    /// any other rate goes through [`Prompt::load`] (8 kHz).
    pub fn wav(path: &Path) -> Result<Source, Error> {
        let reader = hound::WavReader::open(path)?;
        let spec = reader.spec();
        let rate = match spec.sample_rate {
            8000 => SampleRate::Hz8000,
            16_000 => SampleRate::Hz16000,
            48_000 => SampleRate::Hz48000,
            _ => return Ok(Source::Prompt(Arc::new(Prompt::load(path)?))),
        };
        if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
            return Err(Error::invalid("WAV", "not 16-bit integer PCM"));
        }
        let channels = usize::from(spec.channels.max(1));
        let interleaved = reader
            .into_samples::<i16>()
            .collect::<Result<Vec<i16>, _>>()?;
        let mono: Vec<i16> = interleaved
            .chunks_exact(channels)
            .map(|frame| {
                let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
                // The mean of i16 values fits in i16.
                (sum / channels as i32) as i16
            })
            .collect();
        Ok(Source::Pcm {
            rate,
            samples: mono.into(),
        })
    }
}

/// Plays a [`Source`] out at one rate, frame by frame.
#[derive(Debug, Clone)]
pub struct Player {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Silence,
    Sine {
        /// Phase step per sample, radians.
        step: f64,
        phase: f64,
        amplitude: f64,
    },
    Loop {
        samples: Arc<[i16]>,
        position: usize,
    },
}

impl Player {
    /// Starts `source` at `rate` (stored audio at another rate is converted now).
    pub fn new(source: &Source, rate: SampleRate) -> Player {
        let kind = match source {
            Source::Silence => Kind::Silence,
            Source::Tone { hz, amplitude } => Kind::Sine {
                step: TAU * hz / f64::from(rate.hz()),
                phase: 0.0,
                amplitude: f64::from(*amplitude),
            },
            Source::Prompt(p) => Kind::Loop {
                samples: convert(p.samples(), SampleRate::Hz8000, rate),
                position: 0,
            },
            Source::Pcm {
                rate: from,
                samples,
            } => Kind::Loop {
                samples: if *from == rate {
                    samples.clone()
                } else {
                    convert(samples, *from, rate)
                },
                position: 0,
            },
        };
        Player { kind }
    }

    /// Fills `out` with the next samples. Allocation-free.
    pub fn fill(&mut self, out: &mut [i16]) {
        match &mut self.kind {
            Kind::Silence => out.fill(0),
            Kind::Sine {
                step,
                phase,
                amplitude,
            } => {
                for s in out.iter_mut() {
                    *s = (*amplitude * phase.sin()).round() as i16;
                    *phase = (*phase + *step) % TAU;
                }
            }
            Kind::Loop { samples, position } => {
                if samples.is_empty() {
                    out.fill(0);
                    return;
                }
                for s in out.iter_mut() {
                    if *position >= samples.len() {
                        *position = 0;
                    }
                    *s = samples.get(*position).copied().unwrap_or_default();
                    *position += 1;
                }
            }
        }
    }
}

/// `samples` at `from` converted to `to`, with the converter's start-up delay cut so a
/// loop stays in step.
fn convert(samples: &[i16], from: SampleRate, to: SampleRate) -> Arc<[i16]> {
    if from == to {
        return samples.into();
    }
    let mut resampler = Resampler::new(from, to);
    let delay = resampler.delay();
    let (from_hz, to_hz) = (from.hz() as usize, to.hz() as usize);
    let expected = samples.len() * to_hz / from_hz;
    // Silence after the audio flushes the filter so its end comes out too.
    let pad = vec![0i16; (delay * from_hz).div_ceil(to_hz) + 1];
    let mut out = vec![0i16; resampler.max_output(samples.len() + pad.len())];
    let n = resampler.process(samples, &mut out);
    let m = resampler.process(&pad, out.get_mut(n..).unwrap_or_default());
    out.truncate(n + m);
    out.get(delay..)
        .unwrap_or_default()
        .iter()
        .take(expected)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio_check::analyse_at;
    use dialbridge_media::Tone;

    fn play(source: &Source, rate: SampleRate, frames: usize) -> Vec<i16> {
        let mut player = Player::new(source, rate);
        let mut frame = vec![0i16; rate.frame_samples()];
        let mut out = Vec::new();
        for _ in 0..frames {
            player.fill(&mut frame);
            out.extend_from_slice(&frame);
        }
        out
    }

    #[test]
    fn a_sine_is_generated_at_each_rate() {
        let tone = Source::Tone {
            hz: 6000.0,
            amplitude: 8000,
        };
        for rate in [SampleRate::Hz16000, SampleRate::Hz48000] {
            let heard = play(&tone, rate, 50);
            assert_eq!(heard.len(), rate.hz() as usize);
            let a = analyse_at(&heard, rate.hz(), Some(6000.0));
            assert_eq!((a.tone_blocks, a.blocks), (10, 10), "{rate:?}");
            let peak = heard.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!((7900..=8000).contains(&peak), "{peak}");
        }
        assert!(
            play(&Source::Silence, SampleRate::Hz48000, 3)
                .iter()
                .all(|&s| s == 0)
        );
    }

    #[test]
    fn an_8khz_prompt_is_converted_and_looped() {
        let prompt = Source::Prompt(Arc::new(Tone::sine(440.0, 1000, 8000)));
        let heard = play(&prompt, SampleRate::Hz48000, 100);
        assert_eq!(heard.len(), 96_000);
        let a = analyse_at(&heard, 48_000, Some(440.0));
        assert!(a.tone_blocks >= 18, "{a:?}");
        // The same prompt at 8 kHz is played as it is.
        let Source::Prompt(p) = &prompt else {
            unreachable!()
        };
        let heard = play(&prompt, SampleRate::Hz8000, 100);
        assert!(&heard[..8000] == p.samples() && &heard[8000..] == p.samples());
    }

    #[test]
    fn wav_files_keep_their_wideband_rate() {
        let path = std::env::temp_dir().join(format!("sbc-sim-source-{}.wav", std::process::id()));
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..16_000 {
            let s = (8000.0 * (TAU * 6000.0 * f64::from(i) / 16_000.0).sin()) as i16;
            w.write_sample(s).unwrap();
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let source = Source::wav(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let Source::Pcm { rate, samples } = &source else {
            panic!("{source:?}")
        };
        assert_eq!((*rate, samples.len()), (SampleRate::Hz16000, 16_000));
        let heard = play(&source, SampleRate::Hz48000, 50);
        let a = analyse_at(&heard, 48_000, Some(6000.0));
        assert!(a.tone_blocks >= 9, "{a:?}");
    }
}
