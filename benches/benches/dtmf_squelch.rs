//! The DTMF squelch of the room feed, per participant per 20 ms tick: speech-like
//! audio that passes, and a long key press that is silenced.

use std::f32::consts::PI;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dialbridge_media::DtmfSquelch;

/// One second (50 frames) of `f(t)` for t in seconds, as 8 kHz frames.
fn frames(f: impl Fn(f32) -> f32) -> Vec<[i16; 160]> {
    (0..50)
        .map(|n| {
            let mut frame = [0i16; 160];
            for (i, s) in frame.iter_mut().enumerate() {
                *s = f((n * 160 + i) as f32 / 8000.0) as i16;
            }
            frame
        })
        .collect()
}

fn bench(c: &mut Criterion, name: &str, input: Vec<[i16; 160]>) {
    let mut squelch = DtmfSquelch::new();
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut frame = input[i % input.len()];
            i += 1;
            let silenced = squelch.process(black_box(&mut frame));
            black_box((frame, silenced))
        })
    });
}

fn speech(c: &mut Criterion) {
    // A vowel-like harmonic series on 120 Hz, falling off with frequency.
    let vowel = |t: f32| {
        (1..28)
            .map(|h| 4000.0 / h as f32 * (2.0 * PI * 120.0 * h as f32 * t).sin())
            .sum::<f32>()
    };
    bench(c, "dtmf/squelch_20ms_frame_speech", frames(vowel));
}

fn key_press(c: &mut Criterion) {
    let five = |t: f32| 6000.0 * ((2.0 * PI * 770.0 * t).sin() + (2.0 * PI * 1336.0 * t).sin());
    bench(c, "dtmf/squelch_20ms_frame_all_tone", frames(five));
}

criterion_group!(benches, speech, key_press);
criterion_main!(benches);
