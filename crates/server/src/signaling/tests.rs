//! Whole calls through the signaling task, the call's one owner, on a virtual clock: SIP
//! goes in through `handle_received`, comes out of a captured [`Wire`], what the call's
//! media task would report is handed in by the test, and time moves only when a test
//! says so. No SIP socket is opened and no test sleeps; each call takes milliseconds.
//! (Each call still gets its RTP port and media task on the real engine; what that task
//! reports is left unread, so only the test speaks for it.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dialbridge_sip::message;
use dialbridge_sip::rsip::prelude::*;
use dialbridge_sip::rsip::{Method, Request, Response, SipMessage};
use dialbridge_sip::transaction::{PeerAddr, TransportKind};
use dialbridge_sip::transport::Received;

use super::{Observers, Signaling, Wire};
use crate::call_flow::CallReport;
use crate::call_flow::media::MediaEvent;
use crate::cdr::{CdrFilter, EndedBy};
use crate::conferences::ToMember;
use crate::metrics::{Gauges, setup_latency_histogram};
use crate::services::Services;

const CALLER: &str = "127.0.0.20:5060";
const NUMBER: &str = "+33170000100";

/// The signaling task of the demo bridge with a captured wire and a clock of its own.
pub(super) struct Bench {
    pub(super) signaling: Signaling,
    pub(super) services: Arc<Services>,
    pub(super) now: Instant,
}

impl Bench {
    pub(super) fn new(answer_after: Duration) -> Bench {
        Bench::with_config(crate::testing::demo_config(), answer_after)
    }

    fn with_config(mut config: crate::config::Config, answer_after: Duration) -> Bench {
        config.sip.answer_after = answer_after;
        let gauges = Arc::new(Gauges::default());
        let services = Services::start(&config, gauges.clone()).unwrap();
        let wire = Wire::Captured {
            local: "127.0.0.1:5060".parse().unwrap(),
            sent: Vec::new(),
        };
        let observers = Observers {
            sip: Arc::default(),
            setup_latency: Arc::new(setup_latency_histogram()),
            auth: Arc::default(),
        };
        let signaling = Signaling::new(Arc::new(config), services.clone(), wire, gauges, observers);
        Bench {
            signaling,
            services,
            now: Instant::now(),
        }
    }

    /// A message from the caller's SBC.
    pub(super) fn receive(&mut self, message: SipMessage) {
        let received = Received {
            peer: caller(),
            bytes: message::encode(&message),
            certificate_names: None,
        };
        self.signaling.handle_received(received, self.now);
        self.signaling.drive(self.now);
    }

    /// A message over TLS connection `connection`, whose verified client certificate
    /// (if any) holds `names`.
    fn receive_over_tls(&mut self, message: SipMessage, connection: u64, names: Option<&[&str]>) {
        let received = Received {
            peer: PeerAddr {
                transport: TransportKind::Tls,
                addr: CALLER.parse().unwrap(),
                connection: Some(connection),
            },
            bytes: message::encode(&message),
            certificate_names: names.map(|n| n.iter().map(|s| s.to_string()).collect()),
        };
        self.signaling.handle_received(received, self.now);
        self.signaling.drive(self.now);
    }

