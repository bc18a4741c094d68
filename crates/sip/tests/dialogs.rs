//! Dialogs (RFC 3261 §12) and session timers (RFC 4028) through the public API, on a
//! virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dialbridge_sip::Error;
use dialbridge_sip::dialog::session_timer::interval_too_small;
use dialbridge_sip::dialog::{
    Dialog, DialogEvent, DialogSet, DialogState, InDialogRequest, LocalAddress, Refresher,
    SessionTimerConfig,
};
use dialbridge_sip::message;
use dialbridge_sip::rsip::prelude::*;
use dialbridge_sip::rsip::{self, Header, Method, Request, SipMessage};
use std::time::{Duration, Instant};

fn local() -> LocalAddress {
    LocalAddress::new(
        "bridge",
        "198.51.100.1:5060".parse().unwrap(),
        rsip::Transport::Udp,
    )
}

const RR: &str = "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
                  Record-Route: <sip:p3.example.com;lr>\r\n";

fn invite(extra: &str) -> Request {
    raw_request("INVITE", 1, "", extra)
}

fn raw_request(method: &str, cseq: u32, to_tag: &str, extra: &str) -> Request {
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let raw = format!(
        "{method} sip:bridge@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{method}{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:+14155550100@sbc.example.com>;tag=alice1\r\n\
         To: <sip:bridge@example.com>{to_tag}\r\n\
         Call-ID: dlg-1@sbc.example.com\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:+14155550100@192.0.2.1:5060>\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    );
    Request::try_from(raw.as_str()).unwrap()
}

fn in_dialog(dialog: &Dialog, method: &str, cseq: u32, extra: &str) -> Request {
    raw_request(method, cseq, &dialog.id().local_tag, extra)
}

fn new_dialog(extra: &str, now: Instant) -> Dialog {
    Dialog::new_uas(&invite(extra), local(), &SessionTimerConfig::default(), now).unwrap()
}

/// Our message survives our own encoder and parser.
fn round_trip(request: &Request) -> Request {
    let bytes = message::encode(&SipMessage::Request(request.clone()));
    match message::parse(&bytes).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("parsed as a response"),
    }
}

fn header_strings(headers: &rsip::Headers, pred: fn(&Header) -> bool) -> Vec<String> {
    headers
        .iter()
        .filter(|h| pred(h))
        .map(|h| h.to_string())
        .collect()
}

#[test]
fn uas_dialog_from_invite_and_its_2xx() {
    let now = Instant::now();
    let inv = invite(RR);
    let mut dialog = new_dialog(RR, now);
    assert_eq!(dialog.state(), DialogState::Early);
    assert_eq!(dialog.id().call_id, "dlg-1@sbc.example.com");
    assert_eq!(dialog.id().remote_tag, "alice1");
    assert!(dialog.id().local_tag.len() >= 8);
    assert_eq!(
        dialog.remote_target().to_string(),
        "sip:+14155550100@192.0.2.1:5060"
    );
    let hosts: Vec<_> = dialog
        .route_set()
        .iter()
        .map(|r| r.uri.as_sip().unwrap().host.to_string())
        .collect();
    assert_eq!(
        hosts,
        ["p1.example.com", "p2.example.com", "p3.example.com"]
    );

    let ringing = dialog.make_response(&inv, 180, now);
    assert_eq!(
        ringing.to_header().unwrap().tag().unwrap().unwrap().value(),
        dialog.id().local_tag
    );
    let ok = dialog.make_response(&inv, 200, now);
    assert_eq!(dialog.state(), DialogState::Confirmed);
    assert!(
        ok.contact_header()
            .unwrap()
            .value()
            .contains("bridge@198.51.100.1")
    );
    assert_eq!(
        header_strings(&ok.headers, |h| matches!(h, Header::RecordRoute(_))),
        header_strings(&inv.headers, |h| matches!(h, Header::RecordRoute(_)))
    );
}

