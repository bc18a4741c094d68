//! Money through the signaling task, on the virtual clock of `tests.rs` (whose helpers
//! this module shares): a toll-free call from the Microsoft trunk is refused before its
//! answer without credits, answered only once its first minute is committed, pays
//! minute by minute, and when the next minute cannot be paid hears the notice and ends
//! with a BYE and its Reason; its record says what paid and what it cost. The ledger is
//! the real one (in memory); its writer thread's reports are handed in by the test (as a
//! shared PostgreSQL ledger would answer them, for a refusal that comes with the commit).

use std::time::Duration;

use dialbridge_sip::rsip::{Method, SipMessage};
use dialbridge_sip::transaction::{PeerAddr, TransportKind};
use dialbridge_sip::transport::Received;

use super::*;
use crate::call_flow::CallReport;

const MICROSOFT: &str = "127.0.0.10:5060";
const TOLL_FREE: &str = "+18885550100";

/// The demo bridge with contoso's opening credits set to `credits`.
fn bench(credits: &str, answer_after: Duration) -> Bench {
    let config = crate::testing::demo_config_edited(|text| {
        text.replace("credits = \"20.00\"", &format!("credits = \"{credits}\""))
    });
    Bench::with_config(config, answer_after)
}

fn microsoft() -> PeerAddr {
    PeerAddr {
        transport: TransportKind::Udp,
        addr: MICROSOFT.parse().unwrap(),
        connection: None,
    }
}

/// A message from the Microsoft trunk's SBC.
fn from_microsoft(bench: &mut Bench, message: SipMessage) {
    let received = Received {
        peer: microsoft(),
        bytes: message::encode(&message),
        certificate_names: None,
    };
    bench.signaling.handle_received(received, bench.now);
    bench.signaling.drive(bench.now);
}

fn toll_free_invite(call: &str) -> SipMessage {
    let text = invite(call, "")
        .to_string()
        .replace(NUMBER, TOLL_FREE)
        .replace(CALLER, MICROSOFT)
        .replace("127.0.0.20", "127.0.0.10");
    request(&text)
}

/// Hands in the ledger's reports of what it committed so far (the media tasks' reports,
/// unread in these tests, are dropped).
fn ledger_commits(bench: &mut Bench) {
    if let Some(ledger) = &bench.services.ledger {
        ledger.flush();
    }
    while let Ok(report) = bench.signaling.reports.try_recv() {
        if matches!(report, CallReport::Billing { .. }) {
            bench.signaling.handle_call_report(report, bench.now);
            bench.signaling.drive(bench.now);
        }
    }
}

fn codes(responses: &[Response]) -> Vec<u16> {
    responses.iter().map(|r| r.status_code.code()).collect()
}

fn balance(bench: &Bench) -> (String, String) {
    let ledger = bench.services.ledger.as_ref().unwrap();
    ledger.flush();
    let b = ledger
        .balance("contoso", std::time::SystemTime::now())
        .unwrap();
    (b.credits.to_string(), b.reserved.to_string())
}

