//! The calling side against the answering side, both ours, message by message through
//! the wire format, on a virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use rsip::{Method, Request, Response, SipMessage};

use super::{Hangup, Output, SessionEnd, SessionEvent, UacPhase, UacSession, UasSession};
use crate::dialog::Dialog;
use crate::dialog::{Caller, LocalAddress, SessionTimerConfig};
use crate::message::{self, fields, uri::NameAddr, uri::Uri};
use crate::sdp::{Direction, LocalMedia, MediaSession, SessionDescription};

fn wire_request(request: &Request) -> Request {
    match message::parse(&message::encode(&SipMessage::Request(request.clone()))).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("a response"),
    }
}

fn wire_response(response: &Response) -> Response {
    match message::parse(&message::encode(&SipMessage::Response(response.clone()))).unwrap() {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => panic!("a request"),
    }
}

fn uac() -> UacSession {
    let local = LocalAddress::new(
        "dialbridge",
        "127.0.0.1:5060".parse().unwrap(),
        rsip::Transport::Udp,
    );
    let caller = Caller::new(
        NameAddr::parse("<sip:+14255550123@127.0.0.1>").unwrap(),
        NameAddr::parse("<sip:+33612345678@127.0.0.30>").unwrap(),
        Uri::parse("sip:+33612345678@127.0.0.30:5060").unwrap(),
        local,
        "127.0.0.1",
    );
    let media = LocalMedia::g711("127.0.0.1".parse().unwrap(), 30000, 1);
    UacSession::new(caller, media, SessionTimerConfig::default())
}

/// The far end's answering session for `invite`, its media bound.
fn uas(invite: &Request, now: Instant) -> UasSession {
    let local = LocalAddress::new(
        "far",
        "127.0.0.30:5060".parse().unwrap(),
        rsip::Transport::Udp,
    );
    let mut uas = UasSession::new(
        wire_request(invite),
        local,
        &SessionTimerConfig::default(),
        now,
    )
    .unwrap();
    uas.accept_offer(LocalMedia::g711("127.0.0.30".parse().unwrap(), 0, 0))
        .unwrap();
    uas.bind_media("127.0.0.30".parse().unwrap(), 40000, 9)
        .unwrap();
    uas
}

fn outputs(session: &mut UacSession) -> Vec<Output> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

fn events(outs: &[Output]) -> Vec<SessionEvent> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn rings_is_answered_acks_and_hangs_up_with_its_reason() {
    let t0 = Instant::now();
    let mut call = uac();
    let invite = call.invite(Vec::new());
    assert!(String::from_utf8_lossy(&invite.body).contains("m=audio 30000"));
    let mut far = uas(&invite, t0);

    let ringing = far.ring(t0 + Duration::from_secs(3), t0);
    call.handle_invite_response(&wire_response(&ringing), t0);
    assert_eq!(call.phase(), UacPhase::Early);
    assert_eq!(
        events(&outputs(&mut call)),
        vec![SessionEvent::Progress(180)]
    );

    let ok = far.answer(t0 + Duration::from_secs(3));
    call.handle_invite_response(&wire_response(&ok), t0 + Duration::from_secs(3));
    let outs = outputs(&mut call);
    let Some(Output::Ack(ack)) = outs.first() else {
        panic!("the ACK first: {outs:?}");
    };
    assert_eq!(events(&outs), vec![SessionEvent::Answered]);
    assert_eq!(call.phase(), UacPhase::Confirmed);
    let negotiated = call.negotiated().unwrap();
    assert_eq!(negotiated.codec.name, "PCMU");
    assert_eq!(negotiated.remote_rtp, "127.0.0.30:40000".parse().unwrap());

    far.handle_ack(&wire_request(ack), t0 + Duration::from_secs(3));
    assert_eq!(far.phase(), super::UasPhase::Confirmed);

    // A retransmitted 200 is ACKed again and changes nothing.
    call.handle_invite_response(&wire_response(&ok), t0 + Duration::from_secs(4));
    let again = outputs(&mut call);
    assert!(matches!(again.as_slice(), [Output::Ack(_)]), "{again:?}");

    let bye = call
        .hang_up("Q.850;cause=16", t0 + Duration::from_secs(60))
        .unwrap();
    assert_eq!(bye.method, Method::Bye);
    let answer = far
        .handle_request(&wire_request(&bye), t0 + Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        answer.status_code.code(),
        200,
        "the far end knows the dialog"
    );
    assert_eq!(far.remote_reason(), Some("Q.850;cause=16"));
    assert_eq!(call.phase(), UacPhase::Terminated);
}

#[test]
fn the_far_end_hangs_up() {
    let t0 = Instant::now();
    let mut call = uac();
    let invite = call.invite(Vec::new());
    let mut far = uas(&invite, t0);
    let ok = far.answer(t0);
    call.handle_invite_response(&wire_response(&ok), t0);
    let _ = outputs(&mut call);
    let Some(Hangup::Bye(bye)) = far.hang_up("SIP;cause=200;text=\"done\"", t0) else {
        panic!("a BYE");
    };
    let answer = call.handle_request(&wire_request(&bye), t0).unwrap();
    assert_eq!(answer.status_code.code(), 200);
    assert_eq!(
        events(&outputs(&mut call)),
        vec![SessionEvent::Ended(SessionEnd::RemoteBye)]
    );
    assert_eq!(call.remote_reason(), Some("SIP;cause=200;text=\"done\""));
}

