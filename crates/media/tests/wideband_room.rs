//! Rooms mixing at 16 kHz over real UDP sockets on 127.0.0.1: G.711, G.722 and Opus
//! members hearing each other, comfort noise filling a member's silence, the room
//! recorded to a WAV, and in-band DTMF kept out of the mix.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dialbridge_media::rtp::RtpHeader;
use dialbridge_media::{AudioCodec, Codec, CodecState, MediaEngine, RtpView};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(5);
const OPUS: AudioCodec = AudioCodec::Opus { payload_type: 111 };

fn engine(base: u16) -> MediaEngine {
    MediaEngine::new(LOCALHOST, base..=base + 98).unwrap()
}

async fn sockets(n: usize) -> Vec<Arc<UdpSocket>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(Arc::new(UdpSocket::bind((LOCALHOST, 0)).await.unwrap()));
    }
    v
}

/// A sine of `freqs` (summed), sample `n` at `rate`.
fn sample(freqs: &[f64], amplitude: f64, rate: f64, n: usize) -> i16 {
    let t = n as f64 / rate;
    let v: f64 = freqs
        .iter()
        .map(|f| (2.0 * std::f64::consts::PI * f * t).sin())
        .sum();
    (amplitude * v) as i16
}

/// Sends `count` paced 20 ms packets of `freqs` in `codec` (silence when empty),
/// sequence numbers from `first_seq`; returns the next sequence number.
async fn talk(
    from: Arc<UdpSocket>,
    to: SocketAddr,
    codec: AudioCodec,
    freqs: Vec<f64>,
    count: usize,
) -> u16 {
    let mut state = CodecState::new(codec).unwrap();
    let rate = codec.sample_rate();
    let samples = rate.frame_samples();
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    let mut seq = 1000u16;
    for i in 0..count {
        interval.tick().await;
        let pcm: Vec<i16> = (0..samples)
            .map(|n| sample(&freqs, 7000.0, f64::from(rate.hz()), i * samples + n))
            .collect();
        let mut payload = [0u8; 1500];
        let len = state.encode_frame(&pcm, &mut payload).unwrap();
        send(
            &from,
            to,
            codec.payload_type(),
            seq,
            i as u32 * codec.timestamp_step(),
            &payload[..len],
        )
        .await;
        seq = seq.wrapping_add(1);
    }
    seq
}

async fn send(from: &UdpSocket, to: SocketAddr, pt: u8, seq: u16, ts: u32, payload: &[u8]) {
    let header = RtpHeader {
        marker: false,
        payload_type: pt,
        sequence: seq,
        timestamp: ts,
        ssrc: 0x5151,
    };
    let mut packet = [0u8; 1600];
    let n = header.write_packet(payload, &mut packet).unwrap();
    from.send_to(&packet[..n], to).await.unwrap();
}

/// Receives `count` packets in `codec` and decodes them; returns the audio and the
/// timestamp steps seen.
async fn listen(socket: &UdpSocket, state: &mut CodecState, count: usize) -> (Vec<i16>, Vec<u32>) {
    let mut pcm = Vec::new();
    let mut steps = Vec::new();
    let mut last_ts = None;
    for _ in 0..count {
        let mut buf = [0u8; 2048];
        let (n, _) = timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .expect("no RTP within 5 s")
            .unwrap();
        let view = RtpView::parse(&buf[..n]).unwrap();
        assert_eq!(view.payload_type, state.codec().payload_type());
        if let Some(last) = last_ts {
            steps.push(view.timestamp.wrapping_sub(last));
        }
        last_ts = Some(view.timestamp);
        let mut frame = [0i16; 960];
        let got = state.decode_frame(view.payload(), &mut frame);
        pcm.extend_from_slice(&frame[..got]);
    }
    (pcm, steps)
}

