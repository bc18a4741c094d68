//! Whole invite sessions on a virtual clock: every deadline is jumped to, nothing sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Header, Method, Request, Response};

use super::{Hangup, Output, SessionEnd, SessionEvent, UasPhase, UasSession};
use crate::dialog::{LocalAddress, SessionTimerConfig};
use crate::sdp::{Codec, LocalMedia};

const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
t=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

const HOLD: &str = "v=0\r\no=alice 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
t=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";

const G729_ONLY: &str = "v=0\r\no=alice 1 3 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
t=0 0\r\nm=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";

fn request(method: &str, cseq: u32, to_tag: &str, extra: &str, body: &str) -> Request {
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    let raw = format!(
        "{method} sip:+14255550123@198.51.100.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{method}{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+14155550100@192.0.2.1>;tag=alice1\r\n\
         To: <sip:+14255550123@198.51.100.1>{to_tag}\r\n\
         Call-ID: session-1@192.0.2.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:+14155550100@192.0.2.1:5060>\r\n\
         {extra}{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Request::try_from(raw.as_str()).unwrap()
}

fn local() -> LocalAddress {
    LocalAddress::new(
        "dialbridge",
        "198.51.100.1:5060".parse().unwrap(),
        rsip::Transport::Udp,
    )
}

/// A session that took `OFFER` (plus `extra` headers) and has its media bound.
fn session(extra: &str, now: Instant) -> UasSession {
    let invite = request("INVITE", 1, "", extra, OFFER);
    let mut session = UasSession::new(invite, local(), &SessionTimerConfig::default(), now)
        .unwrap()
        .with_headers(
            vec![Header::Other("Server".into(), "test".into())],
            vec![Header::Allow(rsip::headers::Allow::new("INVITE, BYE"))],
        );
    let mut media = LocalMedia::g711("198.51.100.1".parse().unwrap(), 0, 0);
    media.codecs.push(Codec::G722);
    let negotiated = session.accept_offer(media).unwrap();
    assert_eq!(negotiated.codec.name, "PCMU");
    session
        .bind_media("198.51.100.1".parse().unwrap(), 30000, 7)
        .unwrap();
    session
}

fn in_dialog(session: &UasSession, method: &str, cseq: u32, extra: &str, body: &str) -> Request {
    let tag = session.dialog().id().local_tag.clone();
    request(method, cseq, &tag, extra, body)
}

fn outputs(session: &mut UasSession) -> Vec<Output> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

fn events(session: &mut UasSession) -> Vec<SessionEvent> {
    outputs(session)
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn code(response: &Response) -> u16 {
    response.status_code.code()
}

/// The first header called `name`, as written.
fn header(response: &Response, name: &str) -> Option<String> {
    response.headers.iter().map(|h| h.to_string()).find(|h| {
        h.split(':')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
    })
}

fn ack(session: &UasSession) -> Request {
    in_dialog(session, "ACK", 1, "", "")
}

#[test]
fn rings_answers_on_time_and_ends_by_the_callers_bye_with_its_reason() {
    let t0 = Instant::now();
    let mut s = session("", t0);
    let ringing = s.ring(t0 + Duration::from_secs(2), t0);
    assert_eq!(code(&ringing), 180);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    s.handle_timeout(t0 + Duration::from_secs(1));
    assert!(s.poll_output().is_none(), "nothing before its time");

    s.handle_timeout(t0 + Duration::from_secs(2));
    let out = outputs(&mut s);
    let Some(Output::RespondInvite(ok)) = out.first() else {
        panic!("the 200 first: {out:?}");
    };
    assert_eq!(code(ok), 200);
    let body = String::from_utf8(ok.body.clone()).unwrap();
    assert!(body.contains("m=audio 30000 RTP/AVP 0 101"), "{body}");
    assert!(header(ok, "Allow").is_some() && header(ok, "Server").is_some());
    assert!(matches!(
        out.get(1),
        Some(Output::Event(SessionEvent::Answered))
    ));
    assert_eq!(s.phase(), UasPhase::Answered);

    s.handle_ack(&ack(&s), t0 + Duration::from_secs(3));
    assert_eq!(events(&mut s), vec![SessionEvent::Confirmed]);

    let bye = in_dialog(
        &s,
        "BYE",
        2,
        "Reason: Q.850;cause=16;text=\"Normal call clearing\"\r\n",
        "",
    );
    let answer = s
        .handle_request(&bye, t0 + Duration::from_secs(60))
        .unwrap();
    assert_eq!(code(&answer), 200);
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::Ended(SessionEnd::RemoteBye)]
    );
    assert_eq!(
        s.remote_reason(),
        Some("Q.850;cause=16;text=\"Normal call clearing\"")
    );
    assert_eq!(s.phase(), UasPhase::Terminated);
    assert_eq!(s.poll_timeout(), None);
    assert!(
        s.hang_up("SIP;cause=200", t0).is_none(),
        "nothing owed after BYE"
    );
}

