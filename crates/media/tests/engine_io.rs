//! The engine's batch receive, RTCP and SRTP over real sockets on 127.0.0.1: bursts
//! arrive whole and in order, reports flow both ways and yield quality figures,
//! SRTP sessions talk to each other and to an independent RFC 3711 peer, and the
//! clock's lateness histogram fills.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dialbridge_media::rtcp::{self, PT_RR, PT_SR};
use dialbridge_media::rtp::RtpHeader;
use dialbridge_media::srtp::{SrtpContext, SrtpKeys, SrtpSuite};
use dialbridge_media::{Codec, MediaEngine, RtpView, Tone};
use tokio::net::UdpSocket;
use tokio::time::{sleep, timeout};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(5);

fn engine(base: u16) -> MediaEngine {
    MediaEngine::new(LOCALHOST, base..=base + 98).unwrap()
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let header = RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        ssrc,
    };
    let mut out = vec![0u8; 12 + payload.len()];
    header.write_packet(payload, &mut out).unwrap();
    out
}

async fn recv_from(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("nothing within 5 s")
        .unwrap();
    (buf[..n].to_vec(), from)
}

#[tokio::test]
async fn a_burst_larger_than_one_batch_arrives_whole_and_in_order() {
    let engine = engine(42_000);
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut session = engine
        .open(far.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    // 50 packets back to back: several recvmmsg batches of 16 on one wake-up.
    for seq in 0..50u16 {
        far.send_to(&rtp(seq, 5, &[seq as u8; 160]), session.local_addr())
            .await
            .unwrap();
    }
    for seq in 0..50u16 {
        let got = timeout(WAIT, session.recv()).await.unwrap().unwrap();
        assert_eq!(got.sequence, seq);
        assert_eq!(got.payload.len(), 160);
        assert!(got.payload.iter().all(|&b| b == seq as u8));
        assert_eq!(got.source, far.local_addr().unwrap());
    }
    assert_eq!(session.stats().received, 50);
    assert_eq!(session.stats().receive_dropped, 0);
    assert_eq!(engine.stats().receive_queue_overflows, 0);
}

#[tokio::test]
async fn a_full_inbound_queue_is_counted_as_loss_inside_the_bridge() {
    let engine = engine(42_100);
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let session = engine
        .open(far.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    // Nobody reads: the queue holds INBOUND_QUEUE, the rest overflow.
    let n = dialbridge_media::engine::INBOUND_QUEUE as u16 + 10;
    for seq in 0..n {
        far.send_to(&rtp(seq, 5, &[0; 160]), session.local_addr())
            .await
            .unwrap();
    }
    timeout(WAIT, async {
        while session.stats().received + session.stats().receive_dropped < u64::from(n) {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(engine.stats().receive_queue_overflows, 10);
    assert_eq!(session.stats().receive_dropped, 10);
}

#[tokio::test]
async fn rtcp_reports_flow_both_ways_and_give_quality() {
    let engine = engine(42_200);
    engine.set_report_interval(Duration::from_millis(100));
    // Two sessions of the same engine, each other's far end.
    let placeholder: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let a = engine.open(placeholder, Codec::Pcmu, None).unwrap();
    let b = engine.open(a.local_addr(), Codec::Pcmu, None).unwrap();
    a.set_remote(b.local_addr());
    timeout(WAIT, async {
        loop {
            let (qa, qb) = (a.quality(), b.quality());
            if qa.rtt_ms.is_some() && qb.rtt_ms.is_some() && qa.remote_loss_fraction.is_some() {
                break;
            }
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no RTT measured within 5 s");
    let q = a.quality();
    assert!(q.rtt_ms.unwrap() < 50.0, "loopback RTT {:?}", q.rtt_ms);
    assert_eq!(q.loss_fraction, 0.0);
    assert_eq!(q.lost, 0);
    assert!(q.jitter_ms < 20.0, "jitter {}", q.jitter_ms);
    assert_eq!(q.remote_loss_fraction, Some(0.0));
    assert!(a.stats().rtcp_sent > 0 && a.stats().rtcp_received > 0);
    assert!(b.stats().rtcp_sent > 0 && b.stats().rtcp_received > 0);
}

#[tokio::test]
async fn rtcp_goes_to_port_plus_one_and_counts_loss() {
    let engine = engine(42_300);
    engine.set_report_interval(Duration::from_millis(100));
    // The far end: RTP on an even port, RTCP on the next one.
    let (far_rtp, far_rtcp) = loop {
        let rtp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port % 2 == 0
            && let Ok(rtcp) = UdpSocket::bind((LOCALHOST, port + 1)).await
        {
            break (rtp, rtcp);
        }
    };
    let session = engine
        .open(far_rtp.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    // 1..=10 and 15..=20 from SSRC 99: 4 lost (RFC 3550 A.1 counts from packet 2).
    for seq in (1u16..=10).chain(15..=20) {
        far_rtp
            .send_to(&rtp(seq, 99, &[0xff; 160]), session.local_addr())
            .await
            .unwrap();
    }
    // Reports arrive from our RTCP port; the first with a block about SSRC 99.
    let ours = SocketAddr::new(LOCALHOST, session.local_port() + 1);
    let block = timeout(WAIT, async {
        loop {
            let (bytes, from) = recv_from(&far_rtcp).await;
            assert_eq!(from, ours);
            let report = rtcp::parse_compound(&bytes).next().unwrap().unwrap();
            assert!(matches!(bytes[1], PT_SR | PT_RR));
            assert_eq!(report.ssrc, session.ssrc());
            if let Some(block) = report.blocks().next() {
                assert!(report.sender.is_some(), "we send RTP, so an SR");
                break block;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(block.ssrc, 99);
    assert_eq!(block.cumulative_lost, 4);
    assert_eq!(block.highest_sequence, 20);
    assert_eq!(block.fraction_lost, (4 * 256 / 19) as u8);
    // The fraction covers one interval, and the next report may already be out.
    let q = session.quality();
    assert_eq!(q.lost, 4);
    assert!(q.loss_fraction == 0.0 || q.loss_fraction == f64::from(block.fraction_lost) / 256.0);
}

fn keys(local: u8, remote: u8) -> SrtpKeys {
    SrtpKeys::new(SrtpSuite::AesCm128HmacSha1_80, &[local; 30], &[remote; 30]).unwrap()
}

#[tokio::test]
async fn srtp_sessions_talk_through_loopback() {
    let engine = engine(42_400);
    engine.set_report_interval(Duration::from_millis(100));
    let placeholder: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let a = engine
        .open_srtp(placeholder, Codec::Pcmu, Some(101), keys(1, 2))
        .unwrap();
    let mut b = engine
        .open_srtp(a.local_addr(), Codec::Pcmu, Some(101), keys(2, 1))
        .unwrap();
    assert!(a.is_srtp() && b.is_srtp());
    a.set_remote(b.local_addr());
    let _done = a.play(Arc::new(Tone::sine(440.0, 2000, 12_000)), false);
    // B decrypts A's packets: A's SSRC, and tone (not silence, not noise) inside.
    let mut heard = 0;
    while heard < 10 {
        let got = timeout(WAIT, b.recv()).await.unwrap().unwrap();
        assert_eq!(got.ssrc, a.ssrc());
        assert_eq!(got.payload.len(), 160);
        if got.payload.iter().any(|&x| x != Codec::Pcmu.silence()) {
            heard += 1;
        }
    }
    // SRTCP too: round trip measured both ways.
    timeout(WAIT, async {
        while a.quality().rtt_ms.is_none() || b.quality().rtt_ms.is_none() {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no SRTCP round trip");
    assert_eq!(b.stats().receive_dropped, 0);
}

#[tokio::test]
async fn srtp_with_the_wrong_key_delivers_nothing() {
    let engine = engine(42_500);
    let placeholder: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let a = engine
        .open_srtp(placeholder, Codec::Pcmu, None, keys(1, 2))
        .unwrap();
    let mut b = engine
        .open_srtp(a.local_addr(), Codec::Pcmu, None, keys(2, 3))
        .unwrap();
    a.set_remote(b.local_addr());
    timeout(WAIT, async {
        while b.stats().receive_dropped < 5 {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(b.try_recv().is_none());
    assert_eq!(b.stats().received, 0);
}

#[tokio::test]
async fn srtp_interoperates_with_a_plain_rfc3711_peer() {
    let engine = engine(42_600);
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut session = engine
        .open_srtp(far.local_addr().unwrap(), Codec::Pcma, None, keys(7, 8))
        .unwrap();
    // What the bridge sends decrypts under its key: PCMA silence.
    let mut peer_in = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &[7; 30]);
    let (mut bytes, from) = recv_from(&far).await;
    assert_eq!(from, session.local_addr());
    assert_eq!(bytes.len(), 12 + 160 + 10);
    let n = peer_in.unprotect_rtp(&mut bytes).unwrap();
    let view = RtpView::parse(&bytes[..n]).unwrap();
    assert_eq!(view.payload_type, 8);
    assert!(view.payload().iter().all(|&b| b == Codec::Pcma.silence()));
    // What the peer protects under its key arrives in the clear.
    let mut peer_out = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &[8; 30]);
    let mut packet = rtp(3, 1234, &[0x42; 160]);
    packet.resize(packet.len() + 10, 0);
    let len = peer_out.protect_rtp(&mut packet, 172).unwrap();
    far.send_to(&packet[..len], session.local_addr())
        .await
        .unwrap();
    let got = timeout(WAIT, session.recv()).await.unwrap().unwrap();
    assert_eq!((got.sequence, got.ssrc), (3, 1234));
    assert!(got.payload.iter().all(|&b| b == 0x42));
    // A plain RTP packet on an SRTP session is dropped.
    far.send_to(&rtp(4, 1234, &[0x42; 160]), session.local_addr())
        .await
        .unwrap();
    timeout(WAIT, async {
        while session.stats().receive_dropped < 1 {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert!(session.try_recv().is_none());
}

#[tokio::test]
async fn the_clock_measures_its_lateness() {
    let engine = engine(42_700);
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let _session = engine
        .open(far.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    for _ in 0..10 {
        recv_from(&far).await;
    }
    let stats = engine.stats();
    let lateness = stats.tick_lateness;
    assert!(lateness.count >= 9, "{lateness:?}");
    assert!(lateness.p50 <= lateness.p99);
    assert!(lateness.max >= Duration::ZERO);
    assert_eq!(stats.send_dropped, 0);
}

#[tokio::test]
async fn with_audio_delivery_off_only_events_are_queued() {
    let engine = engine(42_800);
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut session = engine
        .open(far.local_addr().unwrap(), Codec::Pcmu, Some(101))
        .unwrap();
    let room = engine.create_room(2);
    session.join_room(room).unwrap();
    session.set_deliver_audio(false);
    for seq in 0..5u16 {
        far.send_to(&rtp(seq, 5, &[0x10; 160]), session.local_addr())
            .await
            .unwrap();
    }
    let mut event = rtp(5, 5, &[0x05, 0x0A, 0x00, 0xA0]);
    event[1] = 101;
    far.send_to(&event, session.local_addr()).await.unwrap();
    let got = timeout(WAIT, session.recv()).await.unwrap().unwrap();
    assert_eq!((got.payload_type, got.sequence), (101, 5));
    assert_eq!(&got.payload[..], &[0x05, 0x0A, 0x00, 0xA0]);
    assert_eq!(
        session.stats().received,
        6,
        "audio counted, though not queued"
    );
    assert!(session.try_recv().is_none());
    // The audio went to the room's jitter buffer instead: its depth is published by
    // the shard's clock at its next tick.
    let deadline = tokio::time::Instant::now() + WAIT;
    while session.quality().jitter_buffer_depth_ms < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room's jitter buffer never held the audio"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn rtcp_follows_the_sdp_rtcp_attribute() {
    let engine = engine(42_900);
    engine.set_report_interval(Duration::from_millis(50));
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let rtcp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let session = engine
        .open(far.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    session.set_remote_rtcp(rtcp.local_addr().unwrap());
    let (bytes, from) = recv_from(&rtcp).await;
    assert_eq!(from.port(), session.local_port() + 1);
    let report = rtcp::parse_compound(&bytes).next().unwrap().unwrap();
    assert_eq!(report.ssrc, session.ssrc());
}

#[tokio::test]
async fn closing_sends_rtcp_bye() {
    let engine = engine(43_000);
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let rtcp_far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let session = engine
        .open(far.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    session.set_remote_rtcp(rtcp_far.local_addr().unwrap());
    let ssrc = session.ssrc();
    recv_from(&far).await;
    session.close().await;
    // The default interval is seconds away: this is the closing compound, RR/SR + BYE.
    let (bytes, _) = recv_from(&rtcp_far).await;
    let report = rtcp::parse_compound(&bytes).next().unwrap().unwrap();
    assert_eq!(report.ssrc, ssrc);
    let bye = &bytes[bytes.len() - 8..];
    assert_eq!(bye[1], rtcp::PT_BYE);
    assert_eq!(u32::from_be_bytes(bye[4..8].try_into().unwrap()), ssrc);
}

/// Collects what an [`dialbridge_media::InBandListener`] hears, for the test to read.
#[derive(Debug, Default, Clone)]
struct Heard(Arc<std::sync::Mutex<Vec<i16>>>);

impl dialbridge_media::InBandListener for Heard {
    fn frame(&mut self, pcm: &dialbridge_media::Frame, _at: std::time::Instant) {
        self.0.lock().unwrap().extend_from_slice(pcm);
    }
}

#[tokio::test]
async fn in_a_room_a_listener_hears_the_audio_and_none_is_queued() {
    let engine = engine(43_600);
    let far = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut session = engine
        .open(far.local_addr().unwrap(), Codec::Pcmu, Some(101))
        .unwrap();
    let heard = Heard::default();
    session.set_in_band_listener(Some(Box::new(heard.clone())));
    // Outside a room the audio is still queued (the IVR reads it).
    far.send_to(&rtp(0, 5, &[0x10; 160]), session.local_addr())
        .await
        .unwrap();
    let got = timeout(WAIT, session.recv()).await.unwrap().unwrap();
    assert_eq!((got.payload_type, got.sequence), (0, 0));

    let room = engine.create_room(2);
    session.join_room(room).unwrap();
    // µ-law 0x10 decodes to a loud negative sample: the frames heard are that value.
    for seq in 1..=10u16 {
        far.send_to(&rtp(seq, 5, &[0x10; 160]), session.local_addr())
            .await
            .unwrap();
        sleep(Duration::from_millis(20)).await;
    }
    let mut event = rtp(11, 5, &[0x05, 0x0A, 0x00, 0xA0]);
    event[1] = 101;
    far.send_to(&event, session.local_addr()).await.unwrap();
    let got = timeout(WAIT, session.recv()).await.unwrap().unwrap();
    assert_eq!(
        (got.payload_type, got.sequence),
        (101, 11),
        "the event is queued, the audio before it is not"
    );
    let expected = Codec::Pcmu.decode(0x10);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let samples = heard.0.lock().unwrap().clone();
        if samples.len() >= 160 * 5 {
            assert!(
                samples.iter().all(|&s| s == expected),
                "heard {:?}",
                &samples[..8]
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "heard {} samples",
            samples.len()
        );
        sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(session.stats().received, 12, "every packet counted");
}
