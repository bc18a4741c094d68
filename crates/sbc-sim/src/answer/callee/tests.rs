//! Whole calls of the called phone on a virtual clock: every deadline is jumped to,
//! nothing sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dialbridge_sip::dialog::LocalAddress;
use dialbridge_sip::rsip::{self, Method, Request, Response};

use super::{Action, Answer, Callee, EndedBy, KeyAt, Plan};

const OFFER: &str = "v=0\r\no=bridge 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 20000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n";

fn request(method: &str, cseq: u32, to_tag: Option<&str>, body: &str, extra: &str) -> Request {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    let raw = format!(
        "{method} sip:+14255557000@127.0.0.10:5080 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{method}{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+14255550100@127.0.0.1>;tag=bridge1\r\n\
         To: <sip:+14255557000@127.0.0.10:5080>{to_tag}\r\n\
         Call-ID: dialout-1@127.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:dialbridge@127.0.0.1:5060>\r\n\
         {extra}{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Request::try_from(raw.as_str()).unwrap()
}

fn plan(answer: Answer, keys: Option<&str>, key_at: KeyAt) -> Plan {
    Plan {
        ring: Duration::from_millis(1000),
        answer,
        keys: keys.map(str::to_owned),
        key_at,
        hold: Duration::from_secs(5),
    }
}

fn callee(plan: Plan, now: Instant) -> Callee {
    let local = LocalAddress::new(
        "sbc-sim",
        "127.0.0.10:5080".parse().unwrap(),
        rsip::Transport::Udp,
    );
    let media = "127.0.0.10:30000".parse().unwrap();
    Callee::new(
        request("INVITE", 1, None, OFFER, ""),
        local,
        media,
        plan,
        now,
    )
    .unwrap()
}

fn actions(c: &mut Callee) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

/// The statuses of the INVITE responses among `actions`.
fn statuses(actions: &[Action]) -> Vec<u16> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RespondInvite(r) => Some(r.status_code.code()),
            _ => None,
        })
        .collect()
}

fn to_tag(actions: &[Action]) -> String {
    actions
        .iter()
        .find_map(|a| match a {
            Action::RespondInvite(r) => {
                dialbridge_sip::message::fields::to_tag(&r.headers).map(str::to_owned)
            }
            _ => None,
        })
        .unwrap()
}

/// Jumps to the callee's next deadline.
fn jump(c: &mut Callee) -> Instant {
    let at = c.poll_timeout().expect("a deadline");
    c.handle_timeout(at);
    at
}

fn the_bye(actions: &[Action]) -> Request {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Request(r) if r.method == Method::Bye => Some(r.clone()),
            _ => None,
        })
        .expect("a BYE")
}

fn ok_for(request: &Request) -> Response {
    dialbridge_sip::message::fields::response_for(request, 200, None, None)
}

