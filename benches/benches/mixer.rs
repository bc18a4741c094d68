//! Mixer cost per 20 ms tick in rooms of 10, 100 and 1,000 participants: the room
//! mixer (K = 3 loudest talkers, one shared frame for everyone else) and, for
//! comparison, the plain N-1 kernel where every participant gets a personal frame.
//! Throughput is per participant, so criterion reports the cost per participant.
//! `pipeline_tick` adds what the engine's clock does around the mixer (jitter buffer
//! push and pop, G.711 decode, the 16 kHz shared mix decimated and encoded once,
//! talkers' frames decimated and encoded each) — everything per tick except the
//! socket calls. The participants are G.711 (8 kHz) in the 16 kHz mix: the mixer
//! upsamples only the talkers it mixes.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dialbridge_media::jitter::{JitterBuffer, JitterConfig, Playout};
use dialbridge_media::mixer::{DEFAULT_MAX_TALKERS, Frame, Heard, Mixer, mix_minus};
use dialbridge_media::{Codec, Downsampler2, FRAME_SAMPLES, Tone};

const ROOMS: [usize; 3] = [10, 100, 1000];

/// Distinct frames: a few talkers at speech level, the rest low background noise.
fn frames(n: usize) -> Vec<Frame> {
    let voice = Tone::sine(311.0, 20, 8000);
    let mut seed = 0x2545_f491_u32;
    (0..n)
        .map(|i| {
            let mut f = [0i16; FRAME_SAMPLES];
            for (s, v) in f.iter_mut().zip(voice.samples()) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let noise = (seed % 64) as i16 - 32;
                *s = if i % 25 == 0 {
                    v / (1 + (i / 25) as i16 % 4) + noise
                } else {
                    noise
                };
            }
            f
        })
        .collect()
}

fn room(c: &mut Criterion) {
    let mut group = c.benchmark_group("mixer/room_k3_tick");
    for n in ROOMS {
        let inputs = frames(n);
        let mut mixer = Mixer::new(n, DEFAULT_MAX_TALKERS);
        let slots: Vec<_> = (0..n).filter_map(|_| mixer.join()).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                for (slot, frame) in slots.iter().zip(&inputs) {
                    mixer.push_narrow(*slot, frame);
                }
                mixer.mix();
                let mut check = 0i32;
                for slot in &slots {
                    if let Some(heard) = mixer.output(*slot) {
                        check = check.wrapping_add(i32::from(heard.frame()[0]));
                    }
                }
                black_box(check)
            })
        });
    }
    group.finish();
}

fn n_minus_one(c: &mut Criterion) {
    let mut group = c.benchmark_group("mixer/mix_minus_all_tick");
    for n in ROOMS {
        let inputs = frames(n);
        let mut outputs = vec![[0i16; FRAME_SAMPLES]; n];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                mix_minus(black_box(&inputs), &mut outputs);
                black_box(&outputs);
            })
        });
    }
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("mixer/pipeline_tick");
    for n in ROOMS {
        let payloads: Vec<Bytes> = frames(n)
            .iter()
            .map(|f| {
                let mut bytes = [0u8; FRAME_SAMPLES];
                Codec::Pcmu.encode_frame(f, &mut bytes);
                Bytes::copy_from_slice(&bytes)
            })
            .collect();
        let mut mixer = Mixer::new(n, DEFAULT_MAX_TALKERS);
        let slots: Vec<_> = (0..n).filter_map(|_| mixer.join()).collect();
        let mut buffers: Vec<JitterBuffer<Bytes>> = (0..n)
            .map(|_| JitterBuffer::new(JitterConfig::default()))
            .collect();
        let start = std::time::Instant::now();
        let mut tick = 0u32;
        let mut shared_down = Downsampler2::default();
        let mut talker_down = Downsampler2::default();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let now = start + std::time::Duration::from_millis(20) * tick;
                let seq = tick as u16;
                tick = tick.wrapping_add(1);
                for ((jb, slot), payload) in buffers.iter_mut().zip(&slots).zip(&payloads) {
                    jb.push(seq, u32::from(seq) * 160, payload.clone(), now);
                    if let Playout::Frame { item, .. } = jb.pop(now)
                        && let Some(input) = mixer.narrow_input_mut(*slot)
                    {
                        Codec::Pcmu.decode_frame(&item, input);
                    }
                }
                mixer.mix();
                let mut narrow = [0i16; FRAME_SAMPLES];
                shared_down.process(mixer.shared(), &mut narrow);
                let mut shared = [0u8; FRAME_SAMPLES];
                Codec::Pcmu.encode_frame(&narrow, &mut shared);
                let mut own = [0u8; FRAME_SAMPLES];
                let mut check = 0u32;
                for slot in &slots {
                    match mixer.output(*slot) {
                        Some(Heard::Own(frame)) => {
                            talker_down.process(frame, &mut narrow);
                            Codec::Pcmu.encode_frame(&narrow, &mut own);
                            check = check.wrapping_add(u32::from(own[0]));
                        }
                        Some(Heard::Shared(_)) => check = check.wrapping_add(u32::from(shared[0])),
                        None => {}
                    }
                }
                black_box(check)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, room, n_minus_one, pipeline);
criterion_main!(benches);