#[test]
fn the_bridge_hangs_up_with_bye_and_reason_once_answered_and_480_before() {
    let t0 = Instant::now();
    let mut s = session("", t0);
    let _ = s.answer(t0);
    s.handle_ack(&ack(&s), t0);
    let _ = outputs(&mut s);
    let Some(Hangup::Bye(bye)) = s.hang_up("SIP;cause=200;text=\"kicked\"", t0) else {
        panic!("a BYE");
    };
    assert_eq!(bye.method, Method::Bye);
    let text = bye.to_string();
    assert!(
        text.contains("Reason: SIP;cause=200;text=\"kicked\""),
        "{text}"
    );
    assert!(
        text.contains("sip:+14155550100@192.0.2.1:5060"),
        "to the caller's Contact"
    );
    // Its answer changes nothing more.
    let mut ok = crate::message::fields::response_for(&bye, 200, None, None);
    ok.headers.retain(|_| true);
    s.handle_response(&ok, t0);
    assert!(events(&mut s).is_empty());

    let mut ringing = session("", t0);
    let _ = ringing.ring(t0 + Duration::from_secs(5), t0);
    let Some(Hangup::Respond(refusal)) = ringing.hang_up("Q.850;cause=41", t0) else {
        panic!("a final response");
    };
    assert_eq!(code(&refusal), 480);
    assert!(header(&refusal, "Reason").is_some());
    assert_eq!(ringing.poll_timeout(), None, "no answer after hanging up");
}

#[test]
fn cancel_before_the_answer_gets_487_and_after_it_changes_nothing() {
    let t0 = Instant::now();
    let mut s = session("", t0);
    let _ = s.ring(t0 + Duration::from_secs(2), t0);
    let terminated = s.handle_cancel(t0 + Duration::from_millis(500)).unwrap();
    assert_eq!(code(&terminated), 487);
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::Ended(SessionEnd::Cancelled)]
    );
    s.handle_timeout(t0 + Duration::from_secs(2));
    assert!(
        s.poll_output().is_none(),
        "a cancelled call is never answered"
    );

    let mut answered = session("", t0);
    let _ = answered.answer(t0);
    assert!(answered.handle_cancel(t0).is_none());
    assert_eq!(answered.phase(), UasPhase::Answered);
}

#[test]
fn a_missing_ack_asks_the_tu_to_end_the_call() {
    let t0 = Instant::now();
    let mut s = session("", t0);
    let _ = s.answer(t0);
    let _ = outputs(&mut s);
    s.handle_no_ack();
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::MustEnd(SessionEnd::NoAck)]
    );
    assert!(matches!(
        s.hang_up("SIP;cause=408", t0),
        Some(Hangup::Bye(_))
    ));
}

#[test]
fn we_refresh_the_session_and_a_481_to_the_refresh_ends_it() {
    let t0 = Instant::now();
    let mut s = session(
        "Supported: timer\r\nSession-Expires: 120;refresher=uas\r\n",
        t0,
    );
    let ok = s.answer(t0);
    assert!(ok.to_string().contains("refresher=uas"), "{ok}");
    s.handle_ack(&ack(&s), t0);
    let _ = outputs(&mut s);
    let due = s.poll_timeout().unwrap();
    assert_eq!(due, t0 + Duration::from_secs(60), "half the interval");
    s.handle_timeout(due);
    let Some(Output::Request(refresh)) = s.poll_output() else {
        panic!("a refresh");
    };
    assert_eq!(refresh.method, Method::Invite);
    assert!(String::from_utf8_lossy(&refresh.body).contains("m=audio 30000"));

    // A 200 gets its ACK and re-arms the timer.
    let ok = crate::message::fields::response_for(&refresh, 200, None, None);
    s.handle_response(&ok, due);
    let Some(Output::Ack(ack)) = s.poll_output() else {
        panic!("an ACK");
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(s.poll_timeout(), Some(due + Duration::from_secs(60)));

    // The next refresh is answered 481: the peer lost the call.
    s.handle_timeout(due + Duration::from_secs(60));
    let Some(Output::Request(refresh)) = s.poll_output() else {
        panic!("a second refresh");
    };
    let gone = crate::message::fields::response_for(&refresh, 481, None, None);
    s.handle_response(&gone, due + Duration::from_secs(61));
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::Ended(SessionEnd::PeerGone)]
    );
    assert_eq!(s.phase(), UasPhase::Terminated);
}