#[test]
fn missing_from_tag_or_contact_is_a_bad_header() {
    let now = Instant::now();
    let mut inv = invite("");
    inv.headers.retain(|h| !matches!(h, Header::Contact(_)));
    assert!(matches!(
        Dialog::new_uas(&inv, local(), &SessionTimerConfig::default(), now),
        Err(Error::BadHeader("Contact"))
    ));
    let mut inv = invite("");
    *inv.from_header_mut().unwrap() = rsip::headers::From::new("<sip:a@example.com>");
    assert!(matches!(
        Dialog::new_uas(&inv, local(), &SessionTimerConfig::default(), now),
        Err(Error::BadHeader("From tag"))
    ));
}

#[test]
fn cseq_checks_of_section_12_2_2() {
    let now = Instant::now();
    let mut dialog = new_dialog("", now);
    let inv = invite("");
    dialog.make_response(&inv, 200, now);
    // The ACK reuses the INVITE's CSeq.
    let ack = in_dialog(&dialog, "ACK", 1, "");
    assert_eq!(
        dialog.handle_request(&ack, now).unwrap(),
        InDialogRequest::Ack { body: Vec::new() }
    );
    let info = in_dialog(&dialog, "INFO", 5, "");
    assert_eq!(
        dialog.handle_request(&info, now).unwrap(),
        InDialogRequest::Other(Method::Info)
    );
    let stale = in_dialog(&dialog, "INFO", 4, "");
    let err = dialog.handle_request(&stale, now).unwrap_err();
    assert!(matches!(err, Error::CSeqOutOfOrder { got: 4, last: 5 }));
    assert_eq!(dialog.remote_seq(), Some(5));
    let bye = in_dialog(&dialog, "BYE", 6, "");
    assert_eq!(
        dialog.handle_request(&bye, now).unwrap(),
        InDialogRequest::Bye
    );
    assert_eq!(dialog.state(), DialogState::Terminated);
}

#[test]
fn unknown_dialog_gets_481() {
    let now = Instant::now();
    let mut set = DialogSet::new();
    let dialog = new_dialog("", now);
    let id = dialog.id().clone();
    let good = in_dialog(&dialog, "BYE", 2, "");
    set.insert(dialog);
    assert_eq!(set.find_for_request(&good).unwrap().id(), &id);

    let wrong_tag = raw_request("BYE", 2, "nosuchtag", "");
    assert!(matches!(
        set.find_for_request(&wrong_tag),
        Err(Error::NoSuchDialog)
    ));
    let no_tag = raw_request("BYE", 2, "", "");
    assert!(matches!(
        set.find_for_request(&no_tag),
        Err(Error::NoSuchDialog)
    ));
    let resp = DialogSet::no_such_dialog(&wrong_tag);
    assert_eq!(resp.status_code.code(), 481);
    assert_eq!(set.len(), 1);
    set.remove(&id);
    assert!(set.is_empty());
}

#[test]
fn make_request_builds_in_dialog_bye_with_routes_tags_and_cseq() {
    let now = Instant::now();
    let mut dialog = new_dialog(RR, now);
    dialog.make_response(&invite(RR), 200, now);
    let first_seq = dialog.local_seq();
    let bye = round_trip(&dialog.make_request(Method::Bye, now));
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri.to_string(), "sip:+14155550100@192.0.2.1:5060");
    let routes = header_strings(&bye.headers, |h| matches!(h, Header::Route(_)));
    assert_eq!(
        routes,
        [
            "Route: <sip:p1.example.com;lr>",
            "Route: <sip:p2.example.com;lr>",
            "Route: <sip:p3.example.com;lr>"
        ]
    );
    let from = bye.from_header().unwrap().typed().unwrap();
    assert_eq!(from.tag().unwrap().value(), dialog.id().local_tag);
    assert_eq!(from.uri.to_string(), "sip:bridge@example.com");
    let to = bye.to_header().unwrap().typed().unwrap();
    assert_eq!(to.tag().unwrap().value(), "alice1");
    let cseq = bye.cseq_header().unwrap().typed().unwrap();
    assert_eq!((cseq.seq, cseq.method), (first_seq + 1, Method::Bye));
    assert!(first_seq < 1 << 31);
    let branch = bye.via_header().unwrap().typed().unwrap();
    let branch = branch.branch().unwrap().to_string();
    assert!(branch.starts_with("z9hG4bK") && branch.len() > 7);
    assert_eq!(dialog.state(), DialogState::Terminated);

    let mut dialog = new_dialog("", now);
    let a = dialog.make_request(Method::Options, now);
    let b = dialog.make_request(Method::Options, now);
    assert_ne!(a.via_header().unwrap(), b.via_header().unwrap());
    assert_eq!(
        b.cseq_header().unwrap().seq().unwrap(),
        a.cseq_header().unwrap().seq().unwrap() + 1
    );
    assert!(header_strings(&a.headers, |h| matches!(h, Header::Route(_))).is_empty());
}

