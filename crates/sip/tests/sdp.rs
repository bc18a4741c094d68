//! Public-API tests of SDP offer/answer with offers shaped like real peers'.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use dialbridge_sip::sdp::{
    Codec, Direction, LocalMedia, MediaSession, SdpError, SessionDescription, answer,
};

fn local() -> LocalMedia {
    LocalMedia::g711("127.0.0.1".parse().unwrap(), 20000, 1_700_000_000)
}

/// A softphone offer in baresip's shape: opus first, many attributes we ignore.
const SOFTPHONE_OFFER: &str = "v=0\r\n\
o=- 2104213467 3128573921 IN IP4 192.168.1.20\r\n\
s=-\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=tool:baresip 3.10.0\r\n\
m=audio 10002 RTP/AVP 96 9 0 8 101\r\n\
b=AS:96\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp-rsize\r\n\
a=ssrc:1234567 cname:abc@host\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ptime:20\r\n";

/// An SBC offer in a trunk's shape: SRTP, rtcp-mux, wide session ids, PCMA first.
const TRUNK_OFFER: &str = "v=0\r\n\
o=AudiocodesGW 1903465528 1903465470 IN IP4 198.51.100.7\r\n\
s=Phone-Call\r\n\
c=IN IP4 198.51.100.7\r\n\
t=0 0\r\n\
m=audio 6010 RTP/SAVP 8 0 18 127\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:127 telephone-event/8000\r\n\
a=fmtp:127 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp:6011\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:QU5UaGlzSXNOb3RBUmVhbEtleUJ1dEl0SXNCYXNlNjQ|2^31\r\n\
a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:QW5vdGhlck9uZVRoYXRJc05vdEFSZWFsS2V5QXRBbGw|2^31\r\n";

#[test]
fn softphone_offer_gets_g711_and_its_telephone_event() {
    let offer = SessionDescription::parse(SOFTPHONE_OFFER).unwrap();
    let a = answer(&offer, &local()).unwrap();
    assert_eq!(a.media.codec, Codec::PCMU);
    assert_eq!(a.media.telephone_event, Some(101));
    assert_eq!(
        a.media.remote_rtp,
        "192.168.1.20:10002".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(a.media.direction, Direction::SendRecv);
    let back = SessionDescription::parse(&a.sdp).unwrap();
    assert_eq!(back.media.len(), 1);
    assert_eq!(back.media[0].payload_types, vec![0, 101]);
    assert_eq!(back.origin.session_version, "1700000000");
}

#[test]
fn trunk_srtp_offer_with_and_without_keys() {
    let offer = SessionDescription::parse_bytes(TRUNK_OFFER.as_bytes()).unwrap();
    let err = answer(&offer, &local()).unwrap_err();
    assert_eq!(err.status_code(), 488);
    let as_crate: dialbridge_sip::Error = err.into();
    assert!(as_crate.to_string().contains("SRTP"));

    let mut srtp = local();
    srtp.sdes_inline_key = Some("T3VyT3duS2V5VGhhdElzVGhpcnR5Qnl0ZXNMb25nISE".to_owned());
    let a = answer(&offer, &srtp).unwrap();
    assert_eq!((a.media.codec, a.media.payload_type), (Codec::PCMA, 8));
    assert_eq!(a.media.telephone_event, Some(127));
    assert_eq!(a.media.remote_rtcp.port(), 6011);
    let chosen = a.media.remote_crypto.as_ref().unwrap();
    assert_eq!(
        (chosen.tag, chosen.suite.as_str()),
        (2, "AES_CM_128_HMAC_SHA1_80")
    );
    assert_eq!(
        chosen.key_params[0].key_salt,
        "QU5UaGlzSXNOb3RBUmVhbEtleUJ1dEl0SXNCYXNlNjQ"
    );
    assert!(a.sdp.contains("m=audio 20000 RTP/SAVP 8 127\r\n"));
    assert!(
        a.sdp
            .contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:T3Vy")
    );
}

#[test]
fn hold_and_resume_over_a_dialog() {
    let mut session = MediaSession::new(local());
    let offer =
        SessionDescription::parse(TRUNK_OFFER.replace("RTP/SAVP", "RTP/AVP").as_str()).unwrap();
    let first = session.handle_offer(&offer).unwrap();
    assert!(!first.media.hold);
    let held_text = TRUNK_OFFER
        .replace("RTP/SAVP", "RTP/AVP")
        .replace("c=IN IP4 198.51.100.7", "c=IN IP4 0.0.0.0")
        .replace("1903465470", "1903465471");
    let held = session
        .handle_offer(&SessionDescription::parse(&held_text).unwrap())
        .unwrap();
    assert!(held.media.hold);
    assert_eq!(held.media.direction, Direction::RecvOnly);
    assert_eq!(session.version(), 1_700_000_001);
    let resumed = session.handle_offer(&offer).unwrap();
    assert_eq!(resumed.media.direction, Direction::SendRecv);
    assert_eq!(session.version(), 1_700_000_002);
}

#[test]
fn garbage_is_a_400_not_a_panic() {
    for text in [
        "",
        "hello",
        "v=0\r\n\0",
        "v=0\r\no=",
        "v=0\r\nm=audio 1 RTP/AVP 0\r\n",
    ] {
        let err = SessionDescription::parse(text).unwrap_err();
        assert!(
            matches!(err, SdpError::Malformed { .. }),
            "{text:?}: {err:?}"
        );
        assert_eq!(err.status_code(), 400);
    }
}
