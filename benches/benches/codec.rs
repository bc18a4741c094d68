//! Codec encode and decode of one 20 ms frame: G.711 µ-law and A-law (160 samples at
//! 8 kHz), G.722 (320 samples at 16 kHz) and Opus (320 samples at 16 kHz); and the
//! streaming resampler converting one 20 ms frame between the conference rates, and the
//! half-band 2x filters the rooms use for G.711.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dialbridge_media::opus::OPUS_MAX_PACKET;
use dialbridge_media::{
    Codec, Downsampler2, FRAME_SAMPLES, G722Decoder, G722Encoder, OpusDecoder, OpusEncoder,
    OpusRate, Resampler, SampleRate, Tone, Upsampler2,
};

fn codec(c: &mut Criterion) {
    let tone = Tone::sine(1013.0, 20, 12_000);
    let mut pcm = [0i16; FRAME_SAMPLES];
    pcm.copy_from_slice(&tone.samples()[..FRAME_SAMPLES]);
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(FRAME_SAMPLES as u64));
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let name = codec.encoding_name();
        let mut bytes = [0u8; FRAME_SAMPLES];
        group.bench_function(format!("{name}/encode_20ms_frame"), |b| {
            b.iter(|| codec.encode_frame(black_box(&pcm), &mut bytes))
        });
        let mut back = [0i16; FRAME_SAMPLES];
        group.bench_function(format!("{name}/decode_20ms_frame"), |b| {
            b.iter(|| codec.decode_frame(black_box(&bytes), &mut back))
        });
    }
    group.finish();
}

/// A 20 ms frame of a 1013 Hz tone at `rate`, 16 kHz or 48 kHz.
fn wide_frame(rate: SampleRate) -> Vec<i16> {
    let n = rate.frame_samples();
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate.hz());
            (12_000.0 * (2.0 * std::f64::consts::PI * 1013.0 * t).sin()) as i16
        })
        .collect()
}

fn wideband(c: &mut Criterion) {
    let pcm = wide_frame(SampleRate::Hz16000);
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(pcm.len() as u64));

    // G.722 keeps state between frames, as it does on a call.
    let mut encoder = G722Encoder::new();
    let mut bytes = [0u8; 160];
    group.bench_function("G722/encode_20ms_frame", |b| {
        b.iter(|| encoder.encode_frame(black_box(&pcm), &mut bytes))
    });
    let mut decoder = G722Decoder::new();
    let mut back = [0i16; 320];
    group.bench_function("G722/decode_20ms_frame", |b| {
        b.iter(|| decoder.decode_frame(black_box(&bytes), &mut back))
    });

    if let (Ok(mut encoder), Ok(mut decoder)) = (
        OpusEncoder::new(OpusRate::Wideband),
        OpusDecoder::new(OpusRate::Wideband),
    ) {
        let mut packet = [0u8; OPUS_MAX_PACKET];
        let mut len = 0;
        group.bench_function("opus-16k/encode_20ms_frame", |b| {
            b.iter(|| {
                len = encoder
                    .encode_frame(black_box(&pcm), &mut packet)
                    .unwrap_or(0);
            })
        });
        group.bench_function("opus-16k/decode_20ms_frame", |b| {
            b.iter(|| decoder.decode_frame(black_box(&packet[..len]), &mut back))
        });
        group.bench_function("opus-16k/conceal_20ms_frame", |b| {
            b.iter(|| decoder.conceal(black_box(&mut back)))
        });
    }
    group.finish();
}

fn resampler(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample");
    for (from, to) in [
        (SampleRate::Hz8000, SampleRate::Hz16000),
        (SampleRate::Hz16000, SampleRate::Hz8000),
        (SampleRate::Hz16000, SampleRate::Hz48000),
        (SampleRate::Hz48000, SampleRate::Hz16000),
        (SampleRate::Hz8000, SampleRate::Hz48000),
        (SampleRate::Hz48000, SampleRate::Hz8000),
    ] {
        let input = wide_frame(from);
        let mut output = vec![0i16; to.frame_samples()];
        let mut r = Resampler::new(from, to);
        group.throughput(Throughput::Elements(input.len() as u64));
        group.bench_function(
            format!("{}k_to_{}k/20ms_frame", from.hz() / 1000, to.hz() / 1000),
            |b| b.iter(|| r.process(black_box(&input), &mut output)),
        );
    }
    group.finish();
}

/// The 2x half-band filters the rooms use between G.711's 8 kHz and the 16 kHz mix.
fn halfband(c: &mut Criterion) {
    let tone = Tone::sine(1013.0, 20, 12_000);
    let mut narrow = [0i16; FRAME_SAMPLES];
    narrow.copy_from_slice(&tone.samples()[..FRAME_SAMPLES]);
    let mut wide = [0i16; 2 * FRAME_SAMPLES];
    let mut up = Upsampler2::default();
    let mut down = Downsampler2::default();
    up.process(&narrow, &mut wide);
    let mut group = c.benchmark_group("halfband");
    group.bench_function("8k_to_16k/20ms_frame", |b| {
        b.iter(|| up.process(black_box(&narrow), &mut wide))
    });
    let wide_in = wide;
    group.bench_function("16k_to_8k/20ms_frame", |b| {
        b.iter(|| down.process(black_box(&wide_in), &mut narrow))
    });
    group.finish();
}

criterion_group!(benches, codec, wideband, resampler, halfband);
criterion_main!(benches);
