//! The tokio engine over real UDP sockets on 127.0.0.1: pacing, RTP header progression,
//! audio content, inbound delivery, latching and port release.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dialbridge_media::rtp::RtpHeader;
use dialbridge_media::{Codec, MediaEngine, PlayEnd, RtpView, Tone};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(5);

/// Each test gets its own port range so parallel tests (and other crates' tests) do
/// not compete; the engine skips ports that are taken anyway.
fn engine(base: u16) -> MediaEngine {
    MediaEngine::new(LOCALHOST, base..=base + 98).unwrap()
}

async fn recv_packet(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("no RTP within 5 s")
        .unwrap();
    (buf[..n].to_vec(), from)
}

/// Goertzel power of `freq` Hz in 8 kHz samples, normalised by length.
fn power(x: &[i16], freq: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64).powi(2)
}

#[tokio::test]
async fn plays_a_tone_as_paced_g711() {
    let engine = engine(41_000);
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let session = engine
        .open(far.local_addr().unwrap(), Codec::Pcmu, Some(101))
        .unwrap();
    assert_eq!(session.local_port() % 2, 0);
    assert!((41_000..=41_098).contains(&session.local_port()));
    assert_eq!(session.telephone_event_pt(), Some(101));
    let done = session.play(Arc::new(Tone::sine(440.0, 400, 12_000)), false);
    assert!(session.is_playing());

    let started = tokio::time::Instant::now();
    let mut packets = Vec::new();
    for _ in 0..16 {
        let (bytes, from) = recv_packet(&far).await;
        assert_eq!(from, session.local_addr());
        packets.push(bytes);
    }
    // 16 packets paced at 20 ms take about 300 ms (the first is sent at once).
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200),
        "not paced: {elapsed:?}"
    );

    let views: Vec<RtpView<'_>> = packets.iter().map(|p| RtpView::parse(p).unwrap()).collect();
    assert!(views[0].marker, "marker on the first packet");
    for pair in views.windows(2) {
        assert_eq!(pair[1].payload_type, 0);
        assert!(!pair[1].marker);
        assert_eq!(pair[1].ssrc, pair[0].ssrc);
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        assert_eq!(pair[1].timestamp, pair[0].timestamp.wrapping_add(160));
        assert_eq!(pair[1].payload().len(), 160);
    }

    // A tick may have sent silence before play(); skip leading silent packets.
    let mut pcm = Vec::new();
    for view in views
        .iter()
        .skip_while(|v| v.payload().iter().all(|&b| b == 0xFF))
    {
        let mut frame = [0i16; 160];
        Codec::Pcmu.decode_frame(view.payload(), &mut frame);
        pcm.extend_from_slice(&frame);
    }
    assert!(pcm.len() >= 160 * 10, "only {} tone samples", pcm.len());
    let p440 = power(&pcm, 440.0);
    for other in [300.0, 700.0, 1000.0, 2000.0] {
        assert!(
            p440 > 100.0 * power(&pcm, other),
            "440 Hz not dominant over {other} Hz"
        );
    }
    // 12 000 peak -> Goertzel power about (A/2)^2 = 3.6e7.
    assert!(p440 > 1.0e7, "440 Hz power {p440}");

    // The 400 ms tone ends and the session falls back to silence.
    assert_eq!(timeout(WAIT, done).await.unwrap(), PlayEnd::Finished);
    assert!(!session.is_playing());
    let stats = session.stats();
    assert!(stats.sent >= 16);
    session.close().await;
}

