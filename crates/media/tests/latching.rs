//! Symmetric RTP over real loopback sockets: a latching session follows a caller whose
//! SDP address is not where its RTP comes from, refuses a later injector, and an
//! engine with an IPv6 address carries a session on ::1.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dialbridge_media::rtp::RtpHeader;
use dialbridge_media::{Codec, MediaEngine, RtpView, SrtpKeys, SrtpSuite, Tone};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(5);

fn packet(sequence: u16, payload_type: u8, ssrc: u32) -> Vec<u8> {
    let header = RtpHeader {
        marker: sequence == 1,
        payload_type,
        sequence,
        timestamp: 160 * u32::from(sequence),
        ssrc,
    };
    let payload = [0xFFu8; 160];
    let mut out = [0u8; 172];
    let n = header.write_packet(&payload, &mut out).unwrap();
    out[..n].to_vec()
}

/// The next RTP packet `socket` receives, decoded as PCMU.
async fn recv_pcmu(socket: &UdpSocket) -> (Vec<i16>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("no RTP within 5 s")
        .unwrap();
    let view = RtpView::parse(&buf[..n]).unwrap();
    assert_eq!(view.payload_type, 0);
    let mut frame = [0i16; 160];
    Codec::Pcmu.decode_frame(view.payload(), &mut frame);
    (frame.to_vec(), from)
}

/// Waits (on the engine's 20 ms clock, not a fixed sleep) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("condition not reached within 5 s");
}

#[tokio::test]
async fn latches_to_where_the_media_comes_from_and_refuses_a_later_injector() {
    let engine = MediaEngine::new(LOCALHOST, 44_000..=44_098).unwrap();
    // The caller's SDP says 127.0.0.99:<port> (nothing listens there) and its SIP came
    // from 127.0.0.98: its RTP, from 127.0.0.1:<other>, matches neither, so only the
    // learning window lets it in.
    let phone = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let advertised: SocketAddr = "127.0.0.99:40000".parse().unwrap();
    let mut session = engine
        .open_latching(
            advertised,
            Codec::Pcmu,
            Some(101),
            None,
            "127.0.0.98".parse().unwrap(),
        )
        .unwrap();
    assert!(session.is_latching());
    assert_eq!(session.remote(), Some(advertised));
    let to = session.local_addr();
    let done = session.play(Arc::new(Tone::sine(440.0, 2_000, 12_000)), false);

    phone.send_to(&packet(1, 0, 0x1111), to).await.unwrap();
    let got = timeout(WAIT, session.recv()).await.unwrap().unwrap();
    assert_eq!(got.source, phone.local_addr().unwrap());
    assert_eq!(session.remote(), Some(phone.local_addr().unwrap()));
    assert_eq!(session.stats().latched, 1);
    // The session's audio (the 440 Hz prompt) now reaches the phone.
    let mut heard = false;
    for _ in 0..25 {
        let (pcm, from) = recv_pcmu(&phone).await;
        assert_eq!(from, to);
        if pcm.iter().any(|&s| s.unsigned_abs() > 4000) {
            heard = true;
            break;
        }
    }
    assert!(heard, "the prompt did not reach the latched source");

    // Later, a second socket on the same IP injects RTP with the right payload type
    // (and an RFC 4733 event): refused, counted, and the stream stays with the phone.
    let injector = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    injector.send_to(&packet(2, 0, 0x2222), to).await.unwrap();
    injector.send_to(&packet(3, 101, 0x2222), to).await.unwrap();
    until(|| session.stats().latch_refused >= 2).await;
    assert_eq!(session.remote(), Some(phone.local_addr().unwrap()));
    // The phone's next packet is the next one delivered: nothing of the injector's.
    phone.send_to(&packet(4, 101, 0x1111), to).await.unwrap();
    let got = timeout(WAIT, session.recv()).await.unwrap().unwrap();
    assert_eq!((got.sequence, got.ssrc), (4, 0x1111));
    let stats = engine.stats();
    assert_eq!(stats.rtp_latched, 1);
    assert_eq!(stats.rtp_latch_refused, 2);
    drop(done);
    session.close().await;
}