    /// Moves the clock by `by` and fires what is due, in deadline order.
    pub(super) fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        loop {
            let next = self.signaling.poll_timeout().filter(|at| *at <= until);
            let Some(at) = next else { break };
            self.now = self.now.max(at);
            self.signaling.handle_timeout(self.now);
            self.signaling.drive(self.now);
        }
        self.now = until;
    }

    /// Waits for the records being committed (SQLite, off the task) and sends what
    /// waited for them. Real time passes here, but the test asserts none of it.
    pub(super) async fn records_committed(&mut self) {
        while self.signaling.records_pending > 0 {
            let after = self.signaling.records.recv().await.unwrap();
            self.signaling.recorded(after, self.now);
            self.signaling.drive(self.now);
        }
    }

    /// Everything sent since the last call, parsed.
    pub(super) fn sent(&mut self) -> Vec<SipMessage> {
        let Wire::Captured { sent, .. } = &mut self.signaling.wire else {
            unreachable!()
        };
        sent.drain(..)
            .map(|(_, bytes)| message::parse(&bytes).unwrap())
            .collect()
    }

    /// The responses sent since the last call, by status.
    fn responses(&mut self) -> Vec<Response> {
        self.sent()
            .into_iter()
            .filter_map(|m| match m {
                SipMessage::Response(r) => Some(r),
                SipMessage::Request(_) => None,
            })
            .collect()
    }

    /// What the call's media task would report.
    pub(super) fn media_reports(&mut self, event: MediaEvent) {
        let id = self.signaling.calls.keys().next().unwrap().clone();
        let report = CallReport::Media { id, event };
        self.signaling.handle_call_report(report, self.now);
        self.signaling.drive(self.now);
    }

    /// The media task reports that what plays now has ended.
    fn played(&mut self) {
        let seq = self.signaling.calls.values().next().unwrap().play_seq;
        self.media_reports(MediaEvent::PlayDone { seq });
    }

    pub(super) fn calls(&self) -> usize {
        self.signaling.calls.len()
    }

    /// Calls in progress on the dialled number, as the router counts them.
    fn reserved(&self) -> u32 {
        self.services
            .router
            .snapshot()
            .numbers
            .iter()
            .find(|n| n.number.to_string() == NUMBER)
            .map_or(0, |n| n.in_progress)
    }

    fn last_record(&self) -> crate::cdr::Cdr {
        let mut records = self.services.cdrs.list(&CdrFilter::default()).unwrap();
        records.pop().expect("a call detail record")
    }
}

fn caller() -> PeerAddr {
    PeerAddr {
        transport: TransportKind::Udp,
        addr: CALLER.parse().unwrap(),
        connection: None,
    }
}

pub(super) fn request(text: &str) -> SipMessage {
    SipMessage::Request(Request::try_from(text).unwrap())
}

