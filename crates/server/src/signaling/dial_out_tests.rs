//! Dial-outs through the signaling task on a virtual clock: the request as a meeting
//! hands it over, the INVITEs as the trunks would see them (captured, never sent), the
//! far end's answers handed in by the test. Which trunk is tried and in what order, what
//! each answer means, what the leader hears, and that capacity comes back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use dialbridge_conference::ivr::{ConferenceId, ConferenceKey, PromptId, TenantId};
use dialbridge_sip::message;
use dialbridge_sip::rsip::prelude::*;
use dialbridge_sip::rsip::{Method, Request, Response, SipMessage};
use tokio::sync::{mpsc, oneshot};

use dialbridge_conference::Digit;

use super::tests::{Bench, requests};
use crate::call_flow::CallReport;
use crate::call_flow::media::MediaEvent;
use crate::conferences::{DialOutRequest, ToMember};
use crate::dial_out::{DialOutId, DialOutRefusal, DialOutState};

const MICROSOFT_OUT: &str = "127.0.0.10:5080";
const TELCO_A_OUT: &str = "127.0.0.20:5080";
const TELCO_B_OUT: &str = "127.0.0.30:5080";

/// The far end's SDP: G.711 with telephone-event.
const FAR_SDP: &str = "v=0\r\no=far 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\n\
t=0 0\r\nm=audio 41000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn conference(tenant: &str, id: &str) -> ConferenceKey {
    ConferenceKey {
        tenant: TenantId::new(tenant),
        id: ConferenceId::parse(id).unwrap(),
    }
}

/// A leader of `tenant`'s meeting keys a number: what the API hears (if it asked) and
/// what the leader hears.
struct Asked {
    reply: oneshot::Receiver<Result<DialOutId, DialOutRefusal>>,
    leader: mpsc::Receiver<ToMember>,
}

impl Asked {
    fn id(&mut self) -> DialOutId {
        self.reply.try_recv().unwrap().unwrap()
    }

    /// The prompts the leader was told to hear so far.
    fn heard(&mut self) -> Vec<PromptId> {
        std::iter::from_fn(|| self.leader.try_recv().ok())
            .filter_map(|m| match m {
                ToMember::Play(p) => Some(p),
                _ => None,
            })
            .collect()
    }
}

fn ask(bench: &mut Bench, tenant: &str, id: &str, number: &str) -> Asked {
    let (tx, leader) = mpsc::channel(16);
    let (reply_tx, reply) = oneshot::channel();
    let request = DialOutRequest {
        conference: conference(tenant, id),
        organiser: None,
        number: number.to_string(),
        leader: Some(tx),
        reply: Some(reply_tx),
    };
    bench.signaling.handle_dial_out_request(request, bench.now);
    bench.signaling.drive(bench.now);
    commits(bench);
    Asked { reply, leader }
}

/// Hands in what the ledger committed so far: a dial-out's first INVITE waits for its
/// first increment's row (the media tasks' reports, unread here, are dropped).
fn commits(bench: &mut Bench) {
    if let Some(ledger) = &bench.services.ledger {
        ledger.flush();
    }
    while let Ok(report) = bench.signaling.reports.try_recv() {
        if matches!(
            report,
            CallReport::Billing { .. } | CallReport::DialOutBilling { .. }
        ) {
            bench.signaling.handle_call_report(report, bench.now);
            bench.signaling.drive(bench.now);
        }
    }
}

/// Adds credits to `tenant`'s balance, committed.
fn top_up(bench: &Bench, tenant: &str, amount: &str) {
    let ledger = bench.services.ledger.as_ref().unwrap();
    let (done, committed) = dialbridge_ledger::done_channel();
    ledger
        .top_up(
            tenant,
            amount.parse().unwrap(),
            std::time::SystemTime::now(),
            done,
        )
        .unwrap();
    committed.recv().unwrap().unwrap();
}

/// contoso's US pool: minutes left this month.
fn pool_left(bench: &Bench) -> u64 {
    let ledger = bench.services.ledger.as_ref().unwrap();
    ledger.flush();
    let b = ledger
        .balance("contoso", std::time::SystemTime::now())
        .unwrap();
    b.pools[0].minutes_left
}

/// The INVITEs sent since the last look, with the target their Request-URI names.
fn invites(bench: &mut Bench) -> Vec<Request> {
    requests(bench.sent())
        .into_iter()
        .filter(|r| r.method == Method::Invite)
        .collect()
}