#[test]
fn rings_answers_keys_after_the_prompt_holds_and_hangs_up() {
    let t0 = Instant::now();
    let mut c = callee(plan(Answer::Accept, Some("1"), KeyAt::AfterPrompt), t0);
    let ringing = actions(&mut c);
    assert_eq!(statuses(&ringing), [180]);
    let tag = to_tag(&ringing);
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1)));

    let answered_at = jump(&mut c);
    let answered = actions(&mut c);
    assert_eq!(statuses(&answered), [200]);
    let Some(Action::RespondInvite(ok)) = answered.first() else {
        panic!("{answered:?}")
    };
    let sdp = String::from_utf8_lossy(&ok.body);
    // The offer's first codec we speak, at our media address.
    assert!(sdp.contains("m=audio 30000 RTP/AVP 8 101"), "{sdp}");
    assert!(sdp.contains("c=IN IP4 127.0.0.10"), "{sdp}");
    assert_eq!(to_tag(&answered), tag, "one dialog from 180 to 200");
    let Some(Action::StartMedia(remote)) = answered.get(1) else {
        panic!("{answered:?}")
    };
    assert_eq!(remote.addr, "127.0.0.1:20000".parse().unwrap());
    assert_eq!(
        (remote.payload_type, remote.telephone_event),
        (8, Some(101))
    );
    assert!(matches!(answered.get(2), Some(Action::ListenForPrompt)));

    c.handle_ack(&request("ACK", 1, Some(&tag), "", ""), answered_at);
    assert!(c.facts().confirmed);
    // Nothing is due until the prompt is heard (the session timer aside).
    let heard_at = answered_at + Duration::from_secs(4);
    c.handle_prompt_heard(heard_at);
    let keyed = actions(&mut c);
    assert!(
        matches!(keyed.as_slice(), [Action::SendKeys(k)] if k == "1"),
        "{keyed:?}"
    );
    c.handle_prompt_heard(heard_at + Duration::from_secs(1));
    assert!(actions(&mut c).is_empty(), "keys once");
    c.handle_keys_sent(true, heard_at + Duration::from_millis(200));
    assert_eq!(
        c.poll_timeout(),
        Some(heard_at + Duration::from_millis(5200))
    );

    let bye_at = jump(&mut c);
    let bye = the_bye(&actions(&mut c));
    assert!(!c.is_over(), "until the BYE is answered");
    c.handle_response(&ok_for(&bye), bye_at);
    assert!(c.is_over());
    let f = c.facts();
    assert_eq!(
        (f.status, f.ended),
        (Some(200), Some((EndedBy::Answerer, bye_at)))
    );
    assert_eq!(f.keyed, Some(("1".to_owned(), heard_at)));
    assert_eq!(
        (f.to.as_str(), f.from.as_str()),
        ("+14255557000", "+14255550100")
    );
    assert!(f.failures.is_empty(), "{:?}", f.failures);
}

#[test]
fn keys_after_a_time_and_the_callers_bye_ends_it_first() {
    let t0 = Instant::now();
    let mut p = plan(
        Answer::Accept,
        Some("1#"),
        KeyAt::After(Duration::from_secs(2)),
    );
    p.ring = Duration::ZERO;
    let mut c = callee(p, t0);
    let answered = actions(&mut c);
    assert_eq!(statuses(&answered), [200], "no ring: no 180");
    let tag = to_tag(&answered);
    c.handle_ack(&request("ACK", 1, Some(&tag), "", ""), t0);
    assert_eq!(jump(&mut c), t0 + Duration::from_secs(2));
    assert!(matches!(actions(&mut c).as_slice(), [Action::SendKeys(k)] if k == "1#"));
    c.handle_keys_sent(true, t0 + Duration::from_millis(2400));
    let bye = request(
        "BYE",
        2,
        Some(&tag),
        "",
        "Reason: Q.850;cause=16;text=\"Normal call clearing\"\r\n",
    );
    let response = c.handle_request(&bye, t0 + Duration::from_secs(3)).unwrap();
    assert_eq!(response.status_code.code(), 200);
    assert!(c.is_over() && c.poll_timeout().is_none());
    let f = c.facts();
    assert_eq!(f.ended.map(|(by, _)| by), Some(EndedBy::Caller));
    assert_eq!(
        f.reason.as_deref(),
        Some("Q.850;cause=16;text=\"Normal call clearing\"")
    );
}

#[test]
fn refuses_after_ringing_in_the_early_dialog() {
    for code in [486, 480, 503, 603] {
        let t0 = Instant::now();
        let mut c = callee(
            plan(Answer::Refuse(code), Some("1"), KeyAt::AfterPrompt),
            t0,
        );
        let tag = to_tag(&actions(&mut c));
        jump(&mut c);
        let refused = actions(&mut c);
        assert_eq!(statuses(&refused), [code]);
        assert_eq!(to_tag(&refused), tag);
        assert!(!refused.iter().any(|a| matches!(a, Action::StartMedia(_))));
        assert!(c.is_over());
        assert_eq!(c.facts().status, Some(code));
        assert_eq!(c.facts().ended.map(|(by, _)| by), Some(EndedBy::Answerer));
        // A CANCEL crossing the refusal changes nothing.
        let cancel = request("CANCEL", 1, None, "", "");
        assert!(
            c.handle_cancel(&cancel, t0 + Duration::from_secs(2))
                .is_none()
        );
    }
}

