//! Interoperability with baresip, a real softphone: it answers the bridge's digest
//! challenge with its account's password, the call is established with G.711, media
//! flows both ways, and the call ends cleanly when baresip hangs up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::baresip::Baresip;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_dials_in_with_digest_credentials() {
    let bridge = TestBridge::start(demo_config()).await;
    let tone = dialbridge_testkit::fixtures().join("prompts/help.wav");
    let baresip = Baresip::new("one-node", &tone);
    let child = baresip.dial(
        "alice",
        "alice-secret",
        "+14255550100",
        bridge.sip_addr(),
        8,
    );
    // The call is up at the bridge while baresip plays its file.
    let mut seen_up = false;
    for _ in 0..60 {
        if bridge.calls_in_progress() == 1 {
            seen_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = Baresip::finish(child, Duration::from_secs(20)).await;
    let log = &run.log;
    assert!(seen_up, "the bridge held baresip's call:\n{log}");
    assert!(run.established(), "{log}");
    assert!(run.heard_rtp(), "bridge media reached baresip:\n{log}");
    for _ in 0..50 {
        if bridge.calls_in_progress() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        bridge.calls_in_progress(),
        0,
        "baresip's hang-up ended the call"
    );
    bridge.stop().await;
}