/// Amplitude of `freq` in `x` sampled at `rate` (one DFT bin).
fn amplitude(x: &[i16], freq: f64, rate: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &s) in x.iter().enumerate() {
        let w = 2.0 * std::f64::consts::PI * freq * n as f64 / rate;
        re += f64::from(s) * w.cos();
        im += f64::from(s) * w.sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len().max(1) as f64
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[tokio::test]
async fn g711_g722_and_opus_members_hear_each_other_in_a_wideband_mix() {
    let engine = engine(47_000);
    let far = sockets(3).await;
    let a = engine
        .open(far[0].local_addr().unwrap(), Codec::Pcmu, Some(101))
        .unwrap();
    let b = engine
        .open(far[1].local_addr().unwrap(), AudioCodec::G722, Some(101))
        .unwrap();
    let c = engine
        .open(far[2].local_addr().unwrap(), OPUS, Some(101))
        .unwrap();
    assert_eq!(a.codec(), AudioCodec::G711(Codec::Pcmu));
    assert_eq!(c.codec(), OPUS);
    let room = engine.create_room(10);
    for s in [&a, &b, &c] {
        s.join_room(room).unwrap();
    }
    // A (G.711) says 440 Hz, B (G.722) 1000 Hz, C (Opus) 5 kHz — a tone only a
    // wideband path carries.
    let ta = tokio::spawn(talk(
        far[0].clone(),
        a.local_addr(),
        a.codec(),
        vec![440.0],
        100,
    ));
    let tb = tokio::spawn(talk(
        far[1].clone(),
        b.local_addr(),
        b.codec(),
        vec![1000.0],
        100,
    ));
    let tc = tokio::spawn(talk(
        far[2].clone(),
        c.local_addr(),
        OPUS,
        vec![5000.0],
        100,
    ));

    let mut sa = CodecState::new(a.codec()).unwrap();
    let mut sb = CodecState::new(b.codec()).unwrap();
    let mut sc = CodecState::new(c.codec()).unwrap();
    // Skip half a second (jitter buffers filling, decoders settling), then listen.
    let ((heard_a, _), (heard_b, steps_b), (heard_c, steps_c)) = tokio::join!(
        async {
            listen(&far[0], &mut sa, 25).await;
            listen(&far[0], &mut sa, 30).await
        },
        async {
            listen(&far[1], &mut sb, 25).await;
            listen(&far[1], &mut sb, 30).await
        },
        async {
            listen(&far[2], &mut sc, 25).await;
            listen(&far[2], &mut sc, 30).await
        },
    );
    // RTP clocks: G.722 8 kHz (160 per 20 ms, RFC 3551 §4.5.2), Opus 48 kHz (960).
    assert!(steps_b.iter().all(|&s| s == 160), "{steps_b:?}");
    assert!(steps_c.iter().all(|&s| s == 960), "{steps_c:?}");

    // A hears B and, band-limited, not C's 5 kHz; never itself.
    assert!(amplitude(&heard_a, 1000.0, 8000.0) > 2000.0);
    assert!(amplitude(&heard_a, 440.0, 8000.0) < 200.0);
    // B hears A (upsampled into the mix) and C's 5 kHz (the mix is wideband).
    assert!(amplitude(&heard_b, 440.0, 16_000.0) > 2000.0);
    let b5k = amplitude(&heard_b, 5000.0, 16_000.0);
    assert!(b5k > 1000.0, "B hears no 5 kHz: {b5k}");
    assert!(amplitude(&heard_b, 1000.0, 16_000.0) < 300.0);
    // C hears A and B, not itself.
    assert!(amplitude(&heard_c, 440.0, 16_000.0) > 1500.0);
    assert!(amplitude(&heard_c, 1000.0, 16_000.0) > 1500.0);
    assert!(amplitude(&heard_c, 5000.0, 16_000.0) < 300.0);

    ta.await.unwrap();
    tb.await.unwrap();
    tc.await.unwrap();
}

/// A member sends a little tone, then one RFC 3389 SID at -40 dBov, then nothing:
/// the other hears noise at that level from then on, not silence.
async fn after_a_pause(base: u16, comfort_noise: bool) -> (Vec<i16>, i64) {
    let engine = engine(base);
    let far = sockets(2).await;
    let a = engine
        .open(far[0].local_addr().unwrap(), Codec::Pcmu, Some(101))
        .unwrap();
    let b = engine
        .open(far[1].local_addr().unwrap(), Codec::Pcmu, Some(101))
        .unwrap();
    let room = engine.create_room(4);
    a.join_room(room).unwrap();
    b.join_room(room).unwrap();
    let talker = far[0].clone();
    let to = a.local_addr();
    let send_side = tokio::spawn(async move {
        let seq = talk(talker.clone(), to, Codec::Pcmu.into(), vec![440.0], 20).await;
        if comfort_noise {
            tokio::time::sleep(Duration::from_millis(20)).await;
            send(&talker, to, 13, seq, 20 * 160, &[40]).await;
        }
    });
    let mut state = CodecState::new(Codec::Pcmu.into()).unwrap();
    // 20 tone frames, the SID, then a second without packets: listen past the
    // concealment's 80 ms.
    listen(&far[1], &mut state, 40).await;
    let (heard, _) = listen(&far[1], &mut state, 30).await;
    send_side.await.unwrap();
    (heard, a.quality().lost)
}

#[tokio::test]
async fn comfort_noise_fills_a_members_silence_and_is_not_loss() {
    let (heard, lost) = after_a_pause(47_200, true).await;
    // -40 dBov: an RMS of 32767 / 100.
    let level = rms(&heard);
    assert!((200.0..550.0).contains(&level), "noise RMS {level}");
    assert_eq!(lost, 0);
    // Without the SID the concealment fades to silence.
    let (heard, _) = after_a_pause(47_300, false).await;
    assert!(rms(&heard) < 5.0, "silence RMS {}", rms(&heard));
}

#[tokio::test]
async fn the_room_is_recorded_to_a_16_khz_wav_with_every_talker() {
    let engine = engine(47_400);
    let far = sockets(2).await;
    let a = engine
        .open(far[0].local_addr().unwrap(), Codec::Pcma, Some(101))
        .unwrap();
    let b = engine
        .open(far[1].local_addr().unwrap(), AudioCodec::G722, Some(101))
        .unwrap();
    let room = engine.create_room(4);
    a.join_room(room).unwrap();
    b.join_room(room).unwrap();
    let path = std::env::temp_dir().join(format!("dialbridge-room-{}.wav", std::process::id()));
    engine.start_recording(room, &path).unwrap();
    assert!(engine.is_recording(room));
    assert!(
        engine.start_recording(room, &path).is_err(),
        "recorded twice"
    );

    let ta = tokio::spawn(talk(
        far[0].clone(),
        a.local_addr(),
        a.codec(),
        vec![440.0],
        75,
    ));
    let tb = tokio::spawn(talk(
        far[1].clone(),
        b.local_addr(),
        b.codec(),
        vec![1000.0],
        75,
    ));
    ta.await.unwrap();
    tb.await.unwrap();
    let summary = engine.stop_recording(room).unwrap().unwrap();
    assert!(engine.stop_recording(room).is_none());
    assert!(
        summary.duration >= Duration::from_millis(1400),
        "{summary:?}"
    );

    let reader = hound::WavReader::open(&path).unwrap();
    assert_eq!(reader.spec().sample_rate, 16_000);
    assert_eq!(reader.spec().channels, 1);
    let samples: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
    assert_eq!(samples.len() as u64, summary.samples);
    // The middle second holds both talkers, each at about its level.
    let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
    let a440 = amplitude(middle, 440.0, 16_000.0);
    let b1000 = amplitude(middle, 1000.0, 16_000.0);
    assert!(a440 > 3000.0, "A missing: {a440}");
    assert!(b1000 > 3000.0, "B missing: {b1000}");
    assert!(amplitude(middle, 3000.0, 16_000.0) < 300.0);
    std::fs::remove_file(&path).unwrap();
    assert!(engine.start_recording(room, &path).is_ok());
    engine.close_room(room);
    assert!(matches!(
        engine.start_recording(room, &path),
        Err(dialbridge_media::Error::NoSuchRoom)
    ));
    let _ = std::fs::remove_file(&path);
}

/// Member A keys DTMF "1" (697 + 1209 Hz) into its `codec` audio for 0.8 s; what B
/// (G.711) hears.
async fn keyed_digit(base: u16, codec: AudioCodec, telephone_event: Option<u8>) -> Vec<i16> {
    let engine = engine(base);
    let far = sockets(2).await;
    let a = engine
        .open(far[0].local_addr().unwrap(), codec, telephone_event)
        .unwrap();
    let b = engine
        .open(far[1].local_addr().unwrap(), Codec::Pcmu, Some(101))
        .unwrap();
    let room = engine.create_room(4);
    a.join_room(room).unwrap();
    b.join_room(room).unwrap();
    let ta = tokio::spawn(talk(
        far[0].clone(),
        a.local_addr(),
        a.codec(),
        vec![697.0, 1209.0],
        60,
    ));
    let mut state = CodecState::new(Codec::Pcmu.into()).unwrap();
    listen(&far[1], &mut state, 20).await;
    let (heard, _) = listen(&far[1], &mut state, 25).await;
    ta.await.unwrap();
    heard
}

#[tokio::test]
async fn in_band_dtmf_of_a_g711_member_is_not_mixed() {
    let pcmu = AudioCodec::G711(Codec::Pcmu);
    // With telephone-events negotiated the audio is mixed as it is...
    let heard = keyed_digit(47_600, pcmu, Some(101)).await;
    assert!(amplitude(&heard, 697.0, 8000.0) > 2000.0);
    // ...without, the digits are in-band and the squelch keeps them out.
    let heard = keyed_digit(47_700, pcmu, None).await;
    assert!(rms(&heard) < 50.0, "digit heard: RMS {}", rms(&heard));
}

#[tokio::test]
async fn in_band_dtmf_of_a_wideband_member_is_not_mixed() {
    let heard = keyed_digit(47_800, AudioCodec::G722, Some(101)).await;
    assert!(amplitude(&heard, 697.0, 8000.0) > 2000.0);
    for (base, codec) in [(47_900, AudioCodec::G722), (48_000, OPUS)] {
        let heard = keyed_digit(base, codec, None).await;
        assert!(
            rms(&heard) < 50.0,
            "{codec:?} digit heard: RMS {}",
            rms(&heard)
        );
    }
}
