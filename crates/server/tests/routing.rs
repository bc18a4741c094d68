//! The router's answers end to end on the demo deployment, with sipp as the trunk:
//! unknown/unassigned numbers, the wrong trunk for a number, a user number's small
//! capacity and a service number's large one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::sipp::Sipp;
use dialbridge_testkit::{ip, wait_until};

const MICROSOFT_PSTN: &str = "127.0.0.10";
const TELCO_A: &str = "127.0.0.20";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unassigned_number_gets_404() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-refused-404.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550999",
    )
    .passes()
    .await;
    Sipp::new(
        "uac-refused-404.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255559999",
    )
    .passes()
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telco_a_number_from_the_microsoft_trunk_gets_403() {
    let bridge = TestBridge::start(demo_config()).await;
    Sipp::new(
        "uac-refused-403.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+33170000100",
    )
    .passes()
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_simultaneous_call_to_a_user_number_is_busy() {
    let bridge = TestBridge::start(demo_config()).await;
    let holders = Sipp::new(
        "uac-call.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550123",
    )
    .calls(2, 2)
    .hold(Duration::from_secs(6));
    let holding = tokio::spawn(async move { holders.run().await });
    wait_until(
        "2 calls up",
        || bridge.calls_in_progress() == 2,
        Duration::from_secs(10),
    )
    .await;
    Sipp::new(
        "uac-refused-486.xml",
        bridge.sip_addr(),
        ip(MICROSOFT_PSTN),
        "+14255550123",
    )
    .passes()
    .await;
    let held = holding.await.unwrap();
    assert!(
        held.passed(),
        "the first two calls stay up and end normally:\n{}",
        held.log
    );
    wait_until(
        "0 calls up",
        || bridge.calls_in_progress() == 0,
        Duration::from_secs(5),
    )
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_201st_call_to_a_200_call_service_number_is_refused_while_200_stay_up() {
    let bridge = TestBridge::start(demo_config()).await;
    let holders = Sipp::new(
        "uac-call.xml",
        bridge.sip_addr(),
        ip(TELCO_A),
        "+33170000100",
    )
    .calls(200, 200)
    .rate(100)
    .hold(Duration::from_secs(12))
    .timeout(Duration::from_secs(60));
    let holding = tokio::spawn(async move { holders.run().await });
    wait_until(
        "200 calls up",
        || bridge.calls_in_progress() == 200,
        Duration::from_secs(20),
    )
    .await;
    Sipp::new(
        "uac-refused-486.xml",
        bridge.sip_addr(),
        ip(TELCO_A),
        "+33170000100",
    )
    .passes()
    .await;
    assert_eq!(bridge.calls_in_progress(), 200, "the 200 calls stay up");
    let held = holding.await.unwrap();
    assert!(held.passed(), "all 200 calls end normally:\n{}", held.log);
    wait_until(
        "0 calls up",
        || bridge.calls_in_progress() == 0,
        Duration::from_secs(10),
    )
    .await;
    bridge.stop().await;
}