#[tokio::test]
async fn a_repeated_address_keeps_the_latch_and_a_fixed_session_refuses_strangers() {
    let engine = MediaEngine::new(LOCALHOST, 44_100..=44_198).unwrap();
    let phone = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    // Signalled from 127.0.0.1 with a suspicious SDP: the server sends to the
    // signalling IP with the SDP port; the phone's RTP comes from another port.
    let initial: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut session = engine
        .open_latching(initial, Codec::Pcmu, None, None, LOCALHOST)
        .unwrap();
    let to = session.local_addr();
    phone.send_to(&packet(1, 0, 7), to).await.unwrap();
    timeout(WAIT, session.recv()).await.unwrap().unwrap();
    assert_eq!(session.remote(), Some(phone.local_addr().unwrap()));
    // Hold and resume repeat the address: the latch stays.
    session.set_remote(initial);
    assert_eq!(session.remote(), Some(phone.local_addr().unwrap()));
    recv_pcmu(&phone).await;

    // A trunk without latching: the first packet from another IP is refused however
    // plausible, as it always was.
    let trunk = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut fixed = engine
        .open(trunk.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    assert!(!fixed.is_latching());
    let other = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .unwrap();
    other
        .send_to(&packet(1, 0, 9), fixed.local_addr())
        .await
        .unwrap();
    trunk
        .send_to(&packet(2, 0, 8), fixed.local_addr())
        .await
        .unwrap();
    let got = timeout(WAIT, fixed.recv()).await.unwrap().unwrap();
    assert_eq!(got.ssrc, 8);
    assert_eq!(fixed.stats().latch_refused, 1);
    assert_eq!(fixed.remote(), Some(trunk.local_addr().unwrap()));
}

#[tokio::test]
async fn an_ipv6_session_exchanges_audio_on_the_ipv6_address() {
    let engine =
        MediaEngine::with_ipv6(LOCALHOST, Some(Ipv6Addr::LOCALHOST), 44_200..=44_298).unwrap();
    assert_eq!(engine.address6(), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    let phone = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).await.unwrap();
    let remote = phone.local_addr().unwrap();
    assert_eq!(engine.address_for(remote), IpAddr::V6(Ipv6Addr::LOCALHOST));
    let mut session = engine
        .open_latching(
            remote,
            Codec::Pcmu,
            Some(101),
            None,
            Ipv6Addr::LOCALHOST.into(),
        )
        .unwrap();
    let local = session.local_addr();
    assert_eq!(local.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert!((44_200..=44_298).contains(&local.port()));
    // An IPv4 session of the same engine still binds on IPv4, from its own pool (the
    // same port numbers may be taken on both).
    let v4 = engine
        .open("127.0.0.1:40000".parse().unwrap(), Codec::Pcmu, None)
        .unwrap();
    assert!(v4.local_addr().is_ipv4());
    assert_eq!(engine.ports_in_use(), 2);

    let done = session.play(Arc::new(Tone::sine(440.0, 1_000, 12_000)), false);
    let mut heard = false;
    for _ in 0..25 {
        let (pcm, from) = recv_pcmu(&phone).await;
        assert_eq!(from, local);
        if pcm.iter().any(|&s| s.unsigned_abs() > 4000) {
            heard = true;
            break;
        }
    }
    assert!(heard, "no audio over IPv6");
    phone.send_to(&packet(1, 0, 0x6666), local).await.unwrap();
    let got = timeout(WAIT, session.recv()).await.unwrap().unwrap();
    assert_eq!((got.ssrc, got.source), (0x6666, remote));
    assert_eq!(session.stats().latch_refused, 0);
    drop(done);
    session.close().await;
    drop(v4);
    until(|| engine.ports_in_use() == 0).await;
}

fn keys(local: u8, remote: u8) -> SrtpKeys {
    SrtpKeys::new(SrtpSuite::AesCm128HmacSha1_80, &[local; 30], &[remote; 30]).unwrap()
}

#[tokio::test]
async fn with_srtp_only_a_source_that_authenticates_is_latched_to() {
    let engine = MediaEngine::new(LOCALHOST, 44_300..=44_398).unwrap();
    let advertised: SocketAddr = "127.0.0.99:40000".parse().unwrap();
    // The bridge's side: SDP and signalling both elsewhere than the media will be.
    let bridge = engine
        .open_latching(
            advertised,
            Codec::Pcmu,
            Some(101),
            Some(keys(2, 1)),
            "127.0.0.98".parse().unwrap(),
        )
        .unwrap();
    let _tone = bridge.play(Arc::new(Tone::sine(440.0, 3_000, 12_000)), false);
    // Someone with the wrong key sends first, inside the learning window: its packets
    // do not authenticate, so they neither latch nor get through.
    let wrong = engine
        .open_srtp(bridge.local_addr(), Codec::Pcmu, Some(101), keys(3, 2))
        .unwrap();
    until(|| bridge.stats().receive_dropped >= 3).await;
    assert_eq!(bridge.remote(), Some(advertised));
    drop(wrong);
    // The caller, with the key: latched to at its first packet, and hears the bridge.
    let mut caller = engine
        .open_srtp(bridge.local_addr(), Codec::Pcmu, Some(101), keys(1, 2))
        .unwrap();
    until(|| bridge.remote() == Some(caller.local_addr())).await;
    let mut heard = 0;
    while heard < 5 {
        let got = timeout(WAIT, caller.recv()).await.unwrap().unwrap();
        assert_eq!(got.ssrc, bridge.ssrc());
        if got.payload.iter().any(|&x| x != Codec::Pcmu.silence()) {
            heard += 1;
        }
    }
    assert_eq!(bridge.stats().latched, 1);
}

/// An IPv4 session and an IPv6 one on the same port number, both receiving: each reads
/// its peer's address whole and sends back to it. (The receive thread once shared one
/// `recvmmsg` batch between families, so an IPv6 source read after IPv4 ones came out
/// cut short, and the session latched to a garbled address.)
#[tokio::test]
async fn ipv4_and_ipv6_sessions_side_by_side_read_their_peers_whole() {
    let engine =
        MediaEngine::with_ipv6(LOCALHOST, Some(Ipv6Addr::LOCALHOST), 44_400..=44_498).unwrap();
    let trunk = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let v4 = engine
        .open(trunk.local_addr().unwrap(), Codec::Pcmu, None)
        .unwrap();
    let phone = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).await.unwrap();
    // Announced on another port of ::1, so the first packet latches the session.
    let announced = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 9);
    let v6 = engine
        .open_latching(
            announced,
            Codec::Pcmu,
            None,
            None,
            Ipv6Addr::LOCALHOST.into(),
        )
        .unwrap();
    assert_eq!(v4.local_addr().port(), v6.local_addr().port());
    for sequence in 1..=20 {
        trunk
            .send_to(&packet(sequence, 0, 0x4444), v4.local_addr())
            .await
            .unwrap();
        phone
            .send_to(&packet(sequence, 0, 0x6666), v6.local_addr())
            .await
            .unwrap();
    }
    until(|| v6.stats().received == 20 && v4.stats().received == 20).await;
    assert_eq!(v6.remote(), Some(phone.local_addr().unwrap()));
    assert_eq!(v4.remote(), Some(trunk.local_addr().unwrap()));
    let _playing = v6.play(Arc::new(Tone::sine(440.0, 1_000, 12_000)), false);
    let (_, from) = recv_pcmu(&phone).await;
    assert_eq!(from, v6.local_addr());
}