#[test]
fn strict_router_first_route_becomes_the_request_uri() {
    let now = Instant::now();
    let rr = "Record-Route: <sip:strict.example.com>, <sip:p2.example.com;lr>\r\n";
    let mut dialog = new_dialog(rr, now);
    let bye = dialog.make_request(Method::Bye, now);
    assert_eq!(bye.uri.to_string(), "sip:strict.example.com");
    let routes = header_strings(&bye.headers, |h| matches!(h, Header::Route(_)));
    assert_eq!(
        routes,
        [
            "Route: <sip:p2.example.com;lr>",
            "Route: <sip:+14155550100@192.0.2.1:5060>"
        ]
    );
}

#[test]
fn reinvite_hands_the_offer_up_and_moves_the_remote_target() {
    let now = Instant::now();
    let mut dialog = new_dialog("", now);
    dialog.make_response(&invite(""), 200, now);
    let mut reinvite = in_dialog(&dialog, "INVITE", 2, "");
    *reinvite.contact_header_mut().unwrap() =
        rsip::headers::Contact::new("<sip:+14155550100@192.0.2.99:5070>");
    reinvite.body = b"v=0\r\n".to_vec();
    assert_eq!(
        dialog.handle_request(&reinvite, now).unwrap(),
        InDialogRequest::ReInvite {
            offer: Some(b"v=0\r\n".to_vec())
        }
    );
    assert_eq!(
        dialog.remote_target().to_string(),
        "sip:+14155550100@192.0.2.99:5070"
    );
    let update = in_dialog(&dialog, "UPDATE", 3, "");
    assert_eq!(
        dialog.handle_request(&update, now).unwrap(),
        InDialogRequest::Update { offer: None }
    );
    // A 2xx to the re-INVITE carries our Contact but no Record-Route.
    let ok = dialog.make_response(&reinvite, 200, now);
    assert!(ok.contact_header().is_ok());
    assert!(ok.record_route_header().is_none());
}

#[test]
fn our_reinvite_gets_an_ack_with_its_cseq_and_481_ends_the_dialog() {
    let now = Instant::now();
    let mut dialog = new_dialog("", now);
    dialog.make_response(&invite(""), 200, now);
    let reinvite = dialog.make_request(Method::Invite, now);
    assert!(reinvite.contact_header().is_ok());
    let ok = message::fields::response_for(&reinvite, 200, None, None);
    dialog.handle_response(&ok, now);
    let ack = round_trip(&dialog.make_ack(&ok).unwrap());
    let cseq = ack.cseq_header().unwrap().typed().unwrap();
    assert_eq!((cseq.seq, cseq.method), (dialog.local_seq(), Method::Ack));
    assert_ne!(ack.via_header().unwrap(), reinvite.via_header().unwrap());

    let bye = dialog.make_request(Method::Options, now);
    let gone = message::fields::response_for(&bye, 481, None, None);
    dialog.handle_response(&gone, now);
    assert_eq!(dialog.state(), DialogState::Terminated);
}