#[test]
fn a_refusal_a_challenge_and_a_timeout() {
    let t0 = Instant::now();
    let mut busy = uac();
    let invite = busy.invite(Vec::new());
    busy.handle_invite_response(&fields::response_for(&invite, 486, None, None), t0);
    assert_eq!(
        events(&outputs(&mut busy)),
        vec![SessionEvent::Ended(SessionEnd::Refused(486))]
    );

    let mut guarded = uac();
    let first = guarded.invite(Vec::new());
    guarded.handle_invite_response(&fields::response_for(&first, 401, None, None), t0);
    assert!(matches!(
        events(&outputs(&mut guarded)).as_slice(),
        [SessionEvent::Challenged(_)]
    ));
    let second = guarded.invite(Vec::new());
    assert_eq!(
        fields::call_id(&second.headers),
        fields::call_id(&first.headers)
    );
    assert_eq!(guarded.caller().cseq(), 2, "a new CSeq, the same call");

    let mut silent = uac();
    let _ = silent.invite(Vec::new());
    silent.handle_invite_timeout();
    assert_eq!(
        events(&outputs(&mut silent)),
        vec![SessionEvent::Ended(SessionEnd::Refused(408))]
    );
}

#[test]
fn cancel_while_ringing_and_a_200_that_crosses_it() {
    let t0 = Instant::now();
    let mut call = uac();
    let invite = call.invite(Vec::new());
    let mut far = uas(&invite, t0);
    let ringing = far.ring(t0 + Duration::from_secs(9), t0);
    call.handle_invite_response(&wire_response(&ringing), t0);
    let _ = outputs(&mut call);

    let cancel = call.hang_up("SIP;cause=487", t0).unwrap();
    assert_eq!(cancel.method, Method::Cancel);
    assert!(call.hang_up("SIP;cause=487", t0).is_none(), "one CANCEL");
    // The far end answered before the CANCEL reached it: ACK, then BYE at once.
    let ok = far.answer(t0);
    call.handle_invite_response(&wire_response(&ok), t0);
    let outs = outputs(&mut call);
    assert!(matches!(outs.first(), Some(Output::Ack(_))), "{outs:?}");
    assert!(
        matches!(outs.get(1), Some(Output::Request(bye)) if bye.method == Method::Bye),
        "{outs:?}"
    );
    assert_eq!(
        events(&outs),
        vec![SessionEvent::Ended(SessionEnd::Cancelled)]
    );

    // Usually the CANCEL wins: the INVITE's 487 ends the call.
    let mut cancelled = uac();
    let invite = cancelled.invite(Vec::new());
    let _ = cancelled.hang_up("SIP;cause=487", t0).unwrap();
    cancelled.handle_invite_response(&fields::response_for(&invite, 487, None, None), t0);
    assert_eq!(
        events(&outputs(&mut cancelled)),
        vec![SessionEvent::Ended(SessionEnd::Refused(487))]
    );
}

/// A call answered by the far end, ACKed and drained; the far end's dialog, to make its
/// requests with.
fn answered(t0: Instant) -> (UacSession, UasSession, Dialog) {
    let mut call = uac();
    let invite = call.invite(Vec::new());
    let mut far = uas(&invite, t0);
    let ok = far.answer(t0);
    call.handle_invite_response(&wire_response(&ok), t0);
    let outs = outputs(&mut call);
    let Some(Output::Ack(ack)) = outs.first() else {
        panic!("an ACK: {outs:?}");
    };
    far.handle_ack(&wire_request(ack), t0);
    let dialog = far.dialog().clone();
    (call, far, dialog)
}

/// `request` carrying `sdp`.
fn with_sdp(mut request: Request, sdp: &str) -> Request {
    fields::set_body(
        &mut request.headers,
        &mut request.body,
        "application/sdp",
        sdp.as_bytes().to_vec(),
    );
    request
}

/// The far end's SDP (G.711 at 127.0.0.30:`port`), wanting `direction`.
fn far_media(port: u16, direction: Direction) -> MediaSession {
    let mut media = MediaSession::new(LocalMedia::g711("127.0.0.30".parse().unwrap(), port, 7));
    media.set_direction(direction);
    media
}