#[tokio::test]
async fn delivers_inbound_packets_and_latches_same_ip_only() {
    let engine = engine(41_100);
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut session = engine
        .open(far.local_addr().unwrap(), Codec::Pcma, Some(101))
        .unwrap();
    let to = session.local_addr();

    let event = |seq: u16, marker: bool| {
        let h = RtpHeader {
            marker,
            payload_type: 101,
            sequence: seq,
            timestamp: 8000,
            ssrc: 77,
        };
        let mut out = [0u8; 16];
        h.write_packet(&[0x05, 0x0A, 0x00, 0xA0], &mut out).unwrap();
        out
    };

    // From a foreign IP (127.0.0.2 is loopback on Linux too): ignored.
    let stranger = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .unwrap();
    stranger.send_to(&event(1, true), to).await.unwrap();
    // Garbage from the right address: ignored.
    far.send_to(&[0x00, 0x01, 0x02], to).await.unwrap();
    // A good one.
    far.send_to(&event(2, true), to).await.unwrap();

    let got = timeout(WAIT, session.recv()).await.unwrap().unwrap();
    assert_eq!(
        got.sequence, 2,
        "the stranger's packet or garbage got through"
    );
    assert_eq!(got.payload_type, 101);
    assert!(got.marker);
    assert_eq!(got.timestamp, 8000);
    assert_eq!(got.ssrc, 77);
    assert_eq!(&got.payload[..], &[0x05, 0x0A, 0x00, 0xA0]);
    assert_eq!(got.source, far.local_addr().unwrap());
    assert_eq!(session.remote(), Some(far.local_addr().unwrap()));

    // Same IP, new port (a NAT rebinding): the session re-latches and sends there.
    let moved = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    moved.send_to(&event(3, false), to).await.unwrap();
    let got = timeout(WAIT, session.recv()).await.unwrap().unwrap();
    assert_eq!(got.sequence, 3);
    assert_eq!(session.remote(), Some(moved.local_addr().unwrap()));
    let (bytes, _) = recv_packet(&moved).await;
    let view = RtpView::parse(&bytes).unwrap();
    assert_eq!(view.payload_type, 8);
    assert!(view.payload().iter().all(|&b| b == Codec::Pcma.silence()));
    assert!(session.stats().receive_dropped >= 2);
}