#[test]
fn session_timer_422_below_min_se() {
    let now = Instant::now();
    let inv = invite("Supported: timer\r\nSession-Expires: 30\r\n");
    let err = Dialog::new_uas(&inv, local(), &SessionTimerConfig::default(), now).unwrap_err();
    let Error::SessionIntervalTooSmall { got, min_se } = err else {
        panic!("{err:?}")
    };
    assert_eq!((got, min_se), (30, 90));
    let resp = interval_too_small(&inv, Duration::from_secs(u64::from(min_se)));
    assert_eq!(resp.status_code.code(), 422);
    let parsed = message::encode(&SipMessage::Response(resp));
    assert!(String::from_utf8_lossy(&parsed).contains("Min-SE: 90\r\n"));
}

#[test]
fn session_timer_peer_refreshes_deadline_moves_then_expiry_says_bye() {
    let base = Instant::now();
    let extra = "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n";
    let inv = invite(extra);
    let mut set = DialogSet::new();
    let mut dialog = new_dialog(extra, base);
    let ok = dialog.make_response(&inv, 200, base);
    let se = header_strings(&ok.headers, |h| {
        matches!(h, Header::Other(..) | Header::Require(_))
    });
    assert_eq!(se, ["Session-Expires: 600;refresher=uac", "Require: timer"]);
    // What we built is what our own parser accepts.
    message::parse(&message::encode(&SipMessage::Response(ok.clone()))).unwrap();
    assert_eq!(dialog.session_timer().unwrap().refresher(), Refresher::Uac);
    let id = dialog.id().clone();
    let refresh = in_dialog(&dialog, "UPDATE", 2, extra);
    set.insert(dialog);
    // Expiry minus min(32 s, 600/3) = 568 s.
    assert_eq!(set.poll_timeout(), Some(base + Duration::from_secs(568)));

    // The peer refreshes at 300 s: the deadline moves to 868 s.
    let t = base + Duration::from_secs(300);
    let d = set.find_for_request(&refresh).unwrap();
    d.handle_request(&refresh, t).unwrap();
    d.make_response(&refresh, 200, t);
    assert_eq!(set.poll_timeout(), Some(base + Duration::from_secs(868)));
    set.handle_timeout(base + Duration::from_secs(867));
    assert!(set.poll_event().is_none());
    let at = set.poll_timeout().unwrap();
    set.handle_timeout(at);
    assert_eq!(set.poll_event(), Some((id, DialogEvent::SessionExpired)));
    assert_eq!(set.poll_timeout(), None);
}

#[test]
fn session_timer_we_refresh_at_half_interval() {
    let base = Instant::now();
    // The UAC does not support timers but a proxy asked for one: we refresh.
    let extra = "Session-Expires: 1800\r\n";
    let mut dialog = new_dialog(extra, base);
    let ok = dialog.make_response(&invite(extra), 200, base);
    assert!(ok.headers.iter().all(|h| !matches!(h, Header::Require(_))));
    assert_eq!(dialog.poll_timeout(), Some(base + Duration::from_secs(900)));
    let t = base + Duration::from_secs(900);
    assert_eq!(dialog.handle_timeout(t), Some(DialogEvent::SendRefresh));
    let update = dialog.make_request(Method::Update, t);
    let se = header_strings(&update.headers, |h| matches!(h, Header::Other(..)));
    assert_eq!(se, ["Session-Expires: 1800;refresher=uac"]);
    let ok = message::fields::response_for(&update, 200, None, None);
    dialog.handle_response(&ok, t);
    assert_eq!(dialog.poll_timeout(), Some(t + Duration::from_secs(900)));
}

mod with_the_transaction_layer {
    //! The TU's flow end to end: the layer hands requests up, the dialog builds the answers.
    use super::*;
    use dialbridge_sip::transaction::{
        Event, LayerConfig, PeerAddr, TransactionLayer, TransportKind,
    };

    fn udp() -> PeerAddr {
        PeerAddr {
            transport: TransportKind::Udp,
            addr: "192.0.2.1:5060".parse().unwrap(),
            connection: None,
        }
    }

    fn sent_codes(layer: &mut TransactionLayer<PeerAddr>) -> Vec<u16> {
        std::iter::from_fn(|| layer.poll_transmit())
            .filter_map(|t| match t.message {
                SipMessage::Response(r) => Some(r.status_code.code()),
                SipMessage::Request(_) => None,
            })
            .collect()
    }

