//! Conference recording to a WAV file (16-bit mono PCM, via hound), written as it goes
//! so that a crash loses at most the last second.
//!
//! hound writes the RIFF and `data` chunk lengths into the header only when told to
//! (`WavWriter::flush`) or when finalised; a file whose writer died between the two says
//! it holds what it held at the last flush, and readers stop there. So
//! [`ConferenceRecorder`] flushes after every second of audio (configurable, never
//! more): a SIGKILL loses at most that second, and the file stays a valid WAV.
//!
//! File I/O has no place on the mixer's 20 ms tick, so [`RecordingTap`] puts the
//! recorder on its own thread behind a bounded channel of fixed-size frames: the tick
//! calls [`RecordingTap::push`], which copies one frame into the channel and never
//! blocks or allocates; if the disk falls a second behind, frames are dropped and
//! counted rather than stalling the conference.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Error;
use crate::resampler::SampleRate;

/// Limits and pacing of one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderConfig {
    /// The audio rate of the frames (and of the file).
    pub rate: SampleRate,
    /// Longest recording; frames past it are refused. The file size follows:
    /// 2 bytes × rate × duration, plus a 44-byte header (8 kHz: 57.6 MB per hour).
    pub max_duration: Duration,
    /// Audio between two header updates: at most what a crash can lose. Capped at 1 s.
    pub flush_every: Duration,
}

impl RecorderConfig {
    /// Recordings at `rate`, up to four hours, flushed every second.
    pub fn new(rate: SampleRate) -> Self {
        Self {
            rate,
            max_duration: Duration::from_secs(4 * 3600),
            flush_every: Duration::from_secs(1),
        }
    }

    /// The size the file grows to at most, bytes.
    pub fn max_bytes(&self) -> u64 {
        44 + 2 * samples_in(self.rate, self.max_duration)
    }
}

/// What became of a frame handed to the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Written (the whole frame).
    Written,
    /// The maximum duration is reached: the frame was cut short or refused, and every
    /// later one will be.
    LimitReached,
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    /// The file.
    pub path: PathBuf,
    /// Samples written.
    pub samples: u64,
    /// Their duration.
    pub duration: Duration,
    /// Frames dropped because the writer thread fell behind ([`RecordingTap`] only).
    pub dropped_frames: u64,
}

/// A synchronous WAV recorder: frames in, a file that is valid after every flush.
pub struct ConferenceRecorder {
    writer: hound::WavWriter<BufWriter<File>>,
    path: PathBuf,
    config: RecorderConfig,
    samples: u64,
    max_samples: u64,
    flush_samples: u64,
    unflushed: u64,
}

impl ConferenceRecorder {
    /// Creates (or truncates) `path` and writes a header for an empty recording, already
    /// flushed: even a crash before the first second leaves a valid file.
    pub fn create(path: impl AsRef<Path>, config: RecorderConfig) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: config.rate.hz(),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).map_err(|e| wav_error(&path, e))?;
        writer.flush().map_err(|e| wav_error(&path, e))?;
        let flush_every = config.flush_every.min(Duration::from_secs(1));
        Ok(Self {
            writer,
            max_samples: samples_in(config.rate, config.max_duration),
            flush_samples: samples_in(config.rate, flush_every).max(1),
            path,
            config,
            samples: 0,
            unflushed: 0,
        })
    }

    /// Appends one frame of PCM (normally 20 ms at the configured rate; any length
    /// works) and flushes when a second (`flush_every`) has gone by since the last flush.
    pub fn write_frame(&mut self, pcm: &[i16]) -> Result<Recorded, Error> {
        let room = self.max_samples.saturating_sub(self.samples);
        let take = pcm.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        // `take` is at most `pcm.len()`.
        for &s in &pcm[..take] {
            self.writer
                .write_sample(s)
                .map_err(|e| wav_error(&self.path, e))?;
        }
        self.samples += take as u64;
        self.unflushed += take as u64;
        if self.unflushed >= self.flush_samples {
            self.flush()?;
        }
        if take < pcm.len() {
            self.flush()?;
            return Ok(Recorded::LimitReached);
        }
        Ok(Recorded::Written)
    }

    /// Writes the header for what has been recorded so far and pushes it to the OS.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.writer.flush().map_err(|e| wav_error(&self.path, e))?;
        self.unflushed = 0;
        Ok(())
    }

    /// Samples recorded so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Duration recorded so far.
    pub fn duration(&self) -> Duration {
        duration_of(self.config.rate, self.samples)
    }

    /// Finalises the file (header and all) and closes it.
    pub fn finish(self) -> Result<RecordingSummary, Error> {
        let Self {
            writer,
            path,
            config,
            samples,
            ..
        } = self;
        writer.finalize().map_err(|e| wav_error(&path, e))?;
        Ok(RecordingSummary {
            path,
            samples,
            duration: duration_of(config.rate, samples),
            dropped_frames: 0,
        })
    }
}

impl std::fmt::Debug for ConferenceRecorder {
    // hound's writer has no Debug of its own.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConferenceRecorder")
            .field("path", &self.path)
            .field("config", &self.config)
            .field("samples", &self.samples)
            .field("unflushed", &self.unflushed)
            .finish_non_exhaustive()
    }
}

/// Largest frame the tap carries: 20 ms at 48 kHz.
const MAX_FRAME: usize = 960;
/// Frames the channel holds: one second at 20 ms.
const QUEUE_FRAMES: usize = 50;

/// One frame on its way to the writer thread: fixed-size, so sending it allocates
/// nothing.
struct TapFrame {
    len: usize,
    pcm: [i16; MAX_FRAME],
}