#[test]
fn never_answers_but_takes_the_cancel_with_487() {
    let t0 = Instant::now();
    let mut c = callee(plan(Answer::Never, None, KeyAt::AfterPrompt), t0);
    assert_eq!(statuses(&actions(&mut c)), [180]);
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    jump(&mut c);
    assert!(actions(&mut c).is_empty(), "still ringing");
    assert_eq!(c.poll_timeout(), None, "rings until the caller gives up");
    let cancel = request("CANCEL", 1, None, "", "Reason: Q.850;cause=19\r\n");
    let response = c
        .handle_cancel(&cancel, t0 + Duration::from_secs(30))
        .unwrap();
    assert_eq!(response.status_code.code(), 487);
    assert!(c.is_over());
    let f = c.facts();
    assert_eq!(
        (f.status, f.reason.as_deref()),
        (Some(487), Some("Q.850;cause=19"))
    );
    assert_eq!(f.ended.map(|(by, _)| by), Some(EndedBy::Caller));
}

#[test]
fn no_ack_ends_the_call_with_bye() {
    let t0 = Instant::now();
    let mut p = plan(Answer::Accept, None, KeyAt::AfterPrompt);
    p.ring = Duration::ZERO;
    let mut c = callee(p, t0);
    actions(&mut c);
    c.handle_no_ack(t0 + Duration::from_secs(32));
    let bye = the_bye(&actions(&mut c));
    c.handle_response(&ok_for(&bye), t0 + Duration::from_secs(33));
    assert!(c.is_over());
    assert_eq!(c.facts().failures, ["no ACK for our 200"]);
    assert!(!c.facts().confirmed);
}

#[test]
fn the_runs_end_gives_480_while_ringing_and_bye_once_answered() {
    let t0 = Instant::now();
    let mut c = callee(plan(Answer::Never, None, KeyAt::AfterPrompt), t0);
    actions(&mut c);
    c.abandon("the run's time was up", t0 + Duration::from_secs(60));
    assert_eq!(statuses(&actions(&mut c)), [480]);
    assert!(c.is_over());
    assert_eq!(c.facts().ended.map(|(by, _)| by), Some(EndedBy::Timeout));
    assert!(c.facts().failures[0].contains("still ringing"));

    let mut c = callee(plan(Answer::Accept, Some("1"), KeyAt::AfterPrompt), t0);
    jump(&mut c);
    actions(&mut c);
    c.abandon("the run's time was up", t0 + Duration::from_secs(60));
    the_bye(&actions(&mut c));
    assert!(c.is_over());
    assert!(c.facts().failures[0].contains("waiting for the ACK"));
}

#[test]
fn a_bye_that_is_never_answered_gives_up() {
    let t0 = Instant::now();
    let mut p = plan(Answer::Accept, None, KeyAt::AfterPrompt);
    p.ring = Duration::ZERO;
    let mut c = callee(p, t0);
    let tag = to_tag(&actions(&mut c));
    c.handle_ack(&request("ACK", 1, Some(&tag), "", ""), t0);
    jump(&mut c);
    the_bye(&actions(&mut c));
    let gave_up = jump(&mut c);
    assert_eq!(
        gave_up,
        t0 + Duration::from_secs(13),
        "hold 5 s, then 8 s for the 200"
    );
    assert!(c.is_over());
    assert_eq!(c.facts().failures, ["no answer to our BYE"]);
    assert_eq!(c.facts().ended.map(|(by, _)| by), Some(EndedBy::PeerGone));
}

#[test]
fn an_offer_without_g711_is_refused_with_488() {
    let g722 = OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 9").replace(
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:9 G722/8000\r\n",
    );
    let local = LocalAddress::new(
        "sbc-sim",
        "127.0.0.10:5080".parse().unwrap(),
        rsip::Transport::Udp,
    );
    let invite = request("INVITE", 1, None, &g722, "");
    let refused = Callee::new(
        invite,
        local,
        "127.0.0.10:30000".parse().unwrap(),
        plan(Answer::Accept, None, KeyAt::AfterPrompt),
        Instant::now(),
    )
    .unwrap_err();
    assert_eq!(refused.status_code.code(), 488);
}