    #[test]
    fn invite_ringing_cancel_487() {
        let now = Instant::now();
        let mut layer = TransactionLayer::new(LayerConfig::default());
        let inv = invite("");
        layer.handle_request(inv.clone(), udp(), now);
        let Some(Event::NewRequest { key, request, .. }) = layer.poll_event() else {
            panic!()
        };
        let mut dialog =
            Dialog::new_uas(&request, local(), &SessionTimerConfig::default(), now).unwrap();
        layer
            .respond(&key, dialog.make_response(&request, 180, now), now)
            .unwrap();
        let cancel = raw_request("CANCEL", 1, "", "");
        let cancel = {
            // A CANCEL carries the INVITE's branch.
            let mut c = cancel;
            *c.via_header_mut().unwrap() = inv.via_header().unwrap().clone();
            c
        };
        layer.handle_request(cancel, udp(), now);
        let cancelled = std::iter::from_fn(|| layer.poll_event())
            .any(|e| matches!(e, Event::Cancel { invite_key, .. } if invite_key == key));
        assert!(cancelled);
        let terminated = dialog.make_response(&request, 487, now);
        layer.respond(&key, terminated, now).unwrap();
        assert_eq!(dialog.state(), DialogState::Terminated);
        assert_eq!(sent_codes(&mut layer), vec![100, 180, 200, 487]);
    }

    #[test]
    fn invite_200_ack_then_our_bye() {
        let now = Instant::now();
        let mut layer = TransactionLayer::new(LayerConfig::default());
        let mut dialogs = DialogSet::new();
        layer.handle_request(invite(""), udp(), now);
        let Some(Event::NewRequest { key, request, .. }) = layer.poll_event() else {
            panic!()
        };
        let mut dialog =
            Dialog::new_uas(&request, local(), &SessionTimerConfig::default(), now).unwrap();
        layer
            .respond(&key, dialog.make_response(&request, 200, now), now)
            .unwrap();
        let ack = in_dialog(&dialog, "ACK", 1, "");
        dialogs.insert(dialog);
        layer.handle_request(ack, udp(), now + Duration::from_millis(50));
        let Some(Event::AckFor2xx { request: ack, .. }) = layer.poll_event() else {
            panic!()
        };
        let dialog = dialogs.find_for_request(&ack).unwrap();
        assert!(matches!(
            dialog.handle_request(&ack, now).unwrap(),
            InDialogRequest::Ack { .. }
        ));
        let bye = dialog.make_request(Method::Bye, now);
        let bye_key = layer.send_request(bye.clone(), udp(), now).unwrap();
        layer.handle_response(
            message::fields::response_for(&bye, 200, None, None),
            now + Duration::from_millis(80),
        );
        let got = std::iter::from_fn(|| layer.poll_event()).any(|e| {
            matches!(e, Event::Response { key, response } if key == bye_key && response.status_code.code() == 200)
        });
        assert!(got);
        assert_eq!(sent_codes(&mut layer), vec![100, 200]);
    }
}

