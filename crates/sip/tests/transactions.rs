//! The transaction layer through its public API, on a virtual clock: every test jumps time
//! to `poll_timeout()` and asserts on transmits and events. No sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dialbridge_sip::rsip::{self, Method, Request, Response, SipMessage};
use dialbridge_sip::transaction::{
    Event, LayerConfig, PeerAddr, Refusal, TransactionKey, TransactionLayer, TransportKind,
    new_branch,
};
use std::time::{Duration, Instant};

fn peer(transport: TransportKind) -> PeerAddr {
    PeerAddr {
        transport,
        addr: "192.0.2.1:5060".parse().unwrap(),
        connection: (transport != TransportKind::Udp).then_some(7),
    }
}

fn udp() -> PeerAddr {
    peer(TransportKind::Udp)
}

fn request(method: &str, branch: &str, cseq: u32) -> Request {
    let raw = format!(
        "{method} sip:bridge@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+14155550100@sbc.example.com>;tag=from1\r\n\
         To: <sip:bridge@example.com>\r\n\
         Call-ID: call-1@sbc.example.com\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:+14155550100@192.0.2.1:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Request::try_from(raw.as_str()).unwrap()
}

fn respond(req: &Request, code: u16) -> Response {
    let tag = (code > 100).then_some("to1");
    dialbridge_sip::message::fields::response_for(req, code, None, tag)
}

fn transmits(layer: &mut TransactionLayer<PeerAddr>) -> Vec<SipMessage> {
    std::iter::from_fn(|| layer.poll_transmit())
        .map(|t| t.message)
        .collect()
}

fn codes(layer: &mut TransactionLayer<PeerAddr>) -> Vec<u16> {
    transmits(layer)
        .into_iter()
        .map(|m| match m {
            SipMessage::Response(r) => r.status_code.code(),
            SipMessage::Request(r) => panic!("unexpected request {}", r.method),
        })
        .collect()
}

fn events(layer: &mut TransactionLayer<PeerAddr>) -> Vec<Event<PeerAddr>> {
    std::iter::from_fn(|| layer.poll_event()).collect()
}

fn new_request_key(
    layer: &mut TransactionLayer<PeerAddr>,
) -> dialbridge_sip::transaction::ServerKey {
    match events(layer).as_slice() {
        [Event::NewRequest { key, .. }] => key.clone(),
        other => panic!("expected one NewRequest, got {other:?}"),
    }
}

/// Jumps to each deadline until none is left; returns the offsets (ms) it fired at.
fn run_timers(layer: &mut TransactionLayer<PeerAddr>, base: Instant) -> Vec<u128> {
    let mut fired = Vec::new();
    while let Some(at) = layer.poll_timeout() {
        layer.handle_timeout(at);
        fired.push((at - base).as_millis());
    }
    fired
}

#[test]
fn retransmitted_invite_is_answered_by_the_transaction_not_handed_up_twice() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let invite = request("INVITE", "z9hG4bKinv1", 1);
    layer.handle_request(invite.clone(), udp(), base);
    let key = new_request_key(&mut layer);
    assert_eq!(codes(&mut layer), vec![100]);
    layer.handle_request(invite.clone(), udp(), base + Duration::from_millis(500));
    assert!(events(&mut layer).is_empty());
    assert_eq!(codes(&mut layer), vec![100]);
    layer
        .respond(
            &key,
            respond(&invite, 180),
            base + Duration::from_millis(600),
        )
        .unwrap();
    layer.handle_request(invite, udp(), base + Duration::from_secs(1));
    assert_eq!(codes(&mut layer), vec![180, 180]);
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.stats().retransmissions_absorbed, 2);
}

#[test]
fn cancel_is_answered_200_and_the_tu_answers_the_invite_487() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let invite = request("INVITE", "z9hG4bKinv2", 1);
    layer.handle_request(invite.clone(), udp(), base);
    let key = new_request_key(&mut layer);
    layer.respond(&key, respond(&invite, 180), base).unwrap();
    transmits(&mut layer);

    let cancel = request("CANCEL", "z9hG4bKinv2", 1);
    layer.handle_request(cancel, udp(), base + Duration::from_secs(2));
    let sent = transmits(&mut layer);
    let [SipMessage::Response(ok)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(ok.status_code.code(), 200);
    use rsip::prelude::*;
    assert_eq!(ok.cseq_header().unwrap().method().unwrap(), Method::Cancel);
    // §9.2: same To tag as the INVITE's response.
    assert_eq!(
        ok.to_header().unwrap().tag().unwrap().unwrap().value(),
        "to1"
    );
    let evs = events(&mut layer);
    let [Event::Cancel { invite_key, .. }] = evs.as_slice() else {
        panic!("{evs:?}")
    };
    assert_eq!(invite_key, &key);
    layer
        .respond(&key, respond(&invite, 487), base + Duration::from_secs(2))
        .unwrap();
    assert_eq!(codes(&mut layer), vec![487]);
    // The ACK for the 487 matches by branch and ends it after Timer I.
    layer.handle_request(
        request("ACK", "z9hG4bKinv2", 1),
        udp(),
        base + Duration::from_secs(3),
    );
    assert!(
        events(&mut layer)
            .iter()
            .all(|e| matches!(e, Event::Terminated { .. }))
    );
    run_timers(&mut layer, base);
    assert!(layer.is_empty());
}

