//! sipp keying its way into meetings with RFC 4733 events replayed from the captures of
//! fixtures/sipp/pcap/ (made by scripts/make-pcaps.py), against the demo deployment; and
//! the UAS scenario for dial-outs, called by sbc-sim. The bridge's gauges tell whether the
//! keys worked: a caller counts as a participant only once it is in a meeting's mix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialbridge_media::Tone;
use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::caller::{caller, place};
use dialbridge_testkit::ip;
use dialbridge_testkit::ports::free_udp_tcp_port;
use dialbridge_testkit::sipp::{Sipp, SippOutcome};
use sbc_sim::audio_check::Expectation;
use sbc_sim::rtp::Source;

const TELCO_A: &str = "127.0.0.20";
const MICROSOFT_PSTN: &str = "127.0.0.10";
/// The Microsoft number on contoso's bridge.
const MICROSOFT_NUMBER: &str = "+14255550100";
/// Telco A's number on contoso's bridge.
const TELCO_A_NUMBER: &str = "+33170000100";
/// No trunk's address: where the dial-out UAS listens.
const DIALOUT_PHONE: &str = "127.0.0.40";

fn assert_passed(what: &str, outcome: &SippOutcome) {
    assert!(
        outcome.passed(),
        "{what}: sipp failed ({:?}):\n{}",
        outcome.code,
        outcome.log
    );
}

/// Polls `done` every 20 ms; true when it held within `within`.
async fn eventually(mut done: impl FnMut() -> bool, within: Duration) -> bool {
    let end = Instant::now() + within;
    while !done() {
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sipp_callers_key_their_way_into_adeles_meeting() {
    let bridge = TestBridge::start(demo_config()).await;
    // Both key 123456789# then # from the pcaps, and stay 6 s in the meeting.
    let sipp = Sipp::new(
        "uac-dtmf-join.xml",
        bridge.sip_addr(),
        ip(TELCO_A),
        TELCO_A_NUMBER,
    )
    .calls(2, 2)
    .hold(Duration::from_secs(6))
    .timeout(Duration::from_secs(40));
    let sipp = tokio::spawn(async move { sipp.run().await });
    let both_in = eventually(|| bridge.participants() == 2, Duration::from_secs(20)).await;
    let meetings = bridge.meetings();
    let outcome = sipp.await.unwrap();
    assert_passed("uac-dtmf-join", &outcome);
    assert!(
        both_in,
        "the two callers never were both in the mix (participants {})",
        bridge.participants()
    );
    assert_eq!(meetings, 1, "one meeting for both callers");
    assert!(
        eventually(|| bridge.calls_in_progress() == 0, Duration::from_secs(5)).await,
        "calls still up after sipp's BYEs"
    );
    assert_eq!(bridge.participants(), 0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sipp_load_scenario_fills_adeles_meeting() {
    let bridge = TestBridge::start(demo_config()).await;
    // 10 calls at 5 calls/s through the Microsoft PSTN: each keys its way in, talks
    // (the PCMU capture) and holds 4 s, so all ten overlap in the meeting.
    let sipp = Sipp::new(
        "uac-load.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        MICROSOFT_NUMBER,
    )
    .calls(10, 10)
    .rate(5)
    .hold(Duration::from_secs(4))
    .timeout(Duration::from_secs(40));
    let sipp = tokio::spawn(async move { sipp.run().await });
    let all_in = eventually(|| bridge.participants() == 10, Duration::from_secs(20)).await;
    let (peak, meetings) = (bridge.participants(), bridge.meetings());
    let outcome = sipp.await.unwrap();
    assert_passed("uac-load", &outcome);
    assert!(all_in, "never ten callers in the mix (last seen {peak})");
    assert_eq!(meetings, 1, "one meeting for all ten");
    assert!(
        eventually(|| bridge.calls_in_progress() == 0, Duration::from_secs(5)).await,
        "calls still up after sipp's BYEs"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sipp_organiser_keys_megans_pin_and_opens_her_meeting() {
    let bridge = TestBridge::start(demo_config()).await;
    let sip = bridge.sip_addr();
    // megan's meeting waits for its leader: a participant (sbc-sim) waits in the lobby.
    let participant = tokio::spawn(place(
        sip,
        TELCO_A,
        caller(
            TELCO_A_NUMBER,
            Source::Silence,
            "wait 500ms, keys 987654321#, wait 1500ms, keys #",
            Duration::from_secs(22),
        ),
    ));
    assert!(
        eventually(|| bridge.meetings() == 1, Duration::from_secs(10)).await,
        "the participant never reached megan's lobby"
    );
    assert_eq!(
        bridge.participants(),
        0,
        "nobody in the mix before the leader"
    );
    // The organiser keys 987654321# then the PIN 24680# from the pcaps.
    let leader = Sipp::new("uac-dtmf-leader.xml", sip, ip(TELCO_A), TELCO_A_NUMBER)
        .hold(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let leader = tokio::spawn(async move { leader.run().await });
    let opened = eventually(|| bridge.participants() == 2, Duration::from_secs(15)).await;
    let participants = bridge.participants();
    let outcome = leader.await.unwrap();
    assert_passed("uac-dtmf-leader", &outcome);
    assert!(
        opened,
        "the leader's PIN did not open the meeting (participants {participants})"
    );
    assert_eq!(bridge.meetings(), 1);
    let participant = participant.await.unwrap();
    assert!(participant.answered(), "{:?}", participant.failures);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialout_uas_answers_talks_and_waits_for_bye() {
    let phone = ip(DIALOUT_PHONE);
    let port = free_udp_tcp_port(phone);
    let uas_addr = SocketAddr::new(phone, port);
    let port_arg = port.to_string();
    // The UAS ignores the target: it only answers. One call, then it exits.
    let uas = Sipp::new("uas-dialout.xml", uas_addr, phone, "dialout")
        .args(&["-p", &port_arg])
        .timeout(Duration::from_secs(30));
    let uas = tokio::spawn(async move { uas.run().await });
    // sipp is up once its SIP port is taken.
    assert!(
        eventually(
            || std::net::UdpSocket::bind(uas_addr).is_err(),
            Duration::from_secs(10)
        )
        .await,
        "sipp never bound {uas_addr}"
    );
    let mut config = caller(
        "+33612340000",
        Source::Prompt(Arc::new(Tone::sine(1000.0, 1000, 6000))),
        "",
        Duration::from_secs(4),
    );
    // The phone talks: its 440 Hz capture reaches the caller.
    config.expect.audio = vec![Expectation::Tone(440.0)];
    let outcome = place(uas_addr, "127.0.0.1", config).await;
    let sipp = uas.await.unwrap();
    assert!(
        outcome.passed(),
        "sbc-sim → uas-dialout: {:?}\nsipp:\n{}",
        outcome.failures,
        sipp.log
    );
    assert_eq!(outcome.status, Some(200));
    assert!(outcome.media.received > 100, "{:?}", outcome.media);
    assert_passed("uas-dialout", &sipp);
}