const SDP: &str = "v=0\r\no=sbc 1 1 IN IP4 127.0.0.20\r\ns=-\r\nc=IN IP4 127.0.0.20\r\n\
t=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn invite(call: &str, extra: &str) -> SipMessage {
    request(&format!(
        "INVITE sip:{NUMBER}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{call}-inv\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+14155550100@127.0.0.20>;tag={call}\r\n\
         To: <sip:{NUMBER}@127.0.0.1>\r\n\
         Call-ID: {call}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:+14155550100@{CALLER}>\r\n\
         {extra}Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    ))
}

/// A request of the caller in the dialog `ok` (the bridge's 200 to the INVITE) set up.
fn in_dialog(ok: &Response, method: &str, cseq: u32, branch: &str) -> SipMessage {
    let to = ok.to_header().unwrap().value().to_string();
    let call_id = ok.call_id_header().unwrap().value().to_string();
    let from = ok.from_header().unwrap().value().to_string();
    let invite_cseq = if method == "ACK" { 1 } else { cseq };
    request(&format!(
        "{method} sip:dialbridge@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {invite_cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

/// The caller's answer to a request the bridge sent.
fn answer(request: &Request, status: u16) -> SipMessage {
    SipMessage::Response(message::fields::response_for(request, status, None, None))
}

pub(super) fn requests(sent: Vec<SipMessage>) -> Vec<Request> {
    sent.into_iter()
        .filter_map(|m| match m {
            SipMessage::Request(r) => Some(r),
            SipMessage::Response(_) => None,
        })
        .collect()
}

pub(super) fn reason(request: &Request) -> String {
    request
        .headers
        .iter()
        .map(ToString::to_string)
        .find(|h| h.starts_with("Reason:"))
        .unwrap_or_default()
}

/// INVITE, 180, the 200 when the ring time is over, ACK: the call is up.
fn call_up(bench: &mut Bench, call: &str, extra: &str) -> Response {
    bench.receive(invite(call, extra));
    let codes: Vec<u16> = bench
        .responses()
        .iter()
        .map(|r| r.status_code.code())
        .collect();
    assert_eq!(codes, [100, 180], "ringing first");
    assert_eq!(bench.calls(), 1);
    assert_eq!(bench.reserved(), 1, "the number's capacity is taken");

    bench.advance(Duration::from_millis(1999));
    assert!(bench.responses().is_empty(), "not answered before its time");
    bench.advance(Duration::from_millis(1));
    let mut ok = bench.responses();
    let ok = ok.pop().expect("the 200");
    assert_eq!(ok.status_code.code(), 200);
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio "));
    bench.receive(in_dialog(&ok, "ACK", 1, &format!("{call}-ack")));
    ok
}

#[tokio::test]
async fn join_then_the_caller_hangs_up() {
    let mut bench = Bench::new(Duration::from_secs(2));
    let ok = call_up(&mut bench, "bye-caller", "");
    bench.advance(Duration::from_secs(600));
    assert_eq!(bench.calls(), 1, "a call without session timer stays up");

    bench.receive(in_dialog(&ok, "BYE", 2, "bye"));
    assert_eq!(bench.calls(), 0);
    assert_eq!(bench.reserved(), 0, "capacity back at once");
    assert!(bench.responses().is_empty(), "the 200 waits for the record");
    bench.records_committed().await;
    let codes: Vec<u16> = bench
        .responses()
        .iter()
        .map(|r| r.status_code.code())
        .collect();
    assert_eq!(codes, [200]);
    let record = bench.last_record();
    assert_eq!(record.ended_by, EndedBy::Caller);
    assert!(record.answered.is_some());
}

#[tokio::test]
async fn join_then_the_bridge_hangs_up_with_its_reason() {
    let mut bench = Bench::new(Duration::from_secs(2));
    let ok = call_up(&mut bench, "bye-bridge", "");
    // The meeting's word when an administrator removes the caller.
    bench.media_reports(MediaEvent::Meeting(ToMember::Kicked));
    assert_eq!((bench.calls(), bench.reserved()), (0, 0));
    bench.records_committed().await;
    let bye = requests(bench.sent()).pop().expect("our BYE");
    assert_eq!(bye.method, Method::Bye);
    assert!(reason(&bye).contains("removed from the meeting"), "{bye}");
    assert!(
        bye.to_string()
            .contains(&ok.call_id_header().unwrap().value().to_string())
    );
    bench.receive(answer(&bye, 200));
    assert!(bench.sent().is_empty());
    assert_eq!(bench.last_record().ended_by, EndedBy::Bridge);
}

#[tokio::test]
async fn cancel_before_the_answer() {
    let mut bench = Bench::new(Duration::from_secs(2));
    bench.receive(invite("cancelled", ""));
    let _ = bench.responses();
    bench.advance(Duration::from_millis(500));
    bench.receive(request(&format!(
        "CANCEL sip:{NUMBER}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-cancelled-inv\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+14155550100@127.0.0.20>;tag=cancelled\r\n\
         To: <sip:{NUMBER}@127.0.0.1>\r\n\
         Call-ID: cancelled\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
    )));
    assert_eq!((bench.calls(), bench.reserved()), (0, 0));
    bench.records_committed().await;
    let mut codes: Vec<(u16, Method)> = bench
        .responses()
        .iter()
        .map(|r| {
            (
                r.status_code.code(),
                r.cseq_header().unwrap().method().unwrap(),
            )
        })
        .collect();
    codes.sort_by_key(|(code, _)| *code);
    assert_eq!(codes, [(200, Method::Cancel), (487, Method::Invite)]);
    // The ring time passes: nothing is answered.
    bench.advance(Duration::from_secs(5));
    assert!(
        bench
            .responses()
            .iter()
            .all(|r| r.status_code.code() == 487),
        "only 487 again"
    );
    assert_eq!(bench.last_record().ended_by, EndedBy::Cancel);
}

#[tokio::test]
async fn an_ack_that_never_comes_ends_the_call() {
    let mut bench = Bench::new(Duration::ZERO);
    bench.receive(invite("no-ack", ""));
    let codes: Vec<u16> = bench
        .responses()
        .iter()
        .map(|r| r.status_code.code())
        .collect();
    assert_eq!(codes, [100, 200], "answered at once");
    // The 200 is retransmitted (T1, doubling to T2), then given up on after 64*T1.
    bench.advance(Duration::from_secs(31));
    let retransmitted = bench.responses();
    assert!(
        retransmitted.len() >= 6,
        "{} retransmissions",
        retransmitted.len()
    );
    assert_eq!(bench.calls(), 1);
    bench.advance(Duration::from_secs(2));
    assert_eq!((bench.calls(), bench.reserved()), (0, 0));
    bench.records_committed().await;
    let bye = requests(bench.sent()).pop().expect("our BYE");
    assert_eq!(bye.method, Method::Bye);
    assert!(reason(&bye).contains("no ACK"), "{}", reason(&bye));
    assert_eq!(bench.last_record().ended_by, EndedBy::Timeout);
}

#[tokio::test]
async fn we_refresh_the_session_and_its_failure_ends_the_call() {
    let mut bench = Bench::new(Duration::from_secs(2));
    let ok = call_up(
        &mut bench,
        "refresh",
        "Supported: timer\r\nSession-Expires: 120;refresher=uas\r\n",
    );
    assert!(ok.to_string().contains("refresher=uas"));
    // Half the interval: our re-INVITE with our SDP.
    bench.advance(Duration::from_secs(59));
    assert!(bench.sent().is_empty());
    bench.advance(Duration::from_secs(2));
    let refresh = requests(bench.sent()).pop().expect("a refresh");
    assert_eq!(refresh.method, Method::Invite);
    assert!(String::from_utf8_lossy(&refresh.body).contains("m=audio "));
    bench.receive(answer(&refresh, 200));
    let ack = requests(bench.sent()).pop().expect("the ACK for its 200");
    assert_eq!(ack.method, Method::Ack);

    // The next refresh finds the caller gone.
    bench.advance(Duration::from_secs(60));
    let refresh = requests(bench.sent()).pop().expect("a second refresh");
    bench.receive(answer(&refresh, 481));
    assert_eq!((bench.calls(), bench.reserved()), (0, 0));
    bench.records_committed().await;
    assert_eq!(bench.last_record().ended_by, EndedBy::Error);
}

#[tokio::test]
async fn a_refresh_the_caller_never_sends_expires_the_session() {
    let mut bench = Bench::new(Duration::from_secs(2));
    let _ok = call_up(
        &mut bench,
        "expiry",
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
    );
    // RFC 4028 §10: BYE at the interval less a third of it (at most 32 s).
    bench.advance(Duration::from_secs(59));
    assert_eq!(bench.calls(), 1);
    bench.advance(Duration::from_secs(2));
    assert_eq!((bench.calls(), bench.reserved()), (0, 0));
    bench.records_committed().await;
    let bye = requests(bench.sent()).pop().expect("our BYE");
    assert!(reason(&bye).contains("session expired"), "{}", reason(&bye));
    assert_eq!(bench.last_record().ended_by, EndedBy::Timeout);
}

#[tokio::test]
async fn a_caller_idle_in_the_ivr_is_asked_three_times_then_let_go() {
    let mut bench = Bench::new(Duration::from_secs(2));
    let _ok = call_up(&mut bench, "idle", "");
    // The welcome prompt ends; the first-digit timer (5 s in the demo) starts.
    bench.played();
    for _ in 0..2 {
        bench.advance(Duration::from_secs(5));
        assert_eq!(bench.calls(), 1, "asked again");
        bench.played();
    }
    bench.advance(Duration::from_secs(5));
    // The goodbye plays to the end before the bridge hangs up.
    assert_eq!(bench.calls(), 1);
    // An end reported for an older prompt changes nothing.
    bench.media_reports(MediaEvent::PlayDone { seq: 1 });
    assert_eq!(bench.calls(), 1);
    bench.played();
    assert_eq!((bench.calls(), bench.reserved()), (0, 0));
    bench.records_committed().await;
    let bye = requests(bench.sent()).pop().expect("our BYE");
    assert_eq!(bye.method, Method::Bye);
    assert!(reason(&bye).contains("No DTMF input"), "{}", reason(&bye));
    assert_eq!(bench.last_record().ended_by, EndedBy::Bridge);
}

#[tokio::test]
async fn admission_decides_without_opening_a_port_and_refuses_in_types() {
    let bench = Bench::new(Duration::ZERO);
    let trunk = bench
        .services
        .router
        .identify_trunk(caller().addr.ip())
        .expect("the demo trunk at 127.0.0.20");
    let now = bench.now;
    let SipMessage::Request(good) = invite("admit", "") else {
        unreachable!()
    };
    let admitted = bench
        .signaling
        .admit(
            good.clone(),
            trunk,
            &super::origin::Origin::direct(caller(), None),
            caller(),
            now,
        )
        .expect("admitted");
    assert_eq!(admitted.negotiated.codec.name, "PCMU");
    assert_eq!(bench.reserved(), 1, "the grant holds the number");
    drop(admitted);
    assert_eq!(bench.reserved(), 0, "and gives it back when dropped");

    let mut unknown = good.clone();
    unknown.uri = dialbridge_sip::rsip::Uri::try_from("sip:+33170009999@127.0.0.1").unwrap();
    let refused = bench
        .signaling
        .admit(
            unknown,
            trunk,
            &super::origin::Origin::direct(caller(), None),
            caller(),
            now,
        )
        .err()
        .expect("refused");
    assert!(
        matches!(refused.cause, Some(crate::refusal::Cause::Route(_))),
        "{:?}",
        refused.cause
    );
    assert_eq!(refused.response.status_code.code(), 404);

    // An offer with no codec we speak: the SIP crate's 488, no cause of ours.
    let mut g729 = good.clone();
    let body = SDP.replace("RTP/AVP 0 101", "RTP/AVP 18").replace(
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000",
        "a=rtpmap:18 G729/8000",
    );
    dialbridge_sip::message::fields::set_body(
        &mut g729.headers,
        &mut g729.body,
        "application/sdp",
        body.into_bytes(),
    );
    let refused = bench
        .signaling
        .admit(
            g729,
            trunk,
            &super::origin::Origin::direct(caller(), None),
            caller(),
            now,
        )
        .err()
        .expect("refused");
    assert_eq!(
        (refused.cause, refused.response.status_code.code()),
        (None, 488)
    );
    assert_eq!(bench.reserved(), 0, "a refused call holds nothing");
}

#[tokio::test]
async fn a_caller_without_timers_gets_one_and_an_unanswered_refresh_ends_the_call() {
    let mut bench = Bench::new(Duration::from_secs(2));
    let ok = call_up(&mut bench, "vanished", "");
    // The bridge asks for a timer it refreshes itself, without Require (no support).
    let expires = ok
        .headers
        .iter()
        .find(|h| h.to_string().starts_with("Session-Expires"))
        .map(ToString::to_string);
    assert_eq!(
        expires.as_deref(),
        Some("Session-Expires: 1800;refresher=uas")
    );
    assert!(!ok.to_string().contains("Require: timer"), "{ok}");
    bench.advance(Duration::from_secs(899));
    assert!(requests(bench.sent()).is_empty());
    bench.advance(Duration::from_secs(2));
    let refresh = requests(bench.sent()).pop().expect("our refresh");
    assert_eq!(refresh.method, Method::Invite);
    // The caller vanished: the re-INVITE is retransmitted, then Timer B (64*T1 after
    // it was sent, a second before the last advance ended).
    bench.advance(Duration::from_secs(29));
    assert_eq!(bench.calls(), 1);
    bench.advance(Duration::from_secs(3));
    assert_eq!((bench.calls(), bench.reserved()), (0, 0));
    bench.records_committed().await;
    assert_eq!(bench.last_record().ended_by, EndedBy::Timeout);
}

#[tokio::test]
async fn a_caller_whose_media_stops_is_hung_up() {
    let mut bench = Bench::new(Duration::from_secs(2));
    let _ok = call_up(&mut bench, "silent", "");
    bench.media_reports(MediaEvent::Silent(Duration::from_secs(30)));
    assert_eq!((bench.calls(), bench.reserved()), (0, 0));
    bench.records_committed().await;
    let bye = requests(bench.sent()).pop().expect("our BYE");
    assert_eq!(bye.method, Method::Bye);
    assert!(reason(&bye).contains("no media"), "{}", reason(&bye));
    assert_eq!(bench.last_record().ended_by, EndedBy::Timeout);
}

/// The names of a verified client certificate ride on each message of its connection and
/// identify the trunk there only: another connection from the same address, whose
/// message came after, is not taken for it.
#[tokio::test]
async fn a_certificate_identifies_its_trunk_on_its_own_connection_only() {
    let config = crate::testing::demo_config_edited(|text| {
        text.replace(
            "addresses = [\"127.0.0.20\"]",
            "addresses = [\"127.0.0.20\"]\ntls_names = [\"sbc.telco-a.example\"]",
        )
        .replace(
            "tls_private_key = \"tls/key.pem\"",
            "tls_private_key = \"tls/key.pem\"\ntls_client_ca = \"tls/ca.pem\"",
        )
    });
    let mut bench = Bench::with_config(config, Duration::ZERO);
    let named = Some(&["sbc.telco-a.example"][..]);
    let status = |bench: &mut Bench| {
        let responses = bench.responses();
        let last = responses.last().expect("a final response");
        let reason = last
            .headers
            .iter()
            .map(ToString::to_string)
            .find(|h| h.starts_with("Reason:"))
            .unwrap_or_default();
        (last.status_code.code(), reason)
    };
    bench.receive_over_tls(invite("named", ""), 7, named);
    assert_eq!(status(&mut bench).0, 200);
    // Connection 8 (no certificate) after connection 9 (another name).
    bench.receive_over_tls(
        request(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.20:5061;branch=z9hG4bK-o\r\n\
                 From: <sip:p@127.0.0.20>;tag=o\r\nTo: <sip:127.0.0.1>\r\nCall-ID: o\r\n\
                 CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        ),
        9,
        Some(&["other.example"][..]),
    );
    bench.responses();
    bench.receive_over_tls(invite("unnamed", ""), 8, None);
    let (code, reason) = status(&mut bench);
    assert_eq!(code, 403);
    assert!(
        reason.contains("requires a TLS client certificate"),
        "{reason}"
    );
    // Back on connection 7, its certificate counts again.
    bench.receive_over_tls(invite("named-again", ""), 7, named);
    assert_eq!(status(&mut bench).0, 200);
    assert_eq!(bench.calls(), 2);
}

/// Behind a trusted proxy (Kamailio), the caller the proxy names is who called — the
/// trunk of its address, or a softphone to challenge — while the answer goes back to the
/// proxy; anyone else's header is nobody's word.
#[tokio::test]
async fn a_trusted_proxy_names_the_caller_and_gets_the_answer() {
    const PROXY: &str = "127.0.0.1:5070";
    let trusting = || {
        crate::testing::demo_config_edited(|text| {
            format!("{text}\n[cluster]\ntrusted_proxies = [\"127.0.0.1\"]\n")
        })
    };
    // (trusted proxies, the packet's source, the header, the final status)
    let rows = [
        (true, PROXY, Some("udp 127.0.0.20:5060"), 200),
        (true, PROXY, Some("udp 127.0.0.99:5060"), 401),
        (true, PROXY, None, 401),
        (true, PROXY, Some("udp 127.0.0.20"), 401),
        (true, "127.0.0.99:5060", Some("udp 127.0.0.20:5060"), 401),
        (false, PROXY, Some("udp 127.0.0.20:5060"), 401),
    ];
    for (i, (trust, from, header, want)) in rows.into_iter().enumerate() {
        let config = if trust {
            trusting()
        } else {
            crate::testing::demo_config()
        };
        let mut bench = Bench::with_config(config, Duration::ZERO);
        let call = format!("relayed-{i}");
        let text = String::from_utf8(message::encode(&invite(&call, "")).to_vec()).unwrap();
        let proxy_via = format!("Via: SIP/2.0/UDP {from};branch=z9hG4bK-proxy-{i}\r\n");
        let source = header.map_or(String::new(), |h| format!("X-Dialbridge-Source: {h}\r\n"));
        let text = text.replacen("Via: ", &format!("{proxy_via}{source}Via: "), 1);
        let peer = PeerAddr {
            transport: TransportKind::Udp,
            addr: from.parse().unwrap(),
            connection: None,
        };
        let received = Received {
            peer,
            bytes: text.into_bytes().into(),
            certificate_names: None,
        };
        bench.signaling.handle_received(received, bench.now);
        bench.signaling.drive(bench.now);
        let Wire::Captured { sent, .. } = &mut bench.signaling.wire else {
            unreachable!()
        };
        let (to, last) = sent.pop().expect("a response");
        let SipMessage::Response(last) = message::parse(&last).unwrap() else {
            panic!("a response")
        };
        assert_eq!(last.status_code.code(), want, "row {i}");
        assert_eq!(
            to.addr, peer.addr,
            "row {i}: the answer goes to the packet's source"
        );
    }
}

// Money on the same bench (toll-free calls, credits, the notice).
#[path = "billing_tests.rs"]
mod billing;