#[test]
fn a_hold_offer_is_answered_and_negotiated_follows_it() {
    let t0 = Instant::now();
    let (mut call, _far, mut far_dialog) = answered(t0);
    let offer = far_media(40002, Direction::SendOnly).offer();
    let reinvite = with_sdp(far_dialog.make_request(Method::Invite, t0), &offer);
    let ok = call.handle_request(&wire_request(&reinvite), t0).unwrap();
    assert_eq!(ok.status_code.code(), 200);
    let answer = String::from_utf8(ok.body.clone()).unwrap();
    assert!(answer.contains("a=recvonly"), "{answer}");
    let outs = outputs(&mut call);
    assert!(
        matches!(
            events(&outs).as_slice(),
            [SessionEvent::MediaChanged { remote_rtp: Some(a), .. }] if a.port() == 40002
        ),
        "{outs:?}"
    );
    let negotiated = call.negotiated().unwrap();
    assert_eq!(negotiated.remote_rtp, "127.0.0.30:40002".parse().unwrap());
    assert_eq!(negotiated.direction, Direction::RecvOnly);

    // The ACK of that re-INVITE carries nothing new: no answer, nothing changes.
    let ack = far_dialog.make_ack_for(far_dialog.local_seq());
    assert!(call.handle_request(&wire_request(&ack), t0).is_none());
    assert!(outputs(&mut call).is_empty());
}

#[test]
fn an_offerless_reinvite_gets_our_offer_and_its_ack_the_answer() {
    let t0 = Instant::now();
    let (mut call, _far, mut far_dialog) = answered(t0);
    let reinvite = far_dialog.make_request(Method::Invite, t0);
    let ok = call.handle_request(&wire_request(&reinvite), t0).unwrap();
    assert_eq!(ok.status_code.code(), 200);
    let offer = SessionDescription::parse_bytes(&ok.body).unwrap();
    assert!(
        outputs(&mut call).is_empty(),
        "nothing settled before the ACK"
    );

    let answer = far_media(40004, Direction::SendRecv)
        .handle_offer(&offer)
        .unwrap();
    let ack = with_sdp(far_dialog.make_ack_for(far_dialog.local_seq()), &answer.sdp);
    assert!(
        call.handle_request(&wire_request(&ack), t0).is_none(),
        "an ACK is never answered"
    );
    assert!(matches!(
        events(&outputs(&mut call)).as_slice(),
        [SessionEvent::MediaChanged { hold: false, remote_rtp: Some(a), .. }] if a.port() == 40004
    ));
    assert_eq!(
        call.negotiated().unwrap().remote_rtp,
        "127.0.0.30:40004".parse().unwrap()
    );

    // Another one whose ACK forgets the answer: the session must end.
    let reinvite = far_dialog.make_request(Method::Invite, t0);
    let _ = call.handle_request(&wire_request(&reinvite), t0).unwrap();
    call.handle_ack(
        &wire_request(&far_dialog.make_ack_for(far_dialog.local_seq())),
        t0,
    );
    assert_eq!(
        events(&outputs(&mut call)),
        vec![SessionEvent::MustEnd(SessionEnd::BadAnswer)]
    );
}

#[test]
fn a_bare_update_gets_a_200_without_sdp() {
    let t0 = Instant::now();
    let (mut call, _far, mut far_dialog) = answered(t0);
    let update = far_dialog.make_request(Method::Update, t0);
    let ok = call.handle_request(&wire_request(&update), t0).unwrap();
    assert_eq!(ok.status_code.code(), 200);
    assert!(ok.body.is_empty(), "no offer in an UPDATE's 200 (RFC 3311)");
    assert!(outputs(&mut call).is_empty());
}

#[test]
fn info_goes_with_its_body_once_answered_and_an_unknown_method_gets_405() {
    let t0 = Instant::now();
    let mut ringing = uac();
    let _ = ringing.invite(Vec::new());
    assert!(
        ringing
            .request(
                Method::Info,
                Some(("application/dtmf-relay", b"x".to_vec())),
                t0
            )
            .is_none(),
        "no INFO before the answer"
    );

    let (mut call, mut far, mut far_dialog) = answered(t0);
    assert!(
        call.request(Method::Bye, None, t0).is_none(),
        "BYE is hang_up's"
    );
    let body = b"Signal=5\r\nDuration=100\r\n".to_vec();
    let info = call
        .request(
            Method::Info,
            Some(("application/dtmf-relay", body.clone())),
            t0,
        )
        .unwrap();
    assert_eq!(info.method, Method::Info);
    assert_eq!(info.body, body);
    assert_eq!(
        fields::cseq(&info.headers).unwrap().seq,
        2,
        "after the INVITE's"
    );
    let info = wire_request(&info);
    assert!(
        info.headers.iter().any(|h| matches!(h,
            rsip::Header::ContentType(t) if rsip::headers::UntypedHeader::value(t) == "application/dtmf-relay")),
        "{info}"
    );
    assert_eq!(
        far.handle_request(&info, t0).unwrap().status_code.code(),
        200
    );

    let message = far_dialog.make_request(Method::Message, t0);
    let refused = call.handle_request(&wire_request(&message), t0).unwrap();
    assert_eq!(refused.status_code.code(), 405);
    assert!(
        refused.headers.iter().any(|h| matches!(h,
            rsip::Header::Other(n, v) if n == "Allow" && v == UacSession::ALLOW)),
        "{refused}"
    );
}