#[tokio::test]
async fn close_frees_the_port_and_skips_taken_ones() {
    let engine = engine(41_200);
    // Someone else holds the first port of the range: the engine skips it.
    let squatter = std::net::UdpSocket::bind((LOCALHOST, 41_200));
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let a = engine
        .open(far.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    if squatter.is_ok() {
        assert_ne!(a.local_port(), 41_200);
    }
    let b = engine
        .open(far.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    assert_ne!(a.local_port(), b.local_port());
    assert_eq!(engine.session_count(), 2);
    assert_eq!(engine.ports_in_use(), 2);

    let port = a.local_port();
    let interrupted = a.play(Arc::new(Tone::sine(440.0, 10_000, 1000)), true);
    a.close().await;
    assert_eq!(interrupted.await, PlayEnd::Interrupted);
    assert_eq!(engine.session_count(), 1);
    assert_eq!(engine.ports_in_use(), 1);
    // The OS port pair is free again.
    drop(std::net::UdpSocket::bind((LOCALHOST, port)).unwrap());
    drop(std::net::UdpSocket::bind((LOCALHOST, port + 1)).unwrap());

    drop(b);
    assert_eq!(engine.session_count(), 0);
}

#[tokio::test]
async fn exhausted_range_is_an_error() {
    let engine = MediaEngine::new(LOCALHOST, 41_300..=41_302).unwrap();
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut open = Vec::new();
    while let Ok(s) = engine.open(far.local_addr().unwrap(), Codec::Pcmu, None) {
        open.push(s);
        assert!(open.len() <= 2);
    }
    assert!(matches!(
        engine.open(far.local_addr().unwrap(), Codec::Pcmu, None),
        Err(dialbridge_media::Error::NoFreePort {
            low: 41_300,
            high: 41_302
        })
    ));
}

#[test]
fn engine_needs_a_runtime() {
    assert!(matches!(
        MediaEngine::new(LOCALHOST, 20_000..=20_010),
        Err(dialbridge_media::Error::NoRuntime)
    ));
}

/// Sends `count` 20 ms PCMU packets of a `freq` Hz tone from `from` to `to`, paced.
async fn talk(from: Arc<UdpSocket>, to: SocketAddr, freq: f64, count: u16) {
    let tone = Tone::sine(freq, u32::from(count) * 20, 10_000);
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    for (i, frame) in tone.frames().enumerate() {
        interval.tick().await;
        let i = i as u16;
        let header = RtpHeader {
            marker: i == 0,
            payload_type: 0,
            sequence: 1000 + i,
            timestamp: 160 * u32::from(i),
            ssrc: 0xABCD,
        };
        let mut payload = [0u8; 160];
        Codec::Pcmu.encode_frame(&frame, &mut payload);
        let mut packet = [0u8; 172];
        let n = header.write_packet(&payload, &mut packet).unwrap();
        from.send_to(&packet[..n], to).await.unwrap();
    }
}

/// Collects `count` packets' decoded audio.
/// What `socket` hears in `count` packets, after half a second (25 packets) of jitter
/// buffers filling, which is dropped.
async fn listen_settled(socket: &UdpSocket, count: usize) -> Vec<i16> {
    listen(socket, 25).await;
    listen(socket, count).await
}

/// Mean square of `samples`.
fn mean_square(samples: &[i16]) -> f64 {
    samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64
}

async fn listen(socket: &UdpSocket, count: usize) -> Vec<i16> {
    let mut pcm = Vec::new();
    for _ in 0..count {
        let (bytes, _) = recv_packet(socket).await;
        let view = RtpView::parse(&bytes).unwrap();
        let mut frame = [0i16; 160];
        Codec::from_payload_type(view.payload_type)
            .unwrap()
            .decode_frame(view.payload(), &mut frame);
        pcm.extend_from_slice(&frame);
    }
    pcm
}

#[tokio::test]
async fn room_mixes_n_minus_one_and_honours_mute() {
    let engine = engine(41_400);
    let far: Vec<Arc<UdpSocket>> = futures_sockets(3).await;
    let a = engine
        .open(far[0].local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    let b = engine
        .open(far[1].local_addr().unwrap(), Codec::Pcma, None)
        .unwrap();
    let c = engine
        .open(far[2].local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    let room = engine.create_room(10);
    for s in [&a, &b, &c] {
        s.join_room(room).unwrap();
    }
    assert_eq!(engine.room_size(room), Some(3));
    assert_eq!(b.room(), Some(room));
    c.set_muted(true);
    assert!(c.is_muted());

    // A says 440 Hz, muted C says 1000 Hz, for 2 s.
    let ta = tokio::spawn(talk(far[0].clone(), a.local_addr(), 440.0, 100));
    let tc = tokio::spawn(talk(far[2].clone(), c.local_addr(), 1000.0, 100));

    // Skip the first half second (jitter buffers filling), then listen for 0.6 s.
    let (heard_a, heard_b) = tokio::join!(listen_settled(&far[0], 30), listen_settled(&far[1], 30));
    // B hears A's tone (through A-law), not muted C.
    let b440 = power(&heard_b, 440.0);
    assert!(b440 > 1.0e6, "B does not hear A: {b440}");
    assert!(b440 > 1000.0 * power(&heard_b, 1000.0), "B hears muted C");
    // A hears neither itself nor muted C.
    let a_energy = mean_square(&heard_a);
    assert!(
        a_energy < 100.0,
        "A hears something: mean square {a_energy}"
    );

    ta.await.unwrap();
    tc.await.unwrap();
    b.leave_room();
    assert_eq!(engine.room_size(room), Some(2));
    drop(a);
    assert_eq!(engine.room_size(room), Some(1));
    engine.close_room(room);
    assert_eq!(c.room(), None);
    assert!(matches!(
        c.join_room(room),
        Err(dialbridge_media::Error::NoSuchRoom)
    ));
}

#[tokio::test]
async fn room_prompt_reaches_every_member() {
    let engine = engine(41_500);
    let far = futures_sockets(2).await;
    let a = engine
        .open(far[0].local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    let b = engine
        .open(far[1].local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    let room = engine.create_room(2);
    a.join_room(room).unwrap();
    b.join_room(room).unwrap();
    let extra = engine
        .open(far[0].local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    assert!(matches!(
        extra.join_room(room),
        Err(dialbridge_media::Error::RoomFull)
    ));
    drop(extra);

    assert!(engine.play_to_room(room, Arc::new(Tone::sine(600.0, 400, 8000))));
    let (pa, pb) = tokio::join!(listen(&far[0], 15), listen(&far[1], 15));
    for pcm in [pa, pb] {
        assert!(power(&pcm, 600.0) > 1.0e6);
    }
}

async fn futures_sockets(n: usize) -> Vec<Arc<UdpSocket>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(Arc::new(UdpSocket::bind((LOCALHOST, 0)).await.unwrap()));
    }
    v
}

#[tokio::test]
async fn open_works_from_a_thread_outside_the_runtime() {
    let engine = engine(41_600);
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let remote = far.local_addr().unwrap();
    let opener = engine.clone();
    let session = std::thread::spawn(move || opener.open(remote, Codec::Pcmu, None))
        .join()
        .unwrap()
        .unwrap();
    let (bytes, from) = recv_packet(&far).await;
    assert_eq!(from, session.local_addr());
    assert_eq!(RtpView::parse(&bytes).unwrap().payload_type, 0);
}

#[tokio::test]
async fn hold_pauses_sending_and_set_remote_moves_the_stream() {
    let engine = engine(41_700);
    let far1 = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let far2 = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let session = engine
        .open(far1.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    let (first, _) = recv_packet(&far1).await;

    session.set_sending(false);
    // Let at least three ticks pass while paused (polling the engine's tick count:
    // the slowest shard's, which any shard may be one ahead of).
    let ticks = engine.stats().ticks;
    while engine.stats().ticks < ticks + 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Everything sent before the pause is in far1's buffer by now (loopback).
    let mut last = Some(first);
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = far1.try_recv_from(&mut buf) {
        last = Some(buf[..n].to_vec());
    }
    let last = last.unwrap();
    let last = RtpView::parse(&last).unwrap();

    session.set_remote(far2.local_addr().unwrap());
    session.set_sending(true);
    let (bytes, _) = recv_packet(&far2).await;
    let resumed = RtpView::parse(&bytes).unwrap();
    assert!(resumed.marker, "no marker after the pause");
    assert_eq!(resumed.sequence, last.sequence.wrapping_add(1));
    let gap = resumed.timestamp.wrapping_sub(last.timestamp);
    assert!(
        gap >= 4 * 160 && gap.is_multiple_of(160),
        "timestamp gap {gap}"
    );
    assert!(
        far1.try_recv_from(&mut buf).is_err(),
        "still sending to the old address"
    );
    assert_eq!(session.remote(), Some(far2.local_addr().unwrap()));

    let stats = engine.stats();
    assert_eq!((stats.sessions, stats.rooms, stats.ports_in_use), (1, 0, 1));
    assert!(stats.ticks >= 4);
    assert!(stats.max_tick >= stats.last_tick);
}

/// With several shards, rooms land on different clocks and a participant moving from a
/// room on one shard to a room on another takes its stream with it: the members of
/// each room hear exactly their own room.
#[tokio::test]
async fn rooms_spread_over_shards_and_a_participant_moves_between_them() {
    let options = dialbridge_media::EngineOptions {
        shards: 3,
        ..Default::default()
    };
    let engine = MediaEngine::with_options(LOCALHOST, 41_800..=41_898, options).unwrap();
    assert_eq!(engine.shard_count(), 3);
    let far: Vec<Arc<UdpSocket>> = futures_sockets(3).await;
    let open = |i: usize| {
        engine
            .open(far[i].local_addr().unwrap(), Codec::Pcmu, None)
            .unwrap()
    };
    let (a, b, c) = (open(0), open(1), open(2));
    // Each new room goes to the shard carrying the fewest sessions: three rooms, and
    // after the first two have members, the third is on a shard of its own.
    let first = engine.create_room(4);
    a.join_room(first).unwrap();
    let second = engine.create_room(4);
    b.join_room(second).unwrap();
    c.join_room(second).unwrap();
    assert_eq!(
        (engine.room_size(first), engine.room_size(second)),
        (Some(1), Some(2))
    );
    // C moves to A's room (another shard, unless both rooms share one).
    c.join_room(first).unwrap();
    assert_eq!(c.room(), Some(first));
    assert_eq!(
        (engine.room_size(first), engine.room_size(second)),
        (Some(2), Some(1))
    );
    // C says 1000 Hz: A, in its room now, hears it; B, left behind, hears nothing.
    let before = engine.shard_stats();
    let tc = tokio::spawn(talk(far[2].clone(), c.local_addr(), 1000.0, 60));
    let (heard_a, heard_b) = tokio::join!(listen_settled(&far[0], 25), listen_settled(&far[1], 25));
    let a1000 = power(&heard_a, 1000.0);
    assert!(a1000 > 1.0e6, "A does not hear C after its move: {a1000}");
    let b_energy = mean_square(&heard_b);
    assert!(b_energy < 100.0, "B still hears C: mean square {b_energy}");
    tc.await.unwrap();
    // C's packets were read by the receive thread of the shard C lives in now, the
    // one holding A and C (its sockets moved with it), and by no other.
    let after = engine.shard_stats();
    let read: Vec<u64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.received - b.received)
        .collect();
    let home = after.iter().position(|s| s.sessions == 2).unwrap();
    assert!(
        read[home] >= 50,
        "C's shard read {} of 60: {read:?}",
        read[home]
    );
    let elsewhere: u64 = read
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != home)
        .map(|(_, r)| r)
        .sum();
    assert_eq!(
        elsewhere, 0,
        "C's packets were read by another shard: {read:?}"
    );
    assert_eq!(engine.stats().sessions, 3);
    drop(c);
    assert_eq!(engine.room_size(first), Some(1));
    assert_eq!(engine.session_count(), 2);
}