/// Every final response carries a To tag (§8.2.6.2): the 200 to a CANCEL that came
/// while the INVITE had only its 100 (no tag to copy), and a 481 to an unknown CANCEL.
#[test]
fn cancel_answers_carry_a_to_tag_even_before_any_tagged_response() {
    use rsip::prelude::*;
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let invite = request("INVITE", "z9hG4bKinv3", 1);
    layer.handle_request(invite.clone(), udp(), base);
    new_request_key(&mut layer);
    // Only the layer's own 100 Trying (no tag) has gone out.
    transmits(&mut layer);
    layer.handle_request(
        request("CANCEL", "z9hG4bKinv3", 1),
        udp(),
        base + Duration::from_millis(500),
    );
    let sent = transmits(&mut layer);
    let [SipMessage::Response(ok)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(ok.status_code.code(), 200);
    assert!(ok.to_header().unwrap().tag().unwrap().is_some(), "{ok}");

    layer.handle_request(request("CANCEL", "z9hG4bKnone2", 1), udp(), base);
    let sent = transmits(&mut layer);
    let [SipMessage::Response(unknown)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(unknown.status_code.code(), 481);
    assert!(
        unknown.to_header().unwrap().tag().unwrap().is_some(),
        "{unknown}"
    );
}

#[test]
fn cancel_for_unknown_invite_gets_481_and_no_event() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    layer.handle_request(request("CANCEL", "z9hG4bKnone", 1), udp(), base);
    assert_eq!(codes(&mut layer), vec![481]);
    assert!(
        events(&mut layer)
            .iter()
            .all(|e| !matches!(e, Event::Cancel { .. }))
    );
}

#[test]
fn ack_for_2xx_with_a_new_branch_reaches_the_tu_and_stops_retransmission() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let invite = request("INVITE", "z9hG4bKinv3", 1);
    layer.handle_request(invite.clone(), udp(), base);
    let key = new_request_key(&mut layer);
    transmits(&mut layer);
    layer.respond(&key, respond(&invite, 200), base).unwrap();
    assert_eq!(codes(&mut layer), vec![200]);
    let at = layer.poll_timeout().unwrap();
    assert_eq!(at - base, Duration::from_millis(500));
    layer.handle_timeout(at);
    assert_eq!(codes(&mut layer), vec![200]);

    let ack = request("ACK", "z9hG4bKack3", 1);
    layer.handle_request(ack, udp(), base + Duration::from_millis(800));
    let evs = events(&mut layer);
    let [Event::AckFor2xx { invite_key, .. }] = evs.as_slice() else {
        panic!("{evs:?}")
    };
    assert_eq!(invite_key, &key);
    // Only Timer L is left: no more 200s, then Terminated at 64*T1.
    assert_eq!(run_timers(&mut layer, base), vec![32_000]);
    assert!(transmits(&mut layer).is_empty());
    assert!(matches!(
        events(&mut layer).as_slice(),
        [Event::Terminated { .. }]
    ));
    assert_eq!(layer.stats().stray_acks, 0);
}

#[test]
fn no_ack_for_2xx_within_64_t1_tells_the_tu_to_hang_up() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let invite = request("INVITE", "z9hG4bKinv4", 1);
    layer.handle_request(invite.clone(), udp(), base);
    let key = new_request_key(&mut layer);
    transmits(&mut layer);
    layer.respond(&key, respond(&invite, 200), base).unwrap();
    let fired = run_timers(&mut layer, base);
    // 2xx retransmitted at T1 doubling to T2: 0.5, 1.5, 3.5, 7.5, 11.5 ... 31.5, then 32 s.
    assert_eq!(&fired[..5], &[500, 1500, 3500, 7500, 11500]);
    assert_eq!(*fired.last().unwrap(), 32_000);
    assert_eq!(codes(&mut layer).len(), 1 + 10);
    let evs = events(&mut layer);
    assert!(matches!(
        evs.as_slice(),
        [Event::NoAckFor2xx { invite_key }, Event::Terminated { .. }] if invite_key == &key
    ));
    // An ACK that comes after is stray.
    layer.handle_request(
        request("ACK", "z9hG4bKlate", 1),
        udp(),
        base + Duration::from_secs(40),
    );
    assert_eq!(layer.stats().stray_acks, 1);
    assert!(events(&mut layer).is_empty());
}

