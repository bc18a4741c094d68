//! DTMF hot paths: in-band Goertzel detection per 20 ms frame and RFC 4733
//! telephone-event decoding per packet.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dialbridge_conference::Digit;
use dialbridge_conference::dtmf::{
    GoertzelDetector, TelephoneEventDecoder, encode_telephone_event, signal,
};

/// One second of audio: a `5` key press (80 ms) in noise, then noise.
fn audio() -> Vec<i16> {
    let mut x = vec![0.0f32; 8000];
    let (r, c) = signal::freqs(Digit::Five);
    signal::add_tones(&mut x[800..1440], 0, &[(r, 6000.0), (c, 6000.0)]);
    signal::add_noise(&mut x, 7, 500.0);
    signal::to_pcm(&x)
}

fn goertzel(c: &mut Criterion) {
    let pcm = audio();
    let frames: Vec<&[i16]> = pcm.chunks(160).collect();
    let mut det = GoertzelDetector::default();
    let mut i = 0;
    c.bench_function("dtmf/goertzel_20ms_frame", |b| {
        b.iter(|| {
            let frame = frames[i % frames.len()];
            i += 1;
            det.handle_samples(black_box(frame));
            black_box(det.poll_digit())
        })
    });
}

/// The worst case: a long press, every block a DTMF candidate paying for every check.
fn goertzel_tone(c: &mut Criterion) {
    let mut x = vec![0.0f32; 8000];
    let (r, col) = signal::freqs(Digit::Pound);
    signal::add_tones(&mut x, 0, &[(r, 6000.0), (col, 6000.0)]);
    let pcm = signal::to_pcm(&x);
    let frames: Vec<&[i16]> = pcm.chunks(160).collect();
    let mut det = GoertzelDetector::default();
    let mut i = 0;
    c.bench_function("dtmf/goertzel_20ms_frame_all_tone", |b| {
        b.iter(|| {
            let frame = frames[i % frames.len()];
            i += 1;
            det.handle_samples(black_box(frame));
            black_box(det.poll_digit())
        })
    });
}

fn rfc4733(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut dec = TelephoneEventDecoder::default();
    let mut seq: u16 = 0;
    c.bench_function("dtmf/rfc4733_packet", |b| {
        b.iter(|| {
            // A press every 10 packets: start, 6 updates, 3 end packets.
            let n = u32::from(seq);
            let ts = (n / 10) * 1600;
            let phase = n % 10;
            let payload = encode_telephone_event(5, phase >= 7, 10, (phase * 160) as u16);
            let now = t0 + Duration::from_millis(u64::from(n) * 20);
            let r = dec.handle_packet(black_box(&payload), ts, seq, phase == 0, now);
            seq = seq.wrapping_add(1);
            black_box(r)
        })
    });
}

criterion_group!(benches, goertzel, goertzel_tone, rfc4733);
criterion_main!(benches);
