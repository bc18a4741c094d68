//! Unit tests for SDP parsing and offer/answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::*;

const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

fn local() -> LocalMedia {
    LocalMedia::g711(OURS, 20000, 4242)
}

/// An offer like a trunk's: PCMU and PCMA, telephone-event at `te`, media-level extras.
fn offer_text(formats: &str, te: u8, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1001 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
         m=audio 30000 RTP/AVP {formats} {te}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\na=ptime:20\r\na={direction}\r\n"
    )
}

fn parse(text: &str) -> SessionDescription {
    SessionDescription::parse(text).unwrap()
}

#[test]
fn parses_a_trunk_offer() {
    let sdp = parse(
        "v=0\r\no=SBC 123456 654321 IN IP4 192.0.2.10\r\ns=SBC call\r\nc=IN IP4 192.0.2.10\r\n\
         b=AS:64\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
         a=ptime:30\r\na=maxptime:150\r\na=rtcp:30011 IN IP4 192.0.2.11\r\na=x-unknown:1\r\n",
    );
    assert_eq!(sdp.origin.session_id, "123456");
    assert_eq!(sdp.origin.session_version, "654321");
    assert_eq!(sdp.session_name, "SBC call");
    let m = &sdp.media[0];
    assert_eq!(
        (m.kind.as_str(), m.port, &m.proto),
        ("audio", 30000, &Proto::RtpAvp)
    );
    assert_eq!(m.payload_types, vec![8, 0, 101]);
    assert_eq!(m.telephone_event_pt(), Some(101));
    assert_eq!(m.fmtp(101), Some("0-16"));
    assert_eq!((m.ptime, m.maxptime), (Some(30), Some(150)));
    let rtcp = m.rtcp.unwrap();
    assert_eq!(rtcp.port, 30011);
    assert_eq!(rtcp.address, Some("192.0.2.11".parse().unwrap()));
    assert_eq!(sdp.direction_of(m), Direction::SendRecv);
}