#[test]
fn timer_h_over_udp_and_reliable() {
    for (transport, retransmits) in [(TransportKind::Udp, 10), (TransportKind::Tcp, 0)] {
        let base = Instant::now();
        let mut layer = TransactionLayer::new(LayerConfig::default());
        let invite = request("INVITE", "z9hG4bKinv5", 1);
        layer.handle_request(invite.clone(), peer(transport), base);
        let key = new_request_key(&mut layer);
        layer.respond(&key, respond(&invite, 486), base).unwrap();
        assert_eq!(codes(&mut layer), vec![100, 486]);
        let fired = run_timers(&mut layer, base);
        assert_eq!(*fired.last().unwrap(), 32_000);
        assert_eq!(codes(&mut layer).len(), retransmits, "{transport:?}");
        let evs = events(&mut layer);
        assert!(
            matches!(
                evs.as_slice(),
                [Event::TimedOut { key: TransactionKey::Server(k) }, Event::Terminated { .. }] if k == &key
            ),
            "{evs:?}"
        );
    }
}

#[test]
fn non_invite_server_timer_j_udp_and_reliable() {
    for (transport, end) in [
        (TransportKind::Udp, vec![32_000]),
        (TransportKind::Tls, vec![]),
    ] {
        let base = Instant::now();
        let mut layer = TransactionLayer::new(LayerConfig::default());
        let bye = request("BYE", "z9hG4bKbye1", 2);
        layer.handle_request(bye.clone(), peer(transport), base);
        let key = new_request_key(&mut layer);
        layer.respond(&key, respond(&bye, 200), base).unwrap();
        assert_eq!(codes(&mut layer), vec![200]);
        if transport == TransportKind::Udp {
            layer.handle_request(bye, peer(transport), base + Duration::from_secs(1));
            assert_eq!(codes(&mut layer), vec![200]);
        }
        assert_eq!(run_timers(&mut layer, base), end);
        assert!(layer.is_empty());
    }
}

#[test]
fn client_bye_timer_e_f_and_response_routing() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let mut bye = request("BYE", "unused", 3);
    use rsip::prelude::*;
    let via = format!("SIP/2.0/UDP 198.51.100.1:5060;branch={}", new_branch());
    *bye.via_header_mut().unwrap() = rsip::headers::Via::new(via);
    let key = layer.send_request(bye.clone(), udp(), base).unwrap();
    assert_eq!(key.method(), Method::Bye);
    assert_eq!(transmits(&mut layer).len(), 1);
    // Timer E at 0.5 s, then the 200 arrives.
    let at = layer.poll_timeout().unwrap();
    layer.handle_timeout(at);
    assert_eq!(transmits(&mut layer).len(), 1);
    layer.handle_response(respond(&bye, 200), base + Duration::from_millis(700));
    let evs = events(&mut layer);
    assert!(
        matches!(evs.as_slice(), [Event::Response { key: k, response }] if k == &key && response.status_code.code() == 200)
    );
    // Timer K (T4) ends it; a late retransmitted 200 is stray.
    assert_eq!(run_timers(&mut layer, base), vec![5_700]);
    layer.handle_response(respond(&bye, 200), base + Duration::from_secs(6));
    assert_eq!(layer.stats().stray_responses, 1);

    // Timer F: nobody answers.
    let mut bye2 = bye.clone();
    let via = format!("SIP/2.0/UDP 198.51.100.1:5060;branch={}", new_branch());
    *bye2.via_header_mut().unwrap() = rsip::headers::Via::new(via);
    let key2 = layer.send_request(bye2, udp(), base).unwrap();
    events(&mut layer);
    assert_eq!(*run_timers(&mut layer, base).last().unwrap(), 32_000);
    let evs = events(&mut layer);
    assert!(matches!(
        evs.as_slice(),
        [Event::TimedOut { key: TransactionKey::Client(k) }, Event::Terminated { .. }] if k == &key2
    ));
}

