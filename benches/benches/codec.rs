//! G.711 µ-law and A-law encode and decode of one 20 ms frame (160 samples).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dialbridge_media::{Codec, FRAME_SAMPLES, Tone};

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

criterion_group!(benches, codec);
criterion_main!(benches);