/// What Linphone and other RFC 5626 clients send: an IPv6 From (the address it guessed),
/// a Contact with quoted instance parameters. The dialog takes it, and its BYE goes back
/// with the From as the To, brackets and all.
#[test]
fn softphone_with_ipv6_from_and_instance_contact() {
    let now = Instant::now();
    let raw = "INVITE sip:+14255550100@[::1]:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP [fd00::2]:5070;branch=z9hG4bKsoft1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@[fd00::2]>;tag=soft1\r\n\
         To: sip:+14255550100@[::1]\r\n\
         Call-ID: soft-1\r\n\
         CSeq: 20 INVITE\r\n\
         Contact: <sip:alice@[fd00::2]:5070;transport=udp>;expires=3600;\
         +sip.instance=\"<urn:uuid:8b3d1a4e-0d1b-4a39-9c1e-5f6a7b8c9d0e>\"\r\n\
         Content-Length: 0\r\n\r\n";
    let SipMessage::Request(invite) = message::parse(raw.as_bytes()).unwrap() else {
        panic!("not a request")
    };
    let local = LocalAddress::new(
        "dialbridge",
        "[::1]:5060".parse().unwrap(),
        rsip::Transport::Udp,
    );
    let mut dialog = Dialog::new_uas(&invite, local, &SessionTimerConfig::default(), now).unwrap();
    assert_eq!(dialog.id().remote_tag, "soft1");
    assert_eq!(
        dialog.remote_target().to_string(),
        "sip:alice@[fd00::2]:5070;transport=udp"
    );
    let ok = dialog.make_response(&invite, 200, now);
    let contact = header_strings(&ok.headers, |h| matches!(h, Header::Contact(_)));
    assert_eq!(contact, ["Contact: <sip:dialbridge@[::1]:5060>"]);

    let bye = round_trip(&dialog.make_request(Method::Bye, now));
    assert_eq!(
        bye.uri.to_string(),
        "sip:alice@[fd00::2]:5070;transport=udp"
    );
    let to = header_strings(&bye.headers, |h| matches!(h, Header::To(_)));
    assert_eq!(to, ["To: \"Alice\" <sip:alice@[fd00::2]>;tag=soft1"]);
    let via = header_strings(&bye.headers, |h| matches!(h, Header::Via(_)));
    assert!(
        via[0].starts_with("Via: SIP/2.0/UDP [::1]:5060;branch=z9hG4bK"),
        "{via:?}"
    );

    // The peer's BYE finds the dialog by tags read from the same IPv6 From.
    let their_bye = format!(
        "BYE sip:dialbridge@[::1]:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP [fd00::2]:5070;branch=z9hG4bKsoft2\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@[fd00::2]>;tag=soft1\r\n\
         To: <sip:+14255550100@[::1]>;tag={}\r\n\
         Call-ID: soft-1\r\n\
         CSeq: 21 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        dialog.id().local_tag
    );
    let SipMessage::Request(their_bye) = message::parse(their_bye.as_bytes()).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(
        dialbridge_sip::dialog::DialogId::for_incoming(&their_bye).unwrap(),
        *dialog.id()
    );
    assert_eq!(
        dialog.handle_request(&their_bye, now).unwrap(),
        InDialogRequest::Bye
    );
}

/// A Contact that is not a SIP URI cannot be a remote target (RFC 3261 §8.1.1.8).
#[test]
fn tel_contact_is_a_bad_header() {
    let now = Instant::now();
    let inv = raw_request("INVITE", 1, "", "").to_string().replace(
        "Contact: <sip:+14155550100@192.0.2.1:5060>",
        "Contact: <tel:+14155550100>",
    );
    let inv = Request::try_from(inv.as_str()).unwrap();
    assert!(matches!(
        Dialog::new_uas(&inv, local(), &SessionTimerConfig::default(), now),
        Err(Error::BadHeader("Contact"))
    ));
}

