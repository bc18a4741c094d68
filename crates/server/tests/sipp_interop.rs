//! Interoperability with sipp, the independent SIP peer: the scenarios of fixtures/sipp/
//! against the demo deployment, each on a bridge of its own bound to free ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::ip;
use dialbridge_testkit::sipp::{Sipp, SippTransport};

const MICROSOFT_PSTN: &str = "127.0.0.10";
const STRANGER: &str = "127.0.0.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_call_over_udp() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-call.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550100",
    )
    .passes()
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_call_over_tcp() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-call.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550100",
    )
    .transport(SippTransport::Tcp)
    .passes()
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_keepalive_is_answered_with_capabilities() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-options.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "ping",
    )
    .passes()
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_answer_gets_487() {
    let mut config = demo_config();
    config.sip.answer_after = Duration::from_secs(3);
    let bridge = TestBridge::start(config).await;
    Sipp::new(
        "uac-cancel.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550100",
    )
    .passes()
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_ack_makes_the_bridge_retransmit_its_200() {
    let bridge = TestBridge::start(demo_config()).await;
    let outcome = Sipp::new(
        "uac-lost-ack.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550100",
    )
    .run()
    .await;
    assert!(
        outcome.passed(),
        "sipp failed ({:?}):\n{}",
        outcome.code,
        outcome.log
    );
    // sipp's message log holds every 200 received for the INVITE: the first and the
    // retransmissions at T1 and 3*T1 while the ACK was held back.
    let oks = outcome
        .log
        .split("-----------------------------------------------")
        .filter(|m| m.contains("SIP/2.0 200 OK") && m.contains("CSeq: 1 INVITE"))
        .count();
    assert!(
        oks >= 3,
        "expected the 200 and two retransmissions, saw {oks}:\n{}",
        outcome.log
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_by_reinvite() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-hold-resume.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550100",
    )
    .passes()
    .await;
    bridge.stop().await;
}

/// The digest `uri` must name the Request-URI (RFC 7616 §3.4.6), which sipp's default
/// (`sip:remote_ip:remote_port`) does not: `-auth_uri` gives it, without the `sip:` sipp
/// puts in front.
fn digest_uri(bridge: &TestBridge) -> String {
    format!("+14255550100@{}", bridge.sip_addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softphone_with_digest_credentials_gets_in() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-digest.xml",
        bridge.sip_addr(),
        ip(STRANGER),
        "+14255550100",
    )
    .args(&["-au", "alice", "-ap", "alice-secret"])
    .args(&["-auth_uri", &digest_uri(&bridge)])
    .passes()
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softphone_with_a_wrong_password_is_forbidden() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-digest-forbidden.xml",
        bridge.sip_addr(),
        ip(STRANGER),
        "+14255550100",
    )
    .args(&["-au", "alice", "-ap", "not-her-password"])
    .args(&["-auth_uri", &digest_uri(&bridge)])
    .passes()
    .await;
    assert_eq!(bridge.calls_in_progress(), 0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_answers_and_change_nothing() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-malformed.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "ping",
    )
    .passes()
    .await;
    assert_eq!(bridge.calls_in_progress(), 0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_hangs_up_on_a_caller_who_keys_nothing() {
    let mut config = demo_config();
    config.ivr.first_digit_timeout = Duration::from_millis(300);
    config.ivr.inter_digit_timeout = Duration::from_millis(300);
    let bridge = TestBridge::start(config).await;
    Sipp::new(
        "uac-bridge-hangup.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550100",
    )
    .timeout(Duration::from_secs(90))
    .passes()
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_without_a_common_codec_gets_488() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-no-common-codec.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550100",
    )
    .passes()
    .await;
    assert_eq!(bridge.calls_in_progress(), 0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_dtmf_is_accepted_and_junk_refused() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-info-dtmf.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550100",
    )
    .passes()
    .await;
    bridge.stop().await;
}
