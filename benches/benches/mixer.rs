//! Mixer cost per 20 ms tick in rooms of 10, 100 and 1,000 participants: the room
//! mixer (K = 3 loudest talkers, one shared frame for everyone else) and, for
//! comparison, the plain N-1 kernel where every participant gets a personal frame.
//! Throughput is per participant, so criterion reports the cost per participant.
//! `pipeline_tick` runs the product's [`RoomPipeline`] — the code the engine's clock
//! and receive thread run: each member's datagram through `handle_datagram` (RTP
//! parse, jitter buffer push), then `tick` (jitter buffer pop, G.711 decode, the 16 kHz
//! mix of the loudest three, the shared mix decimated and encoded once, talkers'
//! frames decimated and encoded each, RTP packetisation) — everything but the socket
//! calls and the locks. The participants are G.711 (8 kHz) in the 16 kHz mix, with
//! RFC 4733 telephone-events (no in-band DTMF squelch; `pipeline_tick_squelch` has it;
//! `pipeline_tick_in_band_detector` runs the call's in-band DTMF detector on every
//! member's frames, as the engine does for the server's calls in a meeting).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dialbridge_conference::dtmf::{GoertzelDetector, ToneListener};
use dialbridge_media::mixer::{DEFAULT_MAX_TALKERS, Frame, Mixer, mix_minus};
use dialbridge_media::rtp::RtpHeader;
use dialbridge_media::{Codec, Datagrams, FRAME_SAMPLES, MemberId, RoomPipeline, Tone};

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

/// One room of `n` µ-law members, each with its far end's next datagram: the RTP
/// header rewritten every tick (sequence, timestamp), the payload fixed.
struct Room {
    pipeline: RoomPipeline,
    members: Vec<(MemberId, Vec<u8>)>,
    out: Datagrams,
    start: std::time::Instant,
    tick: u32,
}

/// What each member's received audio goes through besides the mix.
#[derive(Clone, Copy)]
enum Dtmf {
    /// RFC 4733 telephone-events only.
    Events,
    /// No telephone-events: the in-band DTMF squelch keeps keys out of the mix.
    Squelch,
    /// Telephone-events, and the call's own in-band detector on every frame (the
    /// server in a meeting: `ToneListener` on the clock).
    Detector,
}

impl Room {
    fn new(n: usize, dtmf: Dtmf) -> Self {
        let telephone_event = !matches!(dtmf, Dtmf::Squelch);
        let mut pipeline = RoomPipeline::new(n);
        let members = frames(n)
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let id = pipeline
                    .add_member(Codec::Pcmu, telephone_event, None)
                    .ok()?;
                if matches!(dtmf, Dtmf::Detector) {
                    let listener = ToneListener::new(GoertzelDetector::default(), |d, _| {
                        black_box(d);
                    });
                    pipeline.set_listener(id, Some(Box::new(listener)));
                }
                let mut payload = [0u8; FRAME_SAMPLES];
                Codec::Pcmu.encode_frame(f, &mut payload);
                let mut datagram = vec![0u8; 12 + FRAME_SAMPLES];
                RtpHeader {
                    marker: false,
                    payload_type: 0,
                    sequence: 0,
                    timestamp: 0,
                    ssrc: i as u32,
                }
                .write_packet(&payload, &mut datagram)
                .ok()?;
                Some((id, datagram))
            })
            .collect();
        Self {
            pipeline,
            members,
            out: Datagrams::default(),
            start: std::time::Instant::now(),
            tick: 0,
        }
    }

    /// One 20 ms tick on the virtual clock: every member's packet in, the tick, the
    /// datagrams out.
    fn tick(&mut self) -> usize {
        let now = self.start + std::time::Duration::from_millis(20) * self.tick;
        let seq = self.tick as u16;
        self.tick = self.tick.wrapping_add(1);
        for (id, datagram) in &mut self.members {
            datagram[2..4].copy_from_slice(&seq.to_be_bytes());
            datagram[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            let _ = black_box(self.pipeline.handle_datagram(*id, now, datagram));
        }
        self.out.clear();
        self.pipeline.tick(now, &mut self.out);
        self.out.len()
    }
}

fn pipeline(c: &mut Criterion) {
    for (name, dtmf) in [
        ("mixer/pipeline_tick", Dtmf::Events),
        ("mixer/pipeline_tick_squelch", Dtmf::Squelch),
        ("mixer/pipeline_tick_in_band_detector", Dtmf::Detector),
    ] {
        let mut group = c.benchmark_group(name);
        for n in ROOMS {
            let mut room = Room::new(n, dtmf);
            // Past the jitter buffer's start, and the output grown to the room.
            for _ in 0..10 {
                room.tick();
            }
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| black_box(room.tick()))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, room, n_minus_one, pipeline);
criterion_main!(benches);