/// The calling side (§12.1.2): our INVITE, a retry with credentials, the CANCEL for it,
/// and the dialog a tagged 180 then the 200 make: ACK and BYE follow the 2xx's Contact
/// and its Record-Route reversed; the peer's BYE is found by the tags.
#[test]
fn caller_invites_cancels_and_its_dialog_follows_the_2xx() {
    use dialbridge_sip::dialog::Caller;
    use dialbridge_sip::message::uri::{NameAddr, Uri};
    let now = Instant::now();
    let mut caller = Caller::new(
        NameAddr::parse("<sip:+14155550100@127.0.0.20>").unwrap(),
        NameAddr::parse("<sip:+33170000100@127.0.0.1:5060>").unwrap(),
        Uri::parse("sip:+33170000100@127.0.0.1:5060").unwrap(),
        LocalAddress::new(
            "+14155550100",
            "127.0.0.20:40000".parse().unwrap(),
            rsip::Transport::Udp,
        ),
        "test",
    );
    let first =
        round_trip(&caller.invite(Vec::new(), Some(("application/sdp", b"v=0\r\n".to_vec()))));
    let auth = Header::Authorization(rsip::headers::Authorization::new("Digest username=\"a\""));
    let invite =
        round_trip(&caller.invite(vec![auth], Some(("application/sdp", b"v=0\r\n".to_vec()))));
    assert_eq!(message::fields::cseq(&invite.headers).unwrap().seq, 2);
    assert_eq!(
        message::fields::from_tag(&invite.headers),
        message::fields::from_tag(&first.headers)
    );
    assert_eq!(invite.body, b"v=0\r\n");
    assert_ne!(
        message::fields::top_via(&invite.headers).unwrap().branch,
        message::fields::top_via(&first.headers).unwrap().branch
    );
    let cancel = round_trip(&caller.cancel().unwrap());
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.uri.to_string(), invite.uri.to_string());
    assert_eq!(
        message::fields::top_via(&cancel.headers).unwrap().branch,
        message::fields::top_via(&invite.headers).unwrap().branch
    );
    assert_eq!(message::fields::cseq(&cancel.headers).unwrap().seq, 2);

    // A 100 makes no dialog; a tagged 180 an early one.
    let trying = message::fields::response_for(&invite, 100, None, None);
    assert!(
        caller
            .dialog_for(&trying, &SessionTimerConfig::default())
            .is_err()
    );
    let ringing = message::fields::response_for(&invite, 180, None, Some("bridge1"));
    let mut dialog = caller
        .dialog_for(&ringing, &SessionTimerConfig::default())
        .unwrap();
    assert_eq!(dialog.state(), DialogState::Early);
    let mut ok = message::fields::response_for(&invite, 200, None, Some("bridge1"));
    ok.headers.push(Header::Contact(rsip::headers::Contact::new(
        "<sip:dialbridge@[::1]:5060>;+sip.instance=\"<urn:uuid:1>\"",
    )));
    ok.headers
        .push(Header::RecordRoute(rsip::headers::RecordRoute::new(
            "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
        )));
    let confirmed = caller
        .dialog_for(&ok, &SessionTimerConfig::default())
        .unwrap();
    dialog.handle_invite_response(&ok);
    assert_eq!(dialog.state(), DialogState::Confirmed);
    assert_eq!(
        dialog.remote_target().to_string(),
        "sip:dialbridge@[::1]:5060"
    );
    assert_eq!(confirmed.id(), dialog.id());
    let routes: Vec<_> = confirmed
        .route_set()
        .iter()
        .map(|r| r.uri.as_sip().unwrap().host.to_string())
        .collect();
    assert_eq!(routes, ["p2.example.com", "p1.example.com"]);

    let mut dialog = confirmed;
    let ack = round_trip(&dialog.make_ack(&ok).unwrap());
    assert_eq!(message::fields::cseq(&ack.headers).unwrap().seq, 2);
    assert_eq!(message::fields::to_tag(&ack.headers), Some("bridge1"));
    let bye = round_trip(&dialog.make_request(Method::Bye, now));
    assert_eq!(message::fields::cseq(&bye.headers).unwrap().seq, 3);
    assert_eq!(bye.uri.to_string(), "sip:dialbridge@[::1]:5060");
    let route_headers = header_strings(&bye.headers, |h| matches!(h, Header::Route(_)));
    assert_eq!(
        route_headers,
        [
            "Route: <sip:p2.example.com;lr>",
            "Route: <sip:p1.example.com;lr>"
        ]
    );

    // The bridge's own BYE finds this dialog.
    let their_bye = format!(
        "BYE sip:+14155550100@127.0.0.20:40000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtheirbye\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+33170000100@127.0.0.1:5060>;tag=bridge1\r\n\
         To: <sip:+14155550100@127.0.0.20>;tag={}\r\n\
         Call-ID: {}\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n",
        dialog.id().local_tag,
        caller.call_id()
    );
    let SipMessage::Request(their_bye) = message::parse(their_bye.as_bytes()).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(
        dialbridge_sip::dialog::DialogId::for_incoming(&their_bye).unwrap(),
        *dialog.id()
    );
    assert_eq!(
        dialog.handle_request(&their_bye, now).unwrap(),
        InDialogRequest::Bye
    );
}
