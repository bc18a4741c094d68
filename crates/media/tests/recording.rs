//! Conference recording survives a crash: a child process records, is SIGKILLed in the
//! middle of a second, and the file it leaves is a valid WAV holding all but at most
//! the last second, sample for sample.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dialbridge_media::{ConferenceRecorder, RecorderConfig, RecordingTap, SampleRate};

/// Set in the child: the file to record into.
const CHILD_ENV: &str = "DIALBRIDGE_RECORDING_CHILD";
/// Frames the child writes before it reports and waits to be killed: 3.5 s at 20 ms,
/// so the kill lands half a second after the last flush.
const CHILD_FRAMES: usize = 175;

/// The recognisable content of frame `f`, sample `i`.
fn sample(f: usize, i: usize) -> i16 {
    ((f * 320 + i) % 20_000) as i16 - 10_000
}

fn frame(f: usize) -> [i16; 320] {
    std::array::from_fn(|i| sample(f, i))
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "dialbridge-recording-test-{}-{name}.wav",
        std::process::id()
    ))
}

#[test]
fn sigkill_loses_at_most_one_second() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    let path = temp("crash");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["sigkill_loses_at_most_one_second", "--exact", "--nocapture"])
        .env(CHILD_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let written: usize = loop {
        let line = lines.next().expect("child exited early").unwrap();
        if let Some(n) = line.strip_prefix("FRAMES_WRITTEN=") {
            break n.parse().unwrap();
        }
    };
    assert_eq!(written, CHILD_FRAMES);
    child.kill().unwrap(); // SIGKILL: no destructor, no finalize
    child.wait().unwrap();

    let mut reader = hound::WavReader::open(&path).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (16_000, 1, 16)
    );
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let recorded = written * 320;
    assert!(samples.len() <= recorded);
    assert!(
        recorded - samples.len() <= 16_000,
        "lost {} samples of {recorded}",
        recorded - samples.len()
    );
    for (n, &s) in samples.iter().enumerate() {
        assert_eq!(s, sample(n / 320, n % 320), "sample {n}");
    }
    std::fs::remove_file(&path).unwrap();
}

/// The child: record, say how much, then block until killed (no sleep: it waits on its
/// stdin, which the parent never writes to).
fn child(path: &Path) {
    let mut recorder =
        ConferenceRecorder::create(path, RecorderConfig::new(SampleRate::Hz16000)).unwrap();
    for f in 0..CHILD_FRAMES {
        recorder.write_frame(&frame(f)).unwrap();
    }
    println!("FRAMES_WRITTEN={CHILD_FRAMES}");
    let mut byte = [0u8; 1];
    let _ = std::io::stdin().read(&mut byte);
    // Only reached if the parent died: leave the file as a crash would.
    std::process::abort();
}

#[test]
fn tap_writes_every_frame_off_thread() {
    let path = temp("tap");
    let mut tap = RecordingTap::start(&path, RecorderConfig::new(SampleRate::Hz16000)).unwrap();
    // 49 frames fit in the queue even if the writer thread has not started yet.
    for f in 0..49 {
        tap.push(&frame(f));
    }
    let summary = tap.finish().unwrap();
    assert_eq!(summary.dropped_frames, 0);
    assert_eq!(summary.samples, 49 * 320);
    assert_eq!(summary.duration, Duration::from_millis(980));
    let reader = hound::WavReader::open(&path).unwrap();
    let samples: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
    assert_eq!(samples.len(), 49 * 320);
    assert_eq!(samples[320 * 48 + 5], sample(48, 5));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn tap_stops_at_the_limit() {
    let path = temp("tap-limit");
    let mut config = RecorderConfig::new(SampleRate::Hz8000);
    config.max_duration = Duration::from_millis(100);
    let mut tap = RecordingTap::start(&path, config).unwrap();
    for f in 0..20 {
        tap.push(&frame(f)[..160]);
    }
    let summary = tap.finish().unwrap();
    assert_eq!(summary.samples, 800);
    assert_eq!(hound::WavReader::open(&path).unwrap().len(), 800);
    std::fs::remove_file(&path).unwrap();
}