#[test]
fn an_abandoned_client_transaction_stops_at_once_and_says_nothing() {
    use rsip::prelude::*;
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let mut options = request("OPTIONS", "unused", 1);
    let via = format!("SIP/2.0/UDP 198.51.100.1:5060;branch={}", new_branch());
    *options.via_header_mut().unwrap() = rsip::headers::Via::new(via);
    let key = layer.send_request(options.clone(), udp(), base).unwrap();
    assert_eq!(transmits(&mut layer).len(), 1);
    assert!(layer.abandon(&key));
    assert!(!layer.abandon(&key), "already gone");
    assert!(layer.is_empty());
    // No retransmission, no Timer F, no event; a late 200 is stray.
    assert_eq!(run_timers(&mut layer, base), Vec::<u128>::new());
    assert!(transmits(&mut layer).is_empty());
    assert!(events(&mut layer).is_empty());
    layer.handle_response(respond(&options, 200), base + Duration::from_secs(1));
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.stats().stray_responses, 1);
}

#[test]
fn client_reinvite_gets_acked_on_failure_and_timer_d() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let mut reinvite = request("INVITE", "unused", 5);
    use rsip::prelude::*;
    let via = format!("SIP/2.0/UDP 198.51.100.1:5060;branch={}", new_branch());
    *reinvite.via_header_mut().unwrap() = rsip::headers::Via::new(via);
    layer.send_request(reinvite.clone(), udp(), base).unwrap();
    transmits(&mut layer);
    layer.handle_response(respond(&reinvite, 491), base + Duration::from_millis(100));
    let sent = transmits(&mut layer);
    assert!(matches!(sent.as_slice(), [SipMessage::Request(ack)] if ack.method == Method::Ack));
    assert_eq!(run_timers(&mut layer, base), vec![32_100]);
}

#[test]
fn odd_input_is_counted_or_refused_never_a_panic() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let mut no_branch = request("INVITE", "x", 1);
    use rsip::prelude::*;
    *no_branch.via_header_mut().unwrap() = rsip::headers::Via::new("SIP/2.0/UDP 192.0.2.1");
    layer.handle_request(no_branch, udp(), base);
    assert!(matches!(
        events(&mut layer).as_slice(),
        [Event::Refused {
            reason: Refusal::Malformed(_),
            ..
        }]
    ));
    let mut bad_cseq = request("OPTIONS", "z9hG4bKo", 1);
    *bad_cseq.cseq_header_mut().unwrap() = rsip::headers::CSeq::new("banana");
    layer.handle_request(bad_cseq, udp(), base);
    let mut bad_ack = request("ACK", "z9hG4bKa", 1);
    bad_ack
        .headers
        .retain(|h| !matches!(h, rsip::Header::Via(_)));
    layer.handle_request(bad_ack, udp(), base);
    let mut bad_resp = respond(&request("BYE", "z9hG4bKb", 1), 200);
    bad_resp
        .headers
        .retain(|h| !matches!(h, rsip::Header::Via(_)));
    layer.handle_response(bad_resp, base);
    let stats = layer.stats();
    assert_eq!(stats.malformed, 4);
    // The ACK and the response are dropped silently; the OPTIONS is refused (400 by the TU).
    assert_eq!(events(&mut layer).len(), 1);
    assert!(transmits(&mut layer).is_empty());
    assert!(layer.is_empty());
}

#[test]
fn past_max_transactions_new_requests_are_refused() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig {
        max_transactions: 2,
        ..LayerConfig::default()
    });
    for i in 0..3 {
        layer.handle_request(request("OPTIONS", &format!("z9hG4bKo{i}"), 1), udp(), base);
    }
    let evs = events(&mut layer);
    assert_eq!(evs.len(), 3);
    assert!(matches!(
        evs[2],
        Event::Refused {
            reason: Refusal::Overloaded,
            ..
        }
    ));
    assert_eq!(layer.stats().overloaded, 1);
    // A retransmission of a live one is still absorbed.
    layer.handle_request(request("OPTIONS", "z9hG4bKo0", 1), udp(), base);
    assert_eq!(layer.stats().retransmissions_absorbed, 1);
    assert_eq!(layer.len(), 2);
}

#[test]
fn respond_to_unknown_key_is_an_error() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let bye = request("BYE", "z9hG4bKq", 1);
    layer.handle_request(bye.clone(), peer(TransportKind::Tcp), base);
    let key = new_request_key(&mut layer);
    layer.respond(&key, respond(&bye, 200), base).unwrap();
    // Timer J is zero over TCP: already gone.
    assert!(layer.respond(&key, respond(&bye, 200), base).is_err());
}

