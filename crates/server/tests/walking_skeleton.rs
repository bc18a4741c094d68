//! The walking skeleton end to end: a call to the Contoso service number from the
//! microsoft-pstn trunk is answered and hears the welcome prompt over RTP until it hangs up;
//! refusals carry the right status and a Reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::{audio, uac};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_call_is_answered_and_hears_the_welcome_prompt() {
    let bridge = TestBridge::start(demo_config()).await;
    let call = uac::call(
        bridge.sip_addr(),
        "127.0.0.10".parse().unwrap(),
        "+14255550100",
    )
    .await;
    assert_eq!(call.status, 200, "{}", call.response);
    assert!(
        call.response.contains("application/sdp"),
        "{}",
        call.response
    );
    let heard = call.listen(Duration::from_millis(1500)).await;
    assert!(
        heard.len() >= 8000,
        "about 1.5 s of audio, got {} samples",
        heard.len()
    );
    // The welcome prompt is speech: clearly above the silence floor.
    assert!(audio::rms(&heard) > 300.0, "rms {}", audio::rms(&heard));
    assert_eq!(bridge.calls_in_progress(), 1);
    assert_eq!(call.hang_up().await, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        bridge.calls_in_progress(),
        0,
        "the call's capacity is released"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unassigned_number_is_refused_with_404_and_a_reason() {
    let bridge = TestBridge::start(demo_config()).await;
    let call = uac::call(
        bridge.sip_addr(),
        "127.0.0.10".parse().unwrap(),
        "+14255550999",
    )
    .await;
    assert_eq!(call.status, 404, "{}", call.response);
    assert!(
        uac::header(&call.response, "Reason").is_some(),
        "{}",
        call.response
    );
    assert_eq!(bridge.calls_in_progress(), 0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_without_credentials_is_challenged_and_never_reaches_a_bridge() {
    let bridge = TestBridge::start(demo_config()).await;
    let call = uac::call(
        bridge.sip_addr(),
        "127.0.0.1".parse().unwrap(),
        "+14255550100",
    )
    .await;
    assert_eq!(call.status, 401, "{}", call.response);
    let challenge = uac::header(&call.response, "WWW-Authenticate").unwrap();
    assert!(challenge.contains("realm=\"dialbridge\""), "{challenge}");
    assert!(
        challenge.contains("MD5"),
        "MD5 first, as every client understands it: {challenge}"
    );
    assert_eq!(bridge.calls_in_progress(), 0);
    bridge.stop().await;
}