/// A [`ConferenceRecorder`] on its own thread, fed from the mixer tick without blocking.
#[derive(Debug)]
pub struct RecordingTap {
    sender: Option<SyncSender<TapFrame>>,
    thread: Option<JoinHandle<Result<RecordingSummary, Error>>>,
    dropped: u64,
}

impl RecordingTap {
    /// Creates the file (errors surface here, on the caller's thread) and starts the
    /// writer thread.
    pub fn start(path: impl AsRef<Path>, config: RecorderConfig) -> Result<Self, Error> {
        let recorder = ConferenceRecorder::create(path, config)?;
        let (sender, receiver) = sync_channel(QUEUE_FRAMES);
        let thread = std::thread::Builder::new()
            .name("recording".into())
            .spawn(move || write_frames(recorder, receiver))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
            dropped: 0,
        })
    }

    /// Hands one mixed frame to the writer thread. Never blocks, never allocates: when
    /// the queue is full (the disk is a second behind) or the recording has stopped
    /// (limit reached, write error), the frame is dropped and counted. Frames longer
    /// than 20 ms at 48 kHz are cut.
    pub fn push(&mut self, pcm: &[i16]) {
        let Some(sender) = &self.sender else {
            self.dropped += 1;
            return;
        };
        let len = pcm.len().min(MAX_FRAME);
        let mut frame = TapFrame {
            len,
            pcm: [0; MAX_FRAME],
        };
        frame.pcm[..len].copy_from_slice(&pcm[..len]);
        match sender.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped += 1,
            Err(TrySendError::Disconnected(_)) => {
                self.dropped += 1;
                self.sender = None;
            }
        }
    }

    /// Frames dropped so far on this side of the channel.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// Stops the writer thread once it has written everything queued, finalises the
    /// file and returns what it holds (or the write error that stopped it).
    pub fn finish(mut self) -> Result<RecordingSummary, Error> {
        self.sender = None;
        let thread = self.thread.take();
        let result = match thread.map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) | None => Err(Error::Io(std::io::Error::other(
                "recording thread panicked",
            ))),
        };
        result.map(|mut summary| {
            summary.dropped_frames = self.dropped;
            summary
        })
    }
}

impl Drop for RecordingTap {
    /// Closing the channel lets the thread finalise the file on its own; it is not
    /// joined, so dropping a tap on the tick never waits for the disk.
    fn drop(&mut self) {
        self.sender = None;
    }
}

fn write_frames(
    mut recorder: ConferenceRecorder,
    frames: Receiver<TapFrame>,
) -> Result<RecordingSummary, Error> {
    while let Ok(frame) = frames.recv() {
        // `len` was clamped to MAX_FRAME when the frame was built.
        let pcm = &frame.pcm[..frame.len.min(MAX_FRAME)];
        if recorder.write_frame(pcm)? == Recorded::LimitReached {
            break;
        }
    }
    recorder.finish()
}

fn samples_in(rate: SampleRate, duration: Duration) -> u64 {
    (u128::from(rate.hz()) * duration.as_millis() / 1000) as u64
}

fn duration_of(rate: SampleRate, samples: u64) -> Duration {
    Duration::from_micros(samples * 1_000_000 / u64::from(rate.hz()))
}

/// hound's I/O errors are host faults; anything else is about the file format.
fn wav_error(path: &Path, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) => Error::Io(io),
        source => Error::Wav {
            path: path.to_path_buf(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("dialbridge-rec-{}-{name}.wav", std::process::id()))
    }

    #[test]
    fn limit_cuts_the_recording() {
        let path = temp("limit");
        let mut config = RecorderConfig::new(SampleRate::Hz8000);
        config.max_duration = Duration::from_millis(50);
        assert_eq!(config.max_bytes(), 44 + 800);
        let mut rec = ConferenceRecorder::create(&path, config).unwrap();
        let frame = [100i16; 160];
        assert_eq!(rec.write_frame(&frame).unwrap(), Recorded::Written);
        assert_eq!(rec.write_frame(&frame).unwrap(), Recorded::Written);
        assert_eq!(rec.write_frame(&frame).unwrap(), Recorded::LimitReached);
        assert_eq!(rec.write_frame(&frame).unwrap(), Recorded::LimitReached);
        let summary = rec.finish().unwrap();
        assert_eq!(summary.samples, 400);
        assert_eq!(summary.duration, Duration::from_millis(50));
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.len(), 400);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 44 + 800);
        std::fs::remove_file(&path).unwrap();
    }

    /// Without finalising, the header on disk tracks the last flush: one second of
    /// audio, then another after the next second.
    #[test]
    fn header_follows_the_flushes() {
        let path = temp("flush");
        let mut rec =
            ConferenceRecorder::create(&path, RecorderConfig::new(SampleRate::Hz16000)).unwrap();
        assert_eq!(hound::WavReader::open(&path).unwrap().len(), 0);
        let frame = [7i16; 320];
        for _ in 0..60 {
            rec.write_frame(&frame).unwrap();
        }
        // 1.2 s written, 1.0 s announced.
        assert_eq!(hound::WavReader::open(&path).unwrap().len(), 16_000);
        for _ in 0..40 {
            rec.write_frame(&frame).unwrap();
        }
        assert_eq!(hound::WavReader::open(&path).unwrap().len(), 32_000);
        assert_eq!(rec.duration(), Duration::from_secs(2));
        drop(rec);
        std::fs::remove_file(&path).unwrap();
    }
}