/// The money refusals `/metrics` counts, those not zero.
fn refusals_counted(bench: &Bench) -> Vec<(&str, u64)> {
    bench
        .services
        .money_refusals
        .counts()
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The paid minute ends 5 s on: the call ends with a BYE that says credits exhausted.
async fn ends_as_credits_exhausted(bench: &mut Bench) {
    bench.advance(Duration::from_secs(5));
    assert_eq!(bench.calls(), 0);
    bench.records_committed().await;
    let bye = requests(bench.sent()).pop().expect("our BYE");
    assert!(
        reason(&bye).contains("credits exhausted"),
        "{}",
        reason(&bye)
    );
}

/// A toll-free call answered once its first minute is committed, and ACKed.
fn toll_free_up(bench: &mut Bench, call: &str) -> Response {
    from_microsoft(bench, toll_free_invite(call));
    assert_eq!(
        codes(&bench.responses()),
        [100, 180],
        "rings while the ledger commits"
    );
    assert_eq!(bench.calls(), 1);
    ledger_commits(bench);
    let ok = bench.responses().pop().expect("the 200 once funded");
    assert_eq!(ok.status_code.code(), 200);
    let ack = in_dialog(&ok, "ACK", 1, &format!("{call}-ack"))
        .to_string()
        .replace(CALLER, MICROSOFT);
    from_microsoft(bench, request(&ack));
    ok
}

#[tokio::test]
async fn a_toll_free_call_pays_minute_by_minute_and_ends_when_the_next_cannot_be_paid() {
    // 0.10 pays three minutes at 0.03.
    let mut bench = bench("0.10", Duration::ZERO);
    let _ok = toll_free_up(&mut bench, "tf-paid");
    assert_eq!(balance(&bench), ("0.10".into(), "0.03".into()));
    // 5 s before each boundary the next minute is reserved; at it the last is settled.
    bench.advance(Duration::from_secs(55));
    ledger_commits(&mut bench);
    assert_eq!(balance(&bench), ("0.10".into(), "0.06".into()));
    bench.advance(Duration::from_secs(5));
    assert_eq!(balance(&bench), ("0.07".into(), "0.03".into()));
    bench.advance(Duration::from_secs(60));
    ledger_commits(&mut bench);
    assert_eq!(balance(&bench), ("0.04".into(), "0.03".into()));
    assert_eq!(bench.calls(), 1);
    // The fourth minute cannot be paid: the notice plays within the third.
    let played_before = bench.signaling.calls.values().next().unwrap().play_seq;
    bench.advance(Duration::from_secs(55));
    assert_eq!(bench.calls(), 1, "the call hears the notice first");
    let played = bench.signaling.calls.values().next().unwrap().play_seq;
    assert_eq!(played, played_before + 1, "the notice is commanded");
    assert!(requests(bench.sent()).is_empty(), "no BYE yet");
    bench.played();
    assert_eq!((bench.calls(), bench.reserved()), (0, 0));
    bench.records_committed().await;
    let bye = requests(bench.sent()).pop().expect("our BYE");
    assert_eq!(bye.method, Method::Bye);
    assert!(
        reason(&bye).contains("communications credits exhausted"),
        "{}",
        reason(&bye)
    );
    assert_eq!(balance(&bench), ("0.01".into(), "0.00".into()));
    let record = bench.last_record();
    assert_eq!(record.ended_by, EndedBy::Bridge);
    assert_eq!(record.provider.as_deref(), Some("Microsoft"));
    let billed = record.billing.expect("billed");
    assert_eq!(billed.funding, "credits");
    assert_eq!(
        (billed.seconds, billed.cost.to_string()),
        (180, "0.09".to_string())
    );
    assert_eq!(
        bench
            .services
            .money_refusals
            .counts()
            .map(|(_, n)| n)
            .sum::<u64>(),
        1
    );
}

#[tokio::test]
async fn a_notice_that_overruns_the_paid_time_ends_the_call_at_its_end() {
    let mut bench = bench("0.03", Duration::ZERO);
    let _ok = toll_free_up(&mut bench, "tf-overrun");
    bench.advance(Duration::from_secs(55));
    assert_eq!(bench.calls(), 1);
    // The notice never reports its end: the paid minute's end ends the call.
    ends_as_credits_exhausted(&mut bench).await;
    assert_eq!(balance(&bench), ("0.00".into(), "0.00".into()));
}

#[tokio::test]
async fn a_toll_free_call_without_credits_is_refused_before_the_answer() {
    let mut bench = bench("0.02", Duration::from_secs(2));
    from_microsoft(&mut bench, toll_free_invite("tf-refused"));
    let responses = bench.responses();
    assert_eq!(codes(&responses), [100, 403]);
    let refusal = responses.last().unwrap().to_string();
    assert!(
        refusal.contains("Reason: SIP;cause=403;text=\"no communications credits\""),
        "{refusal}"
    );
    assert_eq!(bench.calls(), 0);
    assert_eq!(
        balance(&bench),
        ("0.02".into(), "0.00".into()),
        "nothing taken"
    );
    assert_eq!(refusals_counted(&bench), [("no_credits", 1)]);
    // A toll call of the same tenant is not billed, and goes through.
    let mut bench = self::bench("0.02", Duration::from_secs(2));
    let _ok = call_up(&mut bench, "toll", "");
    bench.advance(Duration::from_secs(600));
    assert_eq!(bench.calls(), 1);
    assert_eq!(balance(&bench), ("0.02".into(), "0.00".into()));
}

#[tokio::test]
async fn an_unanswered_toll_free_call_is_refunded_and_rings_its_ring_time() {
    let mut bench = bench("1.00", Duration::from_secs(2));
    from_microsoft(&mut bench, toll_free_invite("tf-cancel"));
    assert_eq!(codes(&bench.responses()), [100, 180]);
    ledger_commits(&mut bench);
    assert!(
        bench.responses().is_empty(),
        "funded, but the ring time runs"
    );
    assert_eq!(balance(&bench), ("1.00".into(), "0.03".into()));
    bench.advance(Duration::from_millis(1500));
    from_microsoft(
        &mut bench,
        request(&format!(
            "CANCEL sip:{TOLL_FREE}@127.0.0.1 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {MICROSOFT};branch=z9hG4bK-tf-cancel-inv\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:+14155550100@127.0.0.10>;tag=tf-cancel\r\n\
                 To: <sip:{TOLL_FREE}@127.0.0.1>\r\n\
                 Call-ID: tf-cancel\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
        )),
    );
    assert_eq!(bench.calls(), 0);
    bench.records_committed().await;
    assert_eq!(balance(&bench), ("1.00".into(), "0.00".into()), "refunded");
    let record = bench.last_record();
    assert_eq!(record.ended_by, EndedBy::Cancel);
    assert_eq!(record.billing.map(|b| b.seconds), Some(0));

    // Answered at the end of its ring time, once funded.
    let mut bench = bench_with_ring();
    from_microsoft(&mut bench, toll_free_invite("tf-ring"));
    ledger_commits(&mut bench);
    let _ = bench.responses();
    bench.advance(Duration::from_millis(1999));
    assert!(bench.responses().is_empty());
    bench.advance(Duration::from_millis(1));
    assert_eq!(codes(&bench.responses()), [200]);
}

fn bench_with_ring() -> Bench {
    bench("1.00", Duration::from_secs(2))
}

#[tokio::test]
async fn without_money_a_toll_free_call_is_neither_billed_nor_held() {
    let config = crate::testing::demo_config_edited(|text| {
        let start = text.find("\n[money]").unwrap();
        text[..start].to_string()
    });
    let mut bench = Bench::with_config(config, Duration::ZERO);
    assert!(bench.services.ledger.is_none());
    from_microsoft(&mut bench, toll_free_invite("tf-free"));
    assert_eq!(codes(&bench.responses()), [100, 200], "answered at once");
    assert!(bench.signaling.calls.values().all(|c| c.billing.is_none()));
}

/// Hands in the ledger's reports as a shared ledger's database would have answered
/// them: each reservation refused (another node spent the credits first).
fn ledger_refuses(bench: &mut Bench) {
    if let Some(ledger) = &bench.services.ledger {
        ledger.flush();
    }
    while let Ok(report) = bench.signaling.reports.try_recv() {
        if let CallReport::Billing { id, mut committed } = report {
            committed.result = Err(dialbridge_ledger::LedgerError::Refused(
                dialbridge_ledger::Refusal::NoCredits,
            ));
            let report = CallReport::Billing { id, committed };
            bench.signaling.handle_call_report(report, bench.now);
            bench.signaling.drive(bench.now);
        }
    }
}

#[tokio::test]
async fn a_first_minute_the_shared_database_refuses_refuses_the_call_as_unfunded() {
    let mut bench = bench("1.00", Duration::from_secs(2));
    from_microsoft(&mut bench, toll_free_invite("tf-db-refused"));
    assert_eq!(codes(&bench.responses()), [100, 180]);
    ledger_refuses(&mut bench);
    assert_eq!(bench.calls(), 0, "never answered");
    bench.records_committed().await;
    let refusal = bench.responses().pop().expect("a final answer").to_string();
    // Ringing already: the final answer is the cause's own, the same as an immediate
    // refusal's, not "billing unavailable".
    assert!(refusal.starts_with("SIP/2.0 403 "), "{refusal}");
    assert!(
        refusal.contains("Reason: SIP;cause=403;text=\"no communications credits\""),
        "{refusal}"
    );
    assert_eq!(bench.last_record().ended_by, EndedBy::Bridge);
    assert_eq!(refusals_counted(&bench), [("no_credits", 1)]);
}

#[tokio::test]
async fn a_next_minute_the_shared_database_refuses_plays_the_notice_and_ends_the_call() {
    let mut bench = bench("1.00", Duration::ZERO);
    let _ok = toll_free_up(&mut bench, "tf-db-next");
    let played_before = bench.signaling.calls.values().next().unwrap().play_seq;
    bench.advance(Duration::from_secs(55));
    ledger_refuses(&mut bench);
    assert_eq!(bench.calls(), 1, "the call hears the notice first");
    let played = bench.signaling.calls.values().next().unwrap().play_seq;
    assert_eq!(played, played_before + 1, "the notice is commanded");
    assert!(requests(bench.sent()).is_empty(), "no BYE yet");
    // Its paid minute ends: the call ends as credits exhausted.
    ends_as_credits_exhausted(&mut bench).await;
    assert_eq!(bench.last_record().billing.map(|b| b.seconds), Some(60));
}