fn target(invite: &Request) -> String {
    invite
        .uri
        .to_string()
        .split('@')
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// The far end answers `invite` with `status` (a To tag for 1xx-2xx, SDP with a 2xx).
fn far_end(bench: &mut Bench, invite: &Request, status: u16) {
    let tag = (status > 100).then_some("far-tag");
    let mut response: Response = message::fields::response_for(invite, status, None, tag);
    if (200..300).contains(&status) {
        response.headers.push(dialbridge_sip::rsip::Header::Contact(
            dialbridge_sip::rsip::headers::Contact::new(format!("<sip:far@{}>", target(invite))),
        ));
        message::fields::set_body(
            &mut response.headers,
            &mut response.body,
            "application/sdp",
            FAR_SDP.as_bytes().to_vec(),
        );
    }
    bench.receive(SipMessage::Response(response));
}

fn state(bench: &Bench, id: DialOutId) -> DialOutState {
    bench.services.dial_outs.get(id).unwrap().state
}

fn trunk_in_progress(bench: &Bench, trunk: &str) -> u32 {
    bench
        .services
        .router
        .snapshot()
        .trunks
        .iter()
        .find(|t| &*t.name == trunk)
        .map_or(0, |t| t.in_progress)
}

#[tokio::test]
async fn a_503_fails_over_to_the_next_trunk_which_rings_and_answers() {
    let mut bench = Bench::new(Duration::ZERO);
    let mut asked = ask(&mut bench, "contoso", "123456789", "+14255557000");
    let id = asked.id();
    let first = invites(&mut bench);
    assert_eq!(first.len(), 1);
    assert_eq!(
        target(&first[0]),
        MICROSOFT_OUT,
        "contoso's route starts at Microsoft"
    );
    assert!(first[0].uri.to_string().starts_with("sip:+14255557000@"));
    assert_eq!(trunk_in_progress(&bench, "microsoft-pstn"), 1);
    assert_eq!(asked.heard(), [PromptId::DialOutCalling]);

    far_end(&mut bench, &first[0], 503);
    assert_eq!(
        trunk_in_progress(&bench, "microsoft-pstn"),
        0,
        "its capacity is back"
    );
    let second = invites(&mut bench);
    assert_eq!(second.len(), 1);
    assert_eq!(target(&second[0]), TELCO_A_OUT, "then Telco A");
    let view = bench.services.dial_outs.get(id).unwrap();
    assert_eq!(view.tried, ["microsoft-pstn", "telco-a"]);

    far_end(&mut bench, &second[0], 180);
    assert_eq!(state(&bench, id), DialOutState::Ringing);
    assert_eq!(asked.heard(), [PromptId::DialOutRinging]);

    far_end(&mut bench, &second[0], 200);
    let acks: Vec<Request> = requests(bench.sent())
        .into_iter()
        .filter(|r| r.method == Method::Ack)
        .collect();
    assert_eq!(acks.len(), 1, "the 2xx is ACKed");
    assert_eq!(bench.calls(), 1, "the answered dial-out is a call");
    assert_eq!(state(&bench, id), DialOutState::Answered);
    assert_eq!(asked.heard(), [PromptId::DialOutAnswered]);
    assert_eq!(trunk_in_progress(&bench, "telco-a"), 1);

    // The invitation plays; 1 joins the meeting as a participant.
    let call = bench.signaling.calls.values().next().unwrap();
    assert!(call.membership.is_none(), "not in the meeting before 1");
    bench.media_reports(MediaEvent::Digit(Digit::Five));
    assert!(
        bench
            .signaling
            .calls
            .values()
            .next()
            .unwrap()
            .membership
            .is_none()
    );
    bench.media_reports(MediaEvent::Digit(Digit::One));
    assert!(
        bench
            .signaling
            .calls
            .values()
            .next()
            .unwrap()
            .membership
            .is_some(),
        "1 joins"
    );

    // The called party hangs up: the call ends, its record is written, its trunk's
    // capacity comes back.
    bench.receive(far_end_bye(&second[0]));
    bench.records_committed().await;
    let ok = bench
        .sent()
        .into_iter()
        .find_map(|m| match m {
            SipMessage::Response(r) if r.status_code.code() == 200 => Some(r),
            _ => None,
        })
        .expect("200 to the far end's BYE");
    assert_eq!(ok.cseq_header().unwrap().value(), "1 BYE");
    assert_eq!(bench.calls(), 0);
    assert_eq!(trunk_in_progress(&bench, "telco-a"), 0);
    assert_eq!(state(&bench, id), DialOutState::Ended);
    let record = bench
        .services
        .cdrs
        .list(&crate::cdr::CdrFilter::default())
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(record.trunk, "telco-a");
    assert_eq!(record.dialled.to_string(), "+14255557000");
    assert_eq!(
        record.calling, "+14255550100",
        "the bridge's first toll number"
    );
}

/// The called party's BYE in the dialog its 200 to `invite` made.
fn far_end_bye(invite: &Request) -> SipMessage {
    far_end_bye_from(invite, TELCO_A_OUT)
}

/// ... sent from `via`.
fn far_end_bye_from(invite: &Request, via: &str) -> SipMessage {
    let from = invite.from_header().unwrap().value().to_string();
    let to = invite.to_header().unwrap().value().to_string();
    let call_id = invite.call_id_header().unwrap().value().to_string();
    super::tests::request(&format!(
        "BYE sip:dialbridge@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via};branch=z9hG4bK-far-bye\r\n\
         Max-Forwards: 70\r\n\
         From: {to};tag=far-tag\r\nTo: {from}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

#[tokio::test]
async fn busy_declined_and_no_answer_are_told_to_the_leader() {
    let mut bench = Bench::new(Duration::ZERO);
    for (status, expected, prompt) in [
        (486, DialOutState::Busy, PromptId::DialOutBusy),
        (603, DialOutState::Declined, PromptId::DialOutDeclined),
        (480, DialOutState::NoAnswer, PromptId::DialOutNoAnswer),
    ] {
        let mut asked = ask(&mut bench, "contoso", "123456789", "+14255557000");
        let id = asked.id();
        let invite = invites(&mut bench).pop().unwrap();
        far_end(&mut bench, &invite, status);
        assert_eq!(state(&bench, id), expected, "{status}");
        assert_eq!(
            asked.heard(),
            [PromptId::DialOutCalling, prompt],
            "{status}: no other trunk is tried"
        );
        assert!(invites(&mut bench).is_empty());
    }
    assert_eq!(trunk_in_progress(&bench, "microsoft-pstn"), 0);
}

#[tokio::test]
async fn a_far_end_that_rings_too_long_is_cancelled_as_no_answer() {
    let mut bench = Bench::new(Duration::ZERO);
    let mut asked = ask(&mut bench, "contoso", "123456789", "+14255557000");
    let id = asked.id();
    let invite = invites(&mut bench).pop().unwrap();
    far_end(&mut bench, &invite, 180);
    let ring = bench.signaling.config.dial_out.ring_timeout;
    bench.advance(ring - Duration::from_millis(1));
    assert!(
        requests(bench.sent())
            .iter()
            .all(|r| r.method != Method::Cancel),
        "not before its time"
    );
    bench.advance(Duration::from_millis(1));
    let cancel = requests(bench.sent())
        .into_iter()
        .find(|r| r.method == Method::Cancel)
        .expect("a CANCEL when the ring time is over");
    far_end(&mut bench, &cancel, 200);
    far_end(&mut bench, &invite, 487);
    assert_eq!(state(&bench, id), DialOutState::NoAnswer);
    assert_eq!(
        asked.heard(),
        [
            PromptId::DialOutCalling,
            PromptId::DialOutRinging,
            PromptId::DialOutNoAnswer
        ]
    );
    assert!(
        invites(&mut bench).is_empty(),
        "no answer is no trunk failure"
    );
}

#[tokio::test]
async fn every_trunk_failing_ends_the_dial_out_as_failed() {
    let mut bench = Bench::new(Duration::ZERO);
    let mut asked = ask(&mut bench, "contoso", "123456789", "+14255557000");
    let id = asked.id();
    let first = invites(&mut bench).pop().unwrap();
    far_end(&mut bench, &first, 503);
    let second = invites(&mut bench).pop().unwrap();
    // No final answer at all from Telco A: Timer B, 64*T1.
    bench.advance(Duration::from_secs(33));
    assert_eq!(target(&second), TELCO_A_OUT);
    assert_eq!(state(&bench, id), DialOutState::Failed);
    assert_eq!(asked.heard().last(), Some(&PromptId::DialOutFailed));
    assert_eq!(trunk_in_progress(&bench, "telco-a"), 0);
}

#[tokio::test]
async fn fabrikam_dials_out_through_telco_b_only() {
    let mut bench = Bench::new(Duration::ZERO);
    top_up(&bench, "fabrikam", "5.00");
    let mut asked = ask(&mut bench, "fabrikam", "555000111", "+4930123456");
    let id = asked.id();
    let invite = invites(&mut bench).pop().unwrap();
    assert_eq!(target(&invite), TELCO_B_OUT);
    far_end(&mut bench, &invite, 503);
    assert!(
        invites(&mut bench).is_empty(),
        "Operator Connect Conferencing never falls back to Microsoft"
    );
    assert_eq!(state(&bench, id), DialOutState::Failed);
}

#[tokio::test]
async fn what_cannot_be_dialled_is_refused_before_any_invite() {
    let mut bench = Bench::new(Duration::ZERO);
    let mut asked = ask(&mut bench, "contoso", "123456789", "+1-not-a-number");
    assert!(matches!(
        asked.reply.try_recv().unwrap(),
        Err(DialOutRefusal::NotANumber(_))
    ));
    assert_eq!(asked.heard(), [PromptId::DialOutNotAllowed]);
    let mut asked = ask(&mut bench, "nobody", "123456789", "+14255557000");
    assert!(matches!(
        asked.reply.try_recv().unwrap(),
        Err(DialOutRefusal::NoRoute(_))
    ));
    assert!(invites(&mut bench).is_empty());
    assert_eq!(bench.services.dial_outs.in_progress(), 0);
}

#[tokio::test]
async fn a_dial_out_to_the_pools_country_is_paid_from_the_pool_minute_by_minute() {
    let mut bench = Bench::new(Duration::ZERO);
    let before = pool_left(&bench);
    let mut asked = ask(&mut bench, "contoso", "123456789", "+14255557000");
    let _ = asked.id();
    let invite = invites(&mut bench)
        .pop()
        .expect("placed once its minute is held");
    far_end(&mut bench, &invite, 200);
    assert_eq!(bench.calls(), 1);
    // Two started minutes: the first, and the second reserved ahead of its start.
    bench.advance(Duration::from_secs(61));
    commits(&mut bench);
    bench.receive(far_end_bye_from(&invite, MICROSOFT_OUT));
    bench.records_committed().await;
    commits(&mut bench);
    assert_eq!(
        before - pool_left(&bench),
        2,
        "a started minute is a minute"
    );
    let record = bench
        .services
        .cdrs
        .list(&crate::cdr::CdrFilter::default())
        .unwrap()
        .pop()
        .unwrap();
    let billed = record.billing.expect("a billed dial-out");
    assert_eq!(billed.funding, "pool +1");
    assert_eq!(billed.seconds, 120);
    assert_eq!(record.direction, crate::cdr::Direction::Outbound);
}

#[tokio::test]
async fn a_dial_out_nothing_pays_for_is_refused_before_any_invite() {
    let mut bench = Bench::new(Duration::ZERO);
    // fabrikam: no credits, no pool.
    let mut asked = ask(&mut bench, "fabrikam", "555000111", "+4930123456");
    assert!(matches!(
        asked.reply.try_recv().unwrap(),
        Err(DialOutRefusal::NotFunded(_))
    ));
    assert_eq!(asked.heard(), [PromptId::DialOutNoFunding]);
    assert!(invites(&mut bench).is_empty());
    assert_eq!(trunk_in_progress(&bench, "telco-b"), 0);
    // Topped up, it goes out through Telco B, at +49's rate.
    top_up(&bench, "fabrikam", "1.00");
    let mut asked = ask(&mut bench, "fabrikam", "555000111", "+4930123456");
    let _ = asked.id();
    let invite = invites(&mut bench).pop().expect("placed once funded");
    assert_eq!(target(&invite), TELCO_B_OUT);
}

#[tokio::test]
async fn an_unanswered_dial_out_is_refunded_and_recorded() {
    let mut bench = Bench::new(Duration::ZERO);
    let before = pool_left(&bench);
    let mut asked = ask(&mut bench, "contoso", "123456789", "+14255557000");
    let _ = asked.id();
    let invite = invites(&mut bench).pop().unwrap();
    far_end(&mut bench, &invite, 486);
    bench.records_committed().await;
    assert_eq!(pool_left(&bench), before, "the held minute is given back");
    let record = bench
        .services
        .cdrs
        .list(&crate::cdr::CdrFilter::default())
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(record.sip_status, 486);
    assert_eq!(record.answered, None);
    assert_eq!(record.trunk, "microsoft-pstn");
    assert_eq!(record.dialled.to_string(), "+14255557000");
    assert_eq!(record.direction, crate::cdr::Direction::Outbound);
}

#[tokio::test]
async fn a_callee_who_hangs_up_without_keying_1_declined_the_invitation() {
    let mut bench = Bench::new(Duration::ZERO);
    let mut asked = ask(&mut bench, "contoso", "123456789", "+14255557000");
    let id = asked.id();
    let invite = invites(&mut bench).pop().unwrap();
    far_end(&mut bench, &invite, 200);
    assert_eq!(state(&bench, id), DialOutState::Answered);
    bench.receive(far_end_bye_from(&invite, MICROSOFT_OUT));
    bench.records_committed().await;
    assert_eq!(bench.calls(), 0);
    assert_eq!(state(&bench, id), DialOutState::Declined);
}