#[test]
fn answers_with_the_offers_first_supported_codec() {
    let a = answer(&parse(&offer_text("8 0", 101, "sendrecv")), &local()).unwrap();
    assert_eq!(a.media.codec, Codec::PCMA);
    assert_eq!(a.media.payload_type, 8);
    let a = answer(&parse(&offer_text("18 0 8", 101, "sendrecv")), &local()).unwrap();
    assert_eq!(a.media.codec, Codec::PCMU);
    assert_eq!(
        a.media.remote_rtp,
        "192.0.2.10:30000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        a.media.remote_rtcp,
        "192.0.2.10:30001".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(a.media.ptime, 20);
    assert!(
        a.sdp
            .contains("o=dialbridge 4242 4242 IN IP4 127.0.0.1\r\n")
    );
    assert!(a.sdp.contains("c=IN IP4 127.0.0.1\r\n"));
    assert!(a.sdp.contains("m=audio 20000 RTP/AVP 0 101\r\n"));
    assert!(a.sdp.contains("a=rtpmap:0 PCMU/8000\r\n"));
    assert!(a.sdp.contains("a=fmtp:101 0-15\r\n"));
    assert!(a.sdp.contains("a=ptime:20\r\n"));
    assert!(a.sdp.contains("a=sendrecv\r\n"));
    assert!(!a.sdp.contains("PCMA"), "only the chosen codec is answered");
}

#[test]
fn telephone_event_payload_type_comes_from_the_offer() {
    for te in [96u8, 101, 127] {
        let a = answer(&parse(&offer_text("0", te, "sendrecv")), &local()).unwrap();
        assert_eq!(a.media.telephone_event, Some(te));
        assert!(a.sdp.contains(&format!("m=audio 20000 RTP/AVP 0 {te}\r\n")));
        assert!(
            a.sdp
                .contains(&format!("a=rtpmap:{te} telephone-event/8000\r\n"))
        );
    }
}

#[test]
fn no_telephone_event_when_not_offered_or_not_wanted() {
    let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 0 101\r\n";
    // PT 101 without an rtpmap is not telephone-event: it is nothing we know.
    let a = answer(&parse(text), &local()).unwrap();
    assert_eq!(a.media.telephone_event, None);
    assert!(!a.sdp.contains("telephone-event"));
    let mut no_dtmf = local();
    no_dtmf.telephone_event = false;
    let a = answer(&parse(&offer_text("0", 101, "sendrecv")), &no_dtmf).unwrap();
    assert_eq!(a.media.telephone_event, None);
}

#[test]
fn answer_direction_follows_rfc3264_section_6_1() {
    let cases = [
        ("sendrecv", Direction::SendRecv, false),
        ("sendonly", Direction::RecvOnly, true),
        ("recvonly", Direction::SendOnly, false),
        ("inactive", Direction::Inactive, true),
    ];
    for (offered, answered, hold) in cases {
        let a = answer(&parse(&offer_text("0", 101, offered)), &local()).unwrap();
        assert_eq!(a.media.direction, answered, "offer {offered}");
        assert_eq!(a.media.hold, hold, "offer {offered}");
        assert!(a.sdp.contains(&format!("a={}\r\n", answered.as_str())));
    }
}

#[test]
fn session_level_direction_applies_unless_media_overrides() {
    let session = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                   a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n";
    let a = answer(&parse(session), &local()).unwrap();
    assert_eq!(a.media.direction, Direction::RecvOnly);
    assert!(a.media.hold);
    let overridden = format!("{session}a=sendrecv\r\n");
    let a = answer(&parse(&overridden), &local()).unwrap();
    assert_eq!(a.media.direction, Direction::SendRecv);
    assert!(!a.media.hold);
}

#[test]
fn old_style_hold_with_zero_address() {
    let text = offer_text("0", 101, "sendrecv").replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
    let a = answer(&parse(&text), &local()).unwrap();
    assert!(a.media.hold);
    assert_eq!(a.media.direction, Direction::RecvOnly);
    assert!(a.media.remote_rtp.ip().is_unspecified());
}

#[test]
fn media_level_connection_wins() {
    let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 0\r\nc=IN IP6 2001:db8::7\r\n";
    let a = answer(&parse(text), &local()).unwrap();
    assert_eq!(
        a.media.remote_rtp,
        "[2001:db8::7]:4000".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn no_common_codec_is_488() {
    let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 18 96\r\na=rtpmap:18 G729/8000\r\na=rtpmap:96 AMR/8000\r\n";
    let err = answer(&parse(text), &local()).unwrap_err();
    assert_eq!(err, SdpError::NotAcceptable("no common codec"));
    assert_eq!(err.status_code(), 488);
    let video_only = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                      m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
    assert_eq!(
        answer(&parse(video_only), &local())
            .unwrap_err()
            .status_code(),
        488
    );
}

#[test]
fn unsupported_m_lines_are_rejected_with_port_zero() {
    let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                m=audio 4000 RTP/AVP 18\r\n\
                m=audio 4002 RTP/AVP 8\r\n\
                m=audio 4004 RTP/AVP 0\r\n";
    let a = answer(&parse(text), &local()).unwrap();
    assert_eq!(a.media.codec, Codec::PCMA);
    assert_eq!(a.media.remote_rtp.port(), 4002);
    let answered = parse(&a.sdp);
    let ports: Vec<(&str, u16)> = answered
        .media
        .iter()
        .map(|m| (m.kind.as_str(), m.port))
        .collect();
    assert_eq!(
        ports,
        vec![("video", 0), ("audio", 0), ("audio", 20000), ("audio", 0)]
    );
    assert_eq!(answered.media[0].formats, vec!["96"]);
}

#[test]
fn dynamic_codecs_keep_the_offers_payload_type() {
    let mut wide = local();
    wide.codecs = vec![Codec::OPUS, Codec::G722, Codec::PCMU];
    let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 98 9 0\r\na=rtpmap:98 OPUS/48000/2\r\n";
    let a = answer(&parse(text), &wide).unwrap();
    assert_eq!((a.media.codec, a.media.payload_type), (Codec::OPUS, 98));
    assert!(a.sdp.contains("a=rtpmap:98 opus/48000/2\r\n"));
    assert!(a.sdp.contains("a=fmtp:98 minptime=10;useinbandfec=1\r\n"));
    // Mono opus is not the RFC 7587 form: skipped, G.722 chosen by static PT.
    let mono = text.replace("OPUS/48000/2", "opus/48000");
    let a = answer(&parse(&mono), &wide).unwrap();
    assert_eq!((a.media.codec, a.media.payload_type), (Codec::G722, 9));
}

/// RFC 4733 §2.1: events on the audio codec's clock when offered (an Opus softphone's
/// `telephone-event/48000`), else the 8 kHz ones; answered at the clock chosen.
#[test]
fn telephone_event_follows_the_codecs_clock() {
    let mut wide = local();
    wide.codecs = vec![Codec::PCMU, Codec::OPUS];
    let head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";
    let only_48k = format!(
        "{head}m=audio 4000 RTP/AVP 111 110\r\na=rtpmap:111 opus/48000/2\r\n\
         a=rtpmap:110 telephone-event/48000\r\na=fmtp:110 0-16\r\n"
    );
    let a = answer(&parse(&only_48k), &wide).unwrap();
    assert_eq!(a.media.telephone_event, Some(110));
    assert!(
        a.sdp.contains("a=rtpmap:110 telephone-event/48000\r\n"),
        "{}",
        a.sdp
    );

    let both = format!(
        "{head}m=audio 4000 RTP/AVP 111 0 101 110\r\na=rtpmap:111 opus/48000/2\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=rtpmap:110 telephone-event/48000\r\n"
    );
    let a = answer(&parse(&both), &wide).unwrap();
    assert_eq!(
        (a.media.codec, a.media.telephone_event),
        (Codec::OPUS, Some(110))
    );
    assert!(!a.sdp.contains("telephone-event/8000"), "{}", a.sdp);
    // PCMU first: the 8 kHz events go with it.
    let pcmu_first = both.replace("RTP/AVP 111 0", "RTP/AVP 0 111");
    let a = answer(&parse(&pcmu_first), &wide).unwrap();
    assert_eq!(
        (a.media.codec, a.media.telephone_event),
        (Codec::PCMU, Some(101))
    );
    assert!(
        a.sdp.contains("a=rtpmap:101 telephone-event/8000\r\n"),
        "{}",
        a.sdp
    );
    // Opus with only 8 kHz events (what sbc-sim and many trunks offer): those.
    let only_8k = both.replace("a=rtpmap:110 telephone-event/48000\r\n", "");
    let a = answer(&parse(&only_8k), &wide).unwrap();
    assert_eq!(
        (a.media.codec, a.media.telephone_event),
        (Codec::OPUS, Some(101))
    );
}

const SAVP_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
    m=audio 4000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4\r\n\
    a=crypto:2 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20 UNENCRYPTED_SRTP\r\n";

#[test]
fn parses_sdes_crypto_lines() {
    let sdp = parse(SAVP_OFFER);
    let m = &sdp.media[0];
    assert_eq!(m.proto, Proto::RtpSavp);
    assert_eq!(m.crypto.len(), 2);
    let c = &m.crypto[0];
    assert_eq!((c.tag, c.suite.as_str()), (1, "AES_CM_128_HMAC_SHA1_80"));
    let k = &c.key_params[0];
    assert_eq!(k.key_salt, "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR");
    assert_eq!(k.lifetime.as_deref(), Some("2^20"));
    assert_eq!(k.mki.as_deref(), Some("1:4"));
    assert_eq!(m.crypto[1].session_params, vec!["UNENCRYPTED_SRTP"]);
    assert!(
        !format!("{c:?}").contains("PS1uQ"),
        "key must not be in Debug"
    );
}

#[test]
fn answers_rtp_savp_only_with_a_key() {
    let offer = parse(SAVP_OFFER);
    let err = answer(&offer, &local()).unwrap_err();
    assert_eq!(
        err,
        SdpError::NotAcceptable("RTP/SAVP offered but SRTP is not configured")
    );
    let mut srtp = local();
    srtp.sdes_inline_key = Some("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz".to_owned());
    let a = answer(&offer, &srtp).unwrap();
    assert!(a.sdp.contains("m=audio 20000 RTP/SAVP 0 101\r\n"));
    assert!(a.sdp.contains(
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    ));
    assert_eq!(a.media.offered_crypto.len(), 2);
    assert_eq!(a.media.remote_crypto.as_ref().map(|c| c.tag), Some(1));
    assert!(!format!("{srtp:?}").contains("WVNf"));
    assert!(
        !format!("{a:?}").contains("WVNf"),
        "answer Debug leaks the key"
    );
    let mut session = MediaSession::new(srtp);
    let _ = session.offer();
    assert!(!format!("{session:?}").contains("WVNf"));
    let redacted = redact_sdes_keys(&a.sdp);
    assert!(redacted.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:***\r\n"));
    assert_eq!(
        redact_sdes_keys("a=crypto:1 S inline:abc|2^20;inline:def|1:4"),
        "a=crypto:1 S inline:***|2^20;inline:***|1:4"
    );
    assert!(matches!(
        redact_sdes_keys("m=audio"),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn crypto_with_session_parameters_is_not_chosen() {
    let text = SAVP_OFFER
        .replace(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP",
        )
        .replace("F8_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
        .replace("|2^20 UNENCRYPTED_SRTP", "|2^20");
    let mut srtp = local();
    srtp.sdes_inline_key = Some("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz".to_owned());
    let a = answer(&parse(&text), &srtp).unwrap();
    assert_eq!(a.media.remote_crypto.as_ref().map(|c| c.tag), Some(2));
    assert!(
        a.sdp
            .contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:WVNf")
    );
    let only_unencrypted = text.replace("a=crypto:2", "a=x-crypto:2");
    assert_eq!(
        answer(&parse(&only_unencrypted), &srtp).unwrap_err(),
        SdpError::NotAcceptable("no supported a=crypto suite")
    );
}

#[test]
fn malformed_sdp_is_refused_with_a_reason() {
    let good = offer_text("0", 101, "sendrecv");
    let cases: Vec<(String, &str)> = vec![
        (good.replace("v=0\r\n", ""), "first line is not v=0"),
        (good.replace("v=0", "v=1"), "first line is not v=0"),
        (
            good.replace("o=- 1001 1 IN IP4 192.0.2.10\r\n", ""),
            "m= before o=",
        ),
        (
            good.replace("o=- 1001 1", "o=- abc 1"),
            "o= sess-id or sess-version not numeric",
        ),
        (
            good.replace("30000 RTP/AVP", "http RTP/AVP"),
            "m= port is not a number",
        ),
        (
            good.replace("30000 RTP/AVP", "70000 RTP/AVP"),
            "m= port above 65535",
        ),
        (
            good.replace("RTP/AVP 0", "RTP/AVP 200"),
            "payload type is not 0-127",
        ),
        (
            good.replace("RTP/AVP 0 101", "RTP/AVP"),
            "m= line without formats",
        ),
        (
            good.replace("c=IN IP4 192.0.2.10", "c=IN IP4 sbc.example.com"),
            "c= address is not an IP literal",
        ),
        (
            good.replace("c=IN IP4 192.0.2.10", "c=IN IP6 192.0.2.10"),
            "c= address does not match its address type",
        ),
        (
            good.replace("c=IN IP4 192.0.2.10\r\n", ""),
            "media without c= line",
        ),
        (
            good.replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMU/fast"),
            "a=rtpmap clock rate",
        ),
        (
            good.replace("a=ptime:20", "a=ptime:0"),
            "a=ptime/maxptime is not 1-1000 ms",
        ),
        (good.replace("a=sendrecv", "garbage"), "not <type>=<value>"),
        (
            format!("{good}a=rtpmap:8 PCMA/8000\r\n"),
            "duplicate a=rtpmap",
        ),
        (
            format!("{good}m=audio 1 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 key:abc\r\n"),
            "a=crypto key method is not inline",
        ),
        (String::new(), "empty"),
    ];
    for (text, reason) in cases {
        match SessionDescription::parse(&text) {
            Err(SdpError::Malformed { reason: r, .. }) => assert_eq!(r, reason, "{text:?}"),
            other => panic!("expected Malformed({reason}), got {other:?} for {text:?}"),
        }
    }
    let err = SessionDescription::parse_bytes(b"v=0\r\no=\xff\r\n").unwrap_err();
    assert_eq!(err.status_code(), 400);
}

#[test]
fn malformed_error_names_the_line() {
    let text = offer_text("0", 101, "sendrecv").replace("a=ptime:20", "a=ptime:x");
    let err = SessionDescription::parse(&text).unwrap_err();
    assert!(
        matches!(err, SdpError::Malformed { line: 11, .. }),
        "{err:?}"
    );
}

#[test]
fn absurd_sizes_are_refused() {
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_SDP_LEN / 5));
    assert_eq!(
        SessionDescription::parse(&huge),
        Err(SdpError::TooLarge("body"))
    );
    let lines = format!("v=0\r\n{}", "k=x\r\n".repeat(MAX_LINES));
    assert_eq!(
        SessionDescription::parse(&lines),
        Err(SdpError::TooLarge("lines"))
    );
    let media = format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\n{}",
        "m=audio 4000 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1)
    );
    assert!(matches!(
        SessionDescription::parse(&media),
        Err(SdpError::Malformed {
            reason: "too many m= lines",
            ..
        })
    ));
    let formats: Vec<String> = (0..=MAX_FORMATS).map(|i| (i % 128).to_string()).collect();
    let text = format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP {}\r\n",
        formats.join(" ")
    );
    assert!(matches!(
        SessionDescription::parse(&text),
        Err(SdpError::Malformed {
            reason: "too many formats on m= line",
            ..
        })
    ));
}

#[test]
fn tolerates_bare_lf_missing_s_and_unknown_lines() {
    let text = "v=0\no=- 1 1 IN IP4 192.0.2.1\nc=IN IP4 192.0.2.1\ni=info\nz=0 0\n\
                m=audio 4000 RTP/AVP 0\nb=TIAS:64000\nk=prompt\na=label:1\na=rtcp-mux\n\n";
    let sdp = parse(text);
    assert_eq!(sdp.session_name, "");
    assert_eq!(sdp.timing, "0 0");
    assert!(sdp.media[0].rtcp_mux);
    let a = answer(&sdp, &local()).unwrap();
    assert_eq!(
        a.media.remote_rtcp.port(),
        4001,
        "rtcp-mux is not negotiated"
    );
    assert!(!a.sdp.contains("rtcp-mux"));
}

#[test]
fn reinvite_version_grows_only_when_the_answer_changes() {
    let mut session = MediaSession::new(local());
    let first = session
        .handle_offer(&parse(&offer_text("0", 101, "sendrecv")))
        .unwrap();
    assert!(first.sdp.contains("o=dialbridge 4242 4242 "));
    // A session refresh re-INVITE with the same offer: same answer, same version.
    let again = session
        .handle_offer(&parse(&offer_text("0", 101, "sendrecv")))
        .unwrap();
    assert_eq!(again.sdp, first.sdp);
    // The peer holds: our answer becomes recvonly, version + 1.
    let hold = session
        .handle_offer(&parse(&offer_text("0", 101, "sendonly")))
        .unwrap();
    assert!(hold.media.hold);
    assert!(hold.sdp.contains("o=dialbridge 4242 4243 ") && hold.sdp.contains("a=recvonly"));
    // Still held, a different codec order in the offer, same answer: no change.
    let held = session
        .handle_offer(&parse(&offer_text("0 8", 101, "sendonly")))
        .unwrap();
    assert!(held.sdp.contains("o=dialbridge 4242 4243 "));
    // Resume.
    let resume = session
        .handle_offer(&parse(&offer_text("0", 101, "sendrecv")))
        .unwrap();
    assert!(!resume.media.hold);
    assert!(resume.sdp.contains("o=dialbridge 4242 4244 ") && resume.sdp.contains("a=sendrecv"));
    // A refused offer changes nothing.
    let bad =
        "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18\r\n";
    assert!(session.handle_offer(&parse(bad)).is_err());
    assert_eq!(session.version(), 4244);
    let same = session
        .handle_offer(&parse(&offer_text("0", 101, "sendrecv")))
        .unwrap();
    assert_eq!(same.sdp, resume.sdp);
}

#[test]
fn our_offer_and_the_peers_answer() {
    let mut session = MediaSession::new(local());
    let ours = session.offer();
    let parsed = parse(&ours);
    let m = &parsed.media[0];
    assert_eq!(m.payload_types, vec![0, 8, 101]);
    assert_eq!(m.telephone_event_pt(), Some(101));
    assert_eq!(parsed.origin.session_version, "4242");

    let reply = "v=0\r\no=peer 9 9 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
                 m=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\n";
    let n = session.handle_answer(&parse(reply)).unwrap();
    assert_eq!(
        (n.codec, n.payload_type, n.telephone_event),
        (Codec::PCMA, 8, Some(101))
    );
    assert_eq!(
        n.remote_rtp,
        "192.0.2.5:7000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        (n.ptime, n.direction, n.hold),
        (30, Direction::SendRecv, false)
    );

    // We hold the peer: a new offer, sendonly, version + 1.
    session.set_direction(Direction::SendOnly);
    let hold = session.offer();
    assert!(hold.contains("a=sendonly\r\n") && hold.contains("o=dialbridge 4242 4243 "));
    let held = reply.replace("a=ptime:30", "a=recvonly");
    let n = session.handle_answer(&parse(&held)).unwrap();
    assert_eq!(n.direction, Direction::SendOnly);
    // Offering the same again keeps the version.
    assert_eq!(session.offer(), hold);
}

#[test]
fn answers_to_our_offer_that_do_not_fit() {
    let l = local();
    let head = "v=0\r\no=peer 9 9 IN IP4 192.0.2.5\r\nc=IN IP4 192.0.2.5\r\n";
    let rejected = format!("{head}m=audio 0 RTP/AVP 0\r\n");
    assert_eq!(
        handle_answer(&l, &parse(&rejected)),
        Err(SdpError::NotAcceptable("peer rejected the audio stream"))
    );
    let foreign = format!("{head}m=audio 7000 RTP/AVP 18\r\n");
    assert!(matches!(
        handle_answer(&l, &parse(&foreign)),
        Err(SdpError::AnswerMismatch(_))
    ));
    let two = format!("{head}m=audio 7000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n");
    assert!(matches!(
        handle_answer(&l, &parse(&two)),
        Err(SdpError::AnswerMismatch(_))
    ));
    let savp = format!("{head}m=audio 7000 RTP/SAVP 0\r\n");
    assert!(matches!(
        handle_answer(&l, &parse(&savp)),
        Err(SdpError::AnswerMismatch(_))
    ));
}

#[test]
fn we_hold_when_answering() {
    let mut l = local();
    l.direction = Direction::SendOnly;
    let a = answer(&parse(&offer_text("0", 101, "sendrecv")), &l).unwrap();
    assert_eq!(a.media.direction, Direction::SendOnly);
    assert!(!a.media.hold);
    let a = answer(&parse(&offer_text("0", 101, "sendonly")), &l).unwrap();
    assert_eq!(a.media.direction, Direction::Inactive);
}

#[test]
fn answers_echo_timing_and_parse_back() {
    let text = offer_text("0", 101, "sendrecv").replace("t=0 0", "t=3034423619 3042462419");
    let a = answer(&parse(&text), &local()).unwrap();
    assert!(a.sdp.contains("t=3034423619 3042462419\r\n"));
    let back = parse(&a.sdp);
    assert_eq!(back.media[0].payload_types, vec![0, 101]);
    let ipv6 = LocalMedia::g711("::1".parse().unwrap(), 20002, 7);
    let o = offer(&ipv6);
    assert!(o.contains("c=IN IP6 ::1\r\n"));
    assert_eq!(parse(&o).connection.map(|c| c.address), Some(ipv6.address));
}

proptest::proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(s in "(v=0\r\n)?([a-z]=[ -~]{0,40}\r?\n){0,20}") {
        if let Ok(sdp) = SessionDescription::parse(&s) {
            let _ = answer(&sdp, &local());
            let _ = handle_answer(&local(), &sdp);
        }
    }

    #[test]
    fn mutated_offers_never_panic(cut in 0usize..400, byte in 0u8..128) {
        let mut text = offer_text("0 8", 101, "sendonly").into_bytes();
        if let Some(b) = text.get_mut(cut) {
            *b = byte;
        }
        if let Ok(sdp) = SessionDescription::parse_bytes(&text) {
            let _ = answer(&sdp, &local());
        }
    }
}