#[test]
fn a_refresh_the_caller_owes_and_never_sends_expires_the_session() {
    let t0 = Instant::now();
    let mut s = session(
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
        t0,
    );
    let _ = s.answer(t0);
    s.handle_ack(&ack(&s), t0);
    let _ = outputs(&mut s);
    // The caller refreshes once, in time: the deadline moves.
    let refresh = in_dialog(
        &s,
        "UPDATE",
        2,
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
        "",
    );
    let ok = s
        .handle_request(&refresh, t0 + Duration::from_secs(40))
        .unwrap();
    assert_eq!(code(&ok), 200);
    let expiry = s.poll_timeout().unwrap();
    assert!(expiry > t0 + Duration::from_secs(90));
    s.handle_timeout(expiry);
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::MustEnd(SessionEnd::Expired)]
    );
}

#[test]
fn hold_is_an_offer_answered_and_a_bad_offer_changes_nothing() {
    let t0 = Instant::now();
    let mut s = session("", t0);
    let early = in_dialog(&s, "INVITE", 2, "", HOLD);
    let _ = s.answer(t0);
    assert_eq!(
        code(&s.handle_request(&early, t0).unwrap()),
        491,
        "re-INVITE before the ACK"
    );
    s.handle_ack(&ack(&s), t0);
    let _ = outputs(&mut s);

    let hold = in_dialog(&s, "INVITE", 3, "", HOLD);
    let ok = s.handle_request(&hold, t0).unwrap();
    assert_eq!(code(&ok), 200);
    assert!(String::from_utf8_lossy(&ok.body).contains("a=recvonly"));
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::MediaChanged {
            hold: true,
            remote_rtp: Some("192.0.2.1:40000".parse().unwrap()),
            remote_rtcp: Some("192.0.2.1:40001".parse().unwrap()),
        }]
    );

    let other_codec = in_dialog(&s, "INVITE", 4, "", G729_ONLY);
    assert_eq!(code(&s.handle_request(&other_codec, t0).unwrap()), 488);
    assert!(events(&mut s).is_empty());
    assert_eq!(s.phase(), UasPhase::Confirmed);

    let stale = in_dialog(&s, "INFO", 3, "", "");
    assert_eq!(
        code(&s.handle_request(&stale, t0).unwrap()),
        500,
        "CSeq out of order"
    );
}

#[test]
fn an_invite_without_an_offer_is_refused_with_488() {
    let t0 = Instant::now();
    let invite = request("INVITE", 1, "", "", "");
    let s = UasSession::new(invite, local(), &SessionTimerConfig::default(), t0).unwrap();
    assert_eq!(s.offer().unwrap_err().status_code(), 488);
}

#[test]
fn an_offerless_reinvite_gets_our_offer_and_its_ack_brings_the_answer() {
    let t0 = Instant::now();
    let mut s = session("", t0);
    let _ = s.answer(t0);
    s.handle_ack(&ack(&s), t0);
    let _ = outputs(&mut s);
    let reinvite = in_dialog(&s, "INVITE", 2, "", "");
    let ok = s.handle_request(&reinvite, t0).unwrap();
    assert_eq!(code(&ok), 200);
    assert!(
        String::from_utf8_lossy(&ok.body).contains("m=audio 30000"),
        "our offer"
    );

    // The answer in the ACK moves the caller's media; the ACK itself is never answered.
    let moved = OFFER.replace("40000", "40010");
    let answer_ack = in_dialog(&s, "ACK", 2, "", &moved);
    assert!(s.handle_request(&answer_ack, t0).is_none());
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::MediaChanged {
            hold: false,
            remote_rtp: Some("192.0.2.1:40010".parse().unwrap()),
            remote_rtcp: Some("192.0.2.1:40011".parse().unwrap()),
        }]
    );

    // Without a usable answer the call must end.
    let again = in_dialog(&s, "INVITE", 3, "", "");
    assert_eq!(code(&s.handle_request(&again, t0).unwrap()), 200);
    s.handle_ack(&in_dialog(&s, "ACK", 3, "", ""), t0);
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::MustEnd(SessionEnd::BadAnswer)]
    );
}

#[test]
fn the_answering_side_sends_info_only_in_a_confirmed_dialog() {
    let t0 = Instant::now();
    let mut s = session("", t0);
    let body = || Some(("application/json", b"{}".to_vec()));
    assert!(
        s.request(Method::Info, body(), t0).is_none(),
        "not before the answer"
    );
    let _ = s.answer(t0);
    assert!(
        s.request(Method::Info, body(), t0).is_none(),
        "nor before the ACK"
    );
    s.handle_ack(&ack(&s), t0);
    let info = s.request(Method::Info, body(), t0).expect("an INFO");
    assert_eq!(info.method, Method::Info);
    assert_eq!(info.body, b"{}");
    let text = info.to_string();
    assert!(
        text.contains("sip:+14155550100@192.0.2.1:5060"),
        "to the caller's Contact: {text}"
    );
    assert!(text.contains("application/json"), "{text}");
    assert!(
        s.request(Method::Bye, None, t0).is_none(),
        "BYE is hang_up's"
    );
    let _ = s.hang_up("SIP;cause=200", t0);
    assert!(
        s.request(Method::Info, body(), t0).is_none(),
        "not once over"
    );
}
