//! Tests of the room pipeline with a virtual clock: every tick is `start + 20 ms × k`,
//! packets arrive when the test says, nothing sleeps.

use std::time::{Duration, Instant};

use super::{Datagrams, Dropped, MemberId, RoomPipeline};
use crate::mixer::SILENCE;
use crate::rtp::{HEADER_LEN, RtpHeader};
use crate::{Codec, FRAME_SAMPLES, Frame};

const PCMU: u8 = 0;

/// A far end sending G.711 µ-law to one member.
struct Far {
    member: MemberId,
    ssrc: u32,
}

impl Far {
    /// The RTP datagram of frame `seq` carrying `pcm`.
    fn packet(&self, seq: u16, pcm: &Frame) -> Vec<u8> {
        let mut payload = [0u8; FRAME_SAMPLES];
        Codec::Pcmu.encode_frame(pcm, &mut payload);
        let header = RtpHeader {
            marker: seq == 0,
            payload_type: PCMU,
            sequence: seq,
            timestamp: u32::from(seq) * FRAME_SAMPLES as u32,
            ssrc: self.ssrc,
        };
        let mut out = vec![0u8; HEADER_LEN + FRAME_SAMPLES];
        header.write_packet(&payload, &mut out).unwrap();
        out
    }
}

/// A sum of sines, frame `k` of it (phase continuous across frames).
fn tones(k: usize, parts: &[(f64, f64)]) -> Frame {
    let mut frame = SILENCE;
    for (i, s) in frame.iter_mut().enumerate() {
        let n = (k * FRAME_SAMPLES + i) as f64;
        let v: f64 = parts
            .iter()
            .map(|&(f, a)| a * (2.0 * std::f64::consts::PI * f * n / 8000.0).sin())
            .sum();
        *s = v as i16;
    }
    frame
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// What `member` heard on the last tick, decoded: the RMS of its packet.
fn heard(out: &Datagrams, member: MemberId) -> f64 {
    let d = out
        .iter()
        .find(|d| d.member() == member)
        .expect("one packet per member per tick");
    let mut pcm = SILENCE;
    Codec::Pcmu.decode_frame(&d.bytes()[HEADER_LEN..], &mut pcm);
    rms(&pcm)
}

/// A room of `n` µ-law members (`telephone_event` for all), with their far ends.
fn room(n: usize, telephone_event: bool) -> (RoomPipeline, Vec<Far>) {
    let mut pipeline = RoomPipeline::new(n);
    let fars = (0..n)
        .map(|i| Far {
            member: pipeline
                .add_member(Codec::Pcmu, telephone_event, None)
                .unwrap(),
            ssrc: 0x1000 + i as u32,
        })
        .collect();
    (pipeline, fars)
}

/// Runs `ticks` ticks; at tick `k` each far end's packets are `send(k, far index)`
/// (sequence number and frame), handed in before the tick. Returns, per tick, what
/// every member heard (RMS).
fn run(
    pipeline: &mut RoomPipeline,
    fars: &[Far],
    ticks: usize,
    mut send: impl FnMut(usize, usize) -> Vec<(u16, Frame)>,
) -> Vec<Vec<f64>> {
    let start = Instant::now();
    let mut out = Datagrams::default();
    let mut heard_by_tick = Vec::new();
    for k in 0..ticks {
        let now = start + Duration::from_millis(20) * k as u32;
        for (i, far) in fars.iter().enumerate() {
            for (seq, pcm) in send(k, i) {
                let mut datagram = far.packet(seq, &pcm);
                pipeline
                    .handle_datagram(far.member, now, &mut datagram)
                    .unwrap();
            }
        }
        out.clear();
        pipeline.tick(now, &mut out);
        assert_eq!(out.len(), fars.len(), "one packet per member per tick");
        heard_by_tick.push(fars.iter().map(|f| heard(&out, f.member)).collect());
    }
    heard_by_tick
}

#[test]
fn a_member_never_hears_itself() {
    // Small room (everyone mixed) and a large one (talkers chosen by level, the rest
    // hearing the shared mix): the talker hears nobody, everyone else hears it.
    for n in [3, 10] {
        let (mut pipeline, fars) = room(n, true);
        let heard = run(&mut pipeline, &fars, 20, |k, i| {
            let pcm = if i == 0 {
                tones(k, &[(440.0, 8000.0)])
            } else {
                SILENCE
            };
            vec![(k as u16, pcm)]
        });
        for tick in &heard[6..] {
            assert!(
                tick[0] < 30.0,
                "room of {n}: the talker hears itself: {tick:?}"
            );
            for (i, &level) in tick.iter().enumerate().skip(1) {
                assert!(
                    level > 2000.0,
                    "room of {n}: member {i} misses the talker: {tick:?}"
                );
            }
        }
        assert!(pipeline.is_talking(fars[0].member));
        assert!(!pipeline.is_talking(fars[1].member));
    }
}

#[test]
fn in_band_dtmf_is_squelched_only_without_telephone_events() {
    // Key '1' (697 + 1209 Hz) at about -10 dBm0 per tone for ticks 4..14.
    let key = |k: usize| tones(k, &[(697.0, 7000.0), (1209.0, 7000.0)]);
    for telephone_event in [false, true] {
        let (mut pipeline, fars) = room(3, telephone_event);
        let heard = run(&mut pipeline, &fars, 20, |k, i| {
            let pcm = if i == 0 && (4..14).contains(&k) {
                key(k)
            } else {
                SILENCE
            };
            vec![(k as u16, pcm)]
        });
        let loudest = heard.iter().map(|t| t[1]).fold(0.0, f64::max);
        if telephone_event {
            assert!(
                loudest > 3000.0,
                "a member with events is mixed as is: {loudest}"
            );
        } else {
            assert!(loudest < 30.0, "in-band digits reached the room: {loudest}");
        }
    }
}

#[test]
fn jitter_buffer_puts_reordered_packets_back_in_order() {
    // Member 0's level rises frame by frame; frames 6 and 7 arrive swapped.
    let (mut pipeline, fars) = room(2, true);
    let level = |seq: usize| 1000.0 + 400.0 * seq as f64;
    let heard = run(&mut pipeline, &fars, 16, |k, i| {
        if i != 0 {
            return vec![(k as u16, SILENCE)];
        }
        let seq = match k {
            6 => 7,
            7 => 6,
            k => k,
        };
        vec![(seq as u16, tones(seq, &[(500.0, level(seq))]))]
    });
    let member = fars[0].member;
    let stats = pipeline.jitter(member).unwrap().stats();
    assert_eq!((stats.lost, stats.late), (0, 0), "{stats:?}");
    assert_eq!(pipeline.media(member).unwrap().concealed(), 0);
    // What member 1 hears rises every tick once playing: nothing out of order.
    let levels: Vec<f64> = heard.iter().map(|t| t[1]).filter(|&l| l > 100.0).collect();
    assert!(levels.len() >= 10, "{levels:?}");
    for pair in levels.windows(2) {
        assert!(pair[1] > pair[0], "out of order: {levels:?}");
    }
}

#[test]
fn a_lost_packet_is_concealed() {
    let (mut pipeline, fars) = room(2, true);
    let heard = run(&mut pipeline, &fars, 16, |k, i| match (i, k) {
        (0, 8) => vec![],
        (0, k) => vec![(k as u16, tones(k, &[(500.0, 6000.0)]))],
        (_, k) => vec![(k as u16, SILENCE)],
    });
    let member = fars[0].member;
    assert_eq!(pipeline.media(member).unwrap().concealed(), 1);
    assert_eq!(pipeline.jitter(member).unwrap().stats().lost, 1);
    // The gap is filled from the last good frame: member 1 never hears a hole.
    let playing: Vec<f64> = heard.iter().map(|t| t[1]).skip(4).collect();
    assert!(playing.iter().all(|&l| l > 1500.0), "{playing:?}");
}

#[test]
fn datagrams_that_are_not_room_audio_stay_out_of_the_jitter_buffer() {
    let (mut pipeline, fars) = room(2, true);
    let now = Instant::now();
    let member = fars[0].member;
    let mut garbage = [0xffu8; 8];
    assert_eq!(
        pipeline.handle_datagram(member, now, &mut garbage).err(),
        Some(Dropped::Malformed)
    );
    let mut event = fars[0].packet(0, &SILENCE);
    event[1] = 101; // an RFC 4733 telephone-event: the call's, not the mixer's
    let view = pipeline.handle_datagram(member, now, &mut event).unwrap();
    assert_eq!(view.payload_type, 101);
    assert_eq!(pipeline.jitter(member).unwrap().depth(), 0);
    let mut audio = fars[0].packet(1, &SILENCE);
    pipeline.handle_datagram(member, now, &mut audio).unwrap();
    assert_eq!(pipeline.jitter(member).unwrap().depth(), 1);
    assert!(pipeline.remove_member(member));
    assert_eq!(
        pipeline.handle_datagram(member, now, &mut audio).err(),
        Some(Dropped::NoSuchMember)
    );
    assert_eq!(pipeline.len(), 1);
}
