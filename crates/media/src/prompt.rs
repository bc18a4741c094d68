//! Announcements: 16-bit PCM WAV files loaded once, downmixed to mono, resampled to
//! 8 kHz and held as samples, played out 20 ms frame by 20 ms frame.
//!
//! hound reads PCM WAV only, so prompts are kept as 16-bit integer PCM (see
//! scripts/make-prompts.sh, which writes them at 8 kHz so no resampling happens at all).

use std::path::Path;
use std::sync::Arc;

use crate::resample::resample;
use crate::{Error, FRAME_SAMPLES, SAMPLE_RATE};

/// An announcement or tone: mono 8 kHz 16-bit samples.
#[derive(Clone, PartialEq, Eq)]
pub struct Prompt {
    samples: Arc<[i16]>,
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompt")
            .field("samples", &self.samples.len())
            .finish()
    }
}

impl Prompt {
    /// Loads a 16-bit integer PCM WAV: any channel count (averaged to mono), any
    /// sample rate (resampled to 8 kHz with a windowed-sinc low-pass).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let wav_err = |source| Error::Wav {
            path: path.to_path_buf(),
            source,
        };
        let format_err = |reason| Error::WavFormat {
            path: path.to_path_buf(),
            reason,
        };

        let reader = hound::WavReader::open(path).map_err(wav_err)?;
        let spec = reader.spec();
        if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
            return Err(format_err("not 16-bit integer PCM"));
        }
        if spec.channels == 0 {
            return Err(format_err("no channels"));
        }
        if spec.sample_rate == 0 {
            return Err(format_err("sample rate 0"));
        }
        let channels = usize::from(spec.channels);
        let interleaved = reader
            .into_samples::<i16>()
            .collect::<Result<Vec<i16>, _>>()
            .map_err(wav_err)?;
        let mono: Vec<i16> = if channels == 1 {
            interleaved
        } else {
            interleaved
                .chunks_exact(channels)
                .map(|frame| {
                    let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
                    // The mean of i16 values fits in i16.
                    (sum / channels as i32) as i16
                })
                .collect()
        };
        Ok(Self::from_samples(resample(
            &mono,
            spec.sample_rate,
            SAMPLE_RATE,
        )))
    }

    /// A prompt from mono samples already at 8 kHz.
    pub fn from_samples(samples: impl Into<Arc<[i16]>>) -> Self {
        Self {
            samples: samples.into(),
        }
    }

    /// The samples, 8 kHz mono.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Length in samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when the prompt holds no audio.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Duration.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_micros(
            self.samples.len() as u64 * 1_000_000 / u64::from(SAMPLE_RATE),
        )
    }

    /// Number of 20 ms frames, the last one padded with silence.
    pub fn frame_count(&self) -> usize {
        self.samples.len().div_ceil(FRAME_SAMPLES)
    }

    /// The 20 ms frames, by value (320 bytes each, no allocation); the last frame is
    /// padded with silence.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = [i16; FRAME_SAMPLES]> + '_ {
        self.samples.chunks(FRAME_SAMPLES).map(|chunk| {
            let mut frame = [0i16; FRAME_SAMPLES];
            frame[..chunk.len()].copy_from_slice(chunk);
            frame
        })
    }

    /// This prompt followed by `other`.
    pub fn then(&self, other: &Prompt) -> Prompt {
        let mut v = Vec::with_capacity(self.len() + other.len());
        v.extend_from_slice(&self.samples);
        v.extend_from_slice(&other.samples);
        Prompt::from_samples(v)
    }
}

/// A play-out position in a prompt, filled frame by frame by the clocked task.
#[derive(Debug, Clone)]
pub struct Playback {
    prompt: Arc<Prompt>,
    position: usize,
    repeat: bool,
}

impl Playback {
    /// Starts at the beginning of `prompt`; loops when `repeat`.
    pub fn new(prompt: Arc<Prompt>, repeat: bool) -> Self {
        Self {
            prompt,
            position: 0,
            repeat,
        }
    }

    /// Fills `out` with the next samples (silence past the end) and returns false once
    /// the prompt has finished (never, when repeating a non-empty prompt).
    pub fn fill(&mut self, out: &mut [i16]) -> bool {
        let samples = self.prompt.samples();
        let mut written = 0;
        while written < out.len() {
            if self.position >= samples.len() {
                if self.repeat && !samples.is_empty() {
                    self.position = 0;
                } else {
                    out[written..].fill(0);
                    return written > 0;
                }
            }
            let take = (samples.len() - self.position).min(out.len() - written);
            out[written..written + take]
                .copy_from_slice(&samples[self.position..self.position + take]);
            written += take;
            self.position += take;
        }
        true
    }