#[test]
fn thousand_calls_run_to_completion_on_the_virtual_clock() {
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    for i in 0..1000 {
        let invite = request("INVITE", &format!("z9hG4bKmany{i}"), 1);
        layer.handle_request(invite.clone(), udp(), base);
        let key = new_request_key(&mut layer);
        layer.respond(&key, respond(&invite, 486), base).unwrap();
    }
    run_timers(&mut layer, base);
    assert!(layer.is_empty());
    let timed_out = events(&mut layer)
        .iter()
        .filter(|e| matches!(e, Event::TimedOut { .. }))
        .count();
    assert_eq!(timed_out, 1000);
}

#[test]
fn ack_with_the_invite_branch_in_accepted_goes_up_once() {
    // RFC 6026 §7.1: an ACK matching the INVITE server transaction in Accepted is passed up.
    let base = Instant::now();
    let mut layer = TransactionLayer::new(LayerConfig::default());
    let invite = request("INVITE", "z9hG4bKinv6", 1);
    layer.handle_request(invite.clone(), peer(TransportKind::Tcp), base);
    let key = new_request_key(&mut layer);
    layer.respond(&key, respond(&invite, 200), base).unwrap();
    let ack = request("ACK", "z9hG4bKinv6", 1);
    layer.handle_request(ack.clone(), peer(TransportKind::Tcp), base);
    layer.handle_request(ack, peer(TransportKind::Tcp), base);
    let acks = events(&mut layer)
        .into_iter()
        .filter(|e| matches!(e, Event::AckFor2xx { .. }))
        .count();
    assert_eq!(acks, 1);
    // Over TCP the 2xx is sent once, not retransmitted.
    assert_eq!(codes(&mut layer), vec![100, 200]);
    assert_eq!(run_timers(&mut layer, base), vec![32_000]);
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    fn header(name: &str, value: String) -> rsip::Header {
        use rsip::headers::UntypedHeader;
        match name {
            "Via" => rsip::Header::Via(rsip::headers::Via::new(value)),
            "CSeq" => rsip::Header::CSeq(rsip::headers::CSeq::new(value)),
            "Call-ID" => rsip::Header::CallId(rsip::headers::CallId::new(value)),
            "From" => rsip::Header::From(rsip::headers::From::new(value)),
            _ => rsip::Header::To(rsip::headers::To::new(value)),
        }
    }

    proptest! {
        /// Whatever the Via, CSeq, Call-ID, From and To say, the layer does not panic and
        /// every request either gets a transaction, is refused, or is counted.
        #[test]
        fn odd_headers_never_panic(
            method in prop::sample::select(vec![Method::Invite, Method::Ack, Method::Cancel, Method::Bye]),
            via in "[ -~]{0,60}",
            cseq in "[ -~]{0,20}",
            call_id in "[ -~]{0,20}",
            from in "[ -~]{0,40}",
            to in "[ -~]{0,40}",
            code in 100u16..700,
        ) {
            let base = Instant::now();
            let mut layer = TransactionLayer::new(LayerConfig::default());
            let mut headers = rsip::Headers::default();
            for (name, value) in [("Via", via), ("CSeq", cseq), ("Call-ID", call_id), ("From", from), ("To", to)] {
                headers.push(header(name, value));
            }
            let req = Request {
                method,
                uri: rsip::Uri::try_from("sip:bridge@example.com").unwrap(),
                version: rsip::Version::V2,
                headers,
                body: Vec::new(),
            };
            layer.handle_request(req.clone(), udp(), base);
            let evs = events(&mut layer);
            for ev in &evs {
                if let Event::NewRequest { key, request, .. } = ev {
                    let resp = dialbridge_sip::message::fields::response_for(request, code, None, Some("t"));
                    let _ = layer.respond(key, resp, base);
                }
            }
            let resp = dialbridge_sip::message::fields::response_for(&req, code, None, None);
            layer.handle_response(resp, base);
            run_timers(&mut layer, base);
            let stats = layer.stats();
            prop_assert!(
                !evs.is_empty() || stats.malformed + stats.stray_acks + stats.overloaded > 0
            );
            let mut set = dialbridge_sip::dialog::DialogSet::new();
            let _ = set.find_for_request(&req);
            let _ = dialbridge_sip::dialog::Dialog::new_uas(
                &req,
                dialbridge_sip::dialog::LocalAddress::new(
                    "bridge",
                    "198.51.100.1:5060".parse().unwrap(),
                    rsip::Transport::Udp,
                ),
                &Default::default(),
                base,
            );
        }
    }
}