    /// True once a non-repeating prompt has been played out entirely.
    pub fn finished(&self) -> bool {
        (!self.repeat || self.prompt.is_empty()) && self.position >= self.prompt.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn temp_wav(spec: hound::WavSpec, samples: &[i16]) -> std::path::PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "dialbridge-media-{}-{}.wav",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        path
    }

    fn spec(channels: u16, rate: u32) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        }
    }

    #[test]
    fn loads_8k_mono_unchanged() {
        let samples: Vec<i16> = (0..400).map(|i| (i * 10) as i16).collect();
        let path = temp_wav(spec(1, 8000), &samples);
        let p = Prompt::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(p.samples(), &samples[..]);
        assert_eq!(p.frame_count(), 3);
        assert_eq!(p.duration(), std::time::Duration::from_millis(50));
        let frames: Vec<_> = p.frames().collect();
        assert_eq!(frames[2][..80], samples[320..]);
        assert!(frames[2][80..].iter().all(|&s| s == 0));
    }

    #[test]
    fn downmixes_stereo_and_resamples() {
        // Left = 1 kHz sine, right = silence, at 16 kHz for 1 s.
        let mut interleaved = Vec::new();
        for i in 0..16_000 {
            let s = (20_000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 16_000.0).sin())
                as i16;
            interleaved.extend_from_slice(&[s, 0]);
        }
        let path = temp_wav(spec(2, 16_000), &interleaved);
        let p = Prompt::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(p.len(), 8000);
        let peak = p.samples()[100..7900]
            .iter()
            .map(|&s| i32::from(s).abs())
            .max()
            .unwrap();
        // Half of 20 000, within the resampler's ripple.
        assert!((9_800..=10_200).contains(&peak), "peak {peak}");
    }

    #[test]
    fn rejects_non_16_bit_and_missing_files() {
        let path =
            std::env::temp_dir().join(format!("dialbridge-media-{}-8bit.wav", std::process::id()));
        let mut w = hound::WavWriter::create(
            &path,
            hound::WavSpec {
                channels: 1,
                sample_rate: 8000,
                bits_per_sample: 8,
                sample_format: hound::SampleFormat::Int,
            },
        )
        .unwrap();
        w.write_sample(1i8).unwrap();
        w.finalize().unwrap();
        assert!(matches!(Prompt::load(&path), Err(Error::WavFormat { .. })));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            Prompt::load("/nonexistent/prompt.wav"),
            Err(Error::Wav { .. })
        ));
    }

    #[test]
    fn committed_prompts_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/prompts");
        for name in [
            "welcome",
            "enter-pin",
            "not-found",
            "wrong-pin",
            "goodbye",
            "joined",
            "waiting-for-leader",
            "meeting-full",
            "meeting-locked",
            "muted",
            "unmuted",
            "help",
            "invited",
            "dial-out-calling",
            "dial-out-ringing",
            "dial-out-answered",
            "dial-out-busy",
            "dial-out-no-answer",
            "dial-out-declined",
            "dial-out-failed",
            "dial-out-not-allowed",
            "dial-out-no-funding",
        ] {
            let p = Prompt::load(dir.join(format!("{name}.wav"))).unwrap();
            let secs = p.duration().as_secs_f64();
            assert!((0.3..10.0).contains(&secs), "{name}: {secs} s");
            let peak = p
                .samples()
                .iter()
                .map(|&s| i32::from(s).abs())
                .max()
                .unwrap();
            assert!(peak > 5000, "{name} is (nearly) silent: peak {peak}");
        }
    }

    #[test]
    fn playback_plays_once_then_silence() {
        let p = Arc::new(Prompt::from_samples(vec![7i16; 200]));
        let mut pb = Playback::new(p, false);
        let mut f = [1i16; FRAME_SAMPLES];
        assert!(pb.fill(&mut f));
        assert!(f.iter().all(|&s| s == 7));
        assert!(!pb.finished());
        assert!(pb.fill(&mut f));
        assert!(f[..40].iter().all(|&s| s == 7) && f[40..].iter().all(|&s| s == 0));
        assert!(pb.finished());
        assert!(!pb.fill(&mut f));
        assert!(f.iter().all(|&s| s == 0));
    }

    #[test]
    fn playback_repeats() {
        let p = Arc::new(Prompt::from_samples((0..100).collect::<Vec<i16>>()));
        let mut pb = Playback::new(p, true);
        let mut f = [0i16; FRAME_SAMPLES];
        assert!(pb.fill(&mut f));
        assert_eq!(f[99], 99);
        assert_eq!(f[100], 0);
        assert_eq!(f[159], 59);
        assert!(pb.fill(&mut f));
        assert!(!pb.finished());
        let mut empty = Playback::new(Arc::new(Prompt::from_samples(Vec::new())), true);
        assert!(!empty.fill(&mut f));
        assert!(empty.finished());
    }
}
