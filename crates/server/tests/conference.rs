//! Meetings end to end on the demo deployment, with sbc-sim as the trunk: callers key
//! their way in (RFC 4733), hear each other but never themselves, are told when an ID is
//! not found, and wait in the lobby until the organiser keys the leader PIN; trunks
//! that key with tones get in, with or without telephone-event negotiated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::audio::{goertzel_power, prompt_match, read_wav};
use dialbridge_testkit::caller::{caller, place, tone};
use dialbridge_testkit::wait_until;
use sbc_sim::CallOutcome;
use sbc_sim::rtp::Source;

const TELCO_A: &str = "127.0.0.20";
const MICROSOFT_PSTN: &str = "127.0.0.10";

/// Power of `hz` in a window of what a caller heard.
fn power(heard: &[i16], hz: f64) -> f64 {
    goertzel_power(heard, 8000.0, hz)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_callers_hear_each_other_and_never_themselves() {
    let bridge = TestBridge::start(demo_config()).await;
    let sip = bridge.sip_addr();
    // Into adele's meeting through Telco A: ID, #, then # as a participant.
    let script = "wait 500ms, keys 123456789#, wait 1500ms, keys #";
    let hold = Duration::from_secs(9);
    let a = tokio::spawn(place(
        sip,
        TELCO_A,
        caller("+33170000100", tone(440.0), script, hold),
    ));
    let b = tokio::spawn(place(
        sip,
        TELCO_A,
        caller("+33170000100", tone(1000.0), script, hold),
    ));
    let c = tokio::spawn(place(
        sip,
        TELCO_A,
        caller("+33170000100", Source::Silence, script, hold),
    ));
    wait_until(
        "three callers in the mix",
        || bridge.participants() == 3,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(bridge.meetings(), 1, "one meeting for the three");
    let (a, b, c) = (a.await.unwrap(), b.await.unwrap(), c.await.unwrap());
    for (name, outcome) in [("A", &a), ("B", &b), ("C", &c)] {
        assert!(outcome.answered(), "{name}: {:?}", outcome.failures);
        assert!(
            outcome.heard.len() > 8000 * 6,
            "{name} heard {} samples",
            outcome.heard.len()
        );
    }
    // The last seconds before anyone hangs up: everyone is in, prompts are over.
    let window = |o: &CallOutcome| {
        let n = o.heard.len();
        o.heard[n - 8000 * 4..n - 8000].to_vec()
    };
    let (ha, hb, hc) = (window(&a), window(&b), window(&c));
    let floor = 1.0;
    assert!(
        power(&hc, 440.0) > 100.0 * floor && power(&hc, 1000.0) > 100.0 * floor,
        "C hears both: 440 {:.1}, 1000 {:.1}",
        power(&hc, 440.0),
        power(&hc, 1000.0)
    );
    assert!(
        power(&ha, 1000.0) > 50.0 * power(&ha, 440.0),
        "A hears B only: 1000 {:.1} vs own 440 {:.1}",
        power(&ha, 1000.0),
        power(&ha, 440.0)
    );
    assert!(
        power(&hb, 440.0) > 50.0 * power(&hb, 1000.0),
        "B hears A only: 440 {:.1} vs own 1000 {:.1}",
        power(&hb, 440.0),
        power(&hb, 1000.0)
    );
    wait_until(
        "everyone gone",
        || bridge.calls_in_progress() == 0,
        Duration::from_secs(5),
    )
    .await;
    wait_until(
        "everyone out of the mix",
        || bridge.participants() == 0,
        Duration::from_secs(5),
    )
    .await;
    wait_until(
        "the meeting closed",
        || bridge.meetings() == 0,
        Duration::from_secs(5),
    )
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_of_another_tenant_is_not_found() {
    let bridge = TestBridge::start(demo_config()).await;
    // 555000111 is fabrikam's; +14255550100 is contoso's bridge.
    let call = caller(
        "+14255550100",
        Source::Silence,
        "wait 500ms, keys 555000111#",
        Duration::from_secs(7),
    );
    let outcome = place(bridge.sip_addr(), MICROSOFT_PSTN, call).await;
    assert!(outcome.answered(), "{:?}", outcome.failures);
    assert_eq!(bridge.participants(), 0);
    let prompts = dialbridge_testkit::fixtures().join("prompts");
    let not_found = read_wav(&prompts.join("not-found.wav"));
    let score = prompt_match(&outcome.heard, &not_found);
    assert!(
        score > 0.85,
        "the caller is told the ID was not found (match {score:.2})"
    );
    let wrong_pin = read_wav(&prompts.join("wrong-pin.wav"));
    assert!(prompt_match(&outcome.heard, &wrong_pin) < score);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_waits_in_the_lobby_until_the_organiser_keys_the_pin() {
    let bridge = TestBridge::start(demo_config()).await;
    let sip = bridge.sip_addr();
    // megan's meeting waits for its leader.
    let participant = tokio::spawn(place(
        sip,
        MICROSOFT_PSTN,
        caller(
            "+14255550100",
            tone(440.0),
            "wait 500ms, keys 987654321#, wait 1500ms, keys #",
            Duration::from_secs(14),
        ),
    ));
    wait_until(
        "the participant in the meeting's lobby",
        || bridge.meetings() == 1,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        bridge.participants(),
        0,
        "nobody is in the mix before the leader"
    );
    let leader = tokio::spawn(place(
        sip,
        MICROSOFT_PSTN,
        caller(
            "+14255550100",
            tone(1000.0),
            "wait 500ms, keys 987654321#, wait 1500ms, keys 24680#",
            Duration::from_secs(6),
        ),
    ));
    wait_until(
        "leader and participant in the mix",
        || bridge.participants() == 2,
        Duration::from_secs(15),
    )
    .await;
    let (participant, leader) = (participant.await.unwrap(), leader.await.unwrap());
    assert!(participant.answered() && leader.answered());
    // The participant's last seconds: the leader's 1000 Hz, after the lobby music.
    let n = participant.heard.len();
    let tail = &participant.heard[n.saturating_sub(8000 * 7)..n - 8000 * 4];
    assert!(
        power(tail, 1000.0) > 100.0,
        "the participant hears the leader: {:.1}",
        power(tail, 1000.0)
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_past_the_limit_hears_the_meeting_is_full_and_is_released() {
    let mut config = demo_config();
    config.conference.max_members = 1;
    let bridge = TestBridge::start(config).await;
    let sip = bridge.sip_addr();
    let script = "wait 500ms, keys 123456789#, wait 1500ms, keys #";
    let first = tokio::spawn(place(
        sip,
        TELCO_A,
        caller("+33170000100", tone(440.0), script, Duration::from_secs(14)),
    ));
    wait_until(
        "the first caller in the mix",
        || bridge.participants() == 1,
        Duration::from_secs(10),
    )
    .await;
    let mut second = caller(
        "+33170000100",
        Source::Silence,
        script,
        Duration::from_secs(12),
    );
    second.expect.bridge_hangs_up = true;
    let second = place(sip, TELCO_A, second).await;
    assert!(second.answered(), "{:?}", second.failures);
    assert_eq!(
        second.ended_by,
        sbc_sim::EndedBy::Bridge,
        "the bridge releases the caller"
    );
    let full = read_wav(&dialbridge_testkit::fixtures().join("prompts/meeting-full.wav"));
    let score = prompt_match(&second.heard, &full);
    assert!(
        score > 0.85,
        "the caller hears that the meeting is full (match {score:.2})"
    );
    assert_eq!(
        bridge.calls_in_progress(),
        1,
        "its router reservation went with it"
    );
    assert_eq!(bridge.participants(), 1);
    let first = first.await.unwrap();
    assert!(first.answered());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_without_telephone_event_keys_its_way_in_with_tones() {
    let bridge = TestBridge::start(demo_config()).await;
    let call = in_band_caller_in_the_mix(&bridge, dialbridge_testkit::caller::JOIN_ADELE).await;
    answered_with_tones_only(call.await.unwrap());
    bridge.stop().await;
}

/// A Telco A caller into adele's meeting keying `script` as tones only (no
/// telephone-event offered), once it is in the mix.
async fn in_band_caller_in_the_mix(
    bridge: &TestBridge,
    script: &str,
) -> tokio::task::JoinHandle<CallOutcome> {
    let mut call = caller(
        "+33170000100",
        Source::Silence,
        script,
        Duration::from_secs(4),
    );
    call.dtmf = sbc_sim::dtmf::DtmfMode::InBand;
    let call = tokio::spawn(place(bridge.sip_addr(), TELCO_A, call));
    wait_until(
        "the in-band caller in the mix",
        || bridge.participants() == 1,
        Duration::from_secs(15),
    )
    .await;
    call
}

fn answered_with_tones_only(outcome: CallOutcome) {
    assert!(outcome.answered(), "{:?}", outcome.failures);
    assert_eq!(outcome.media.events_sent, 0, "no telephone-event was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_negotiates_telephone_event_but_keys_tones_gets_in() {
    // A PSTN gateway offers telephone-event (PT 101) and passes the keys through as
    // audio: megan's meeting ID and its leader PIN, as tones only.
    let bridge = TestBridge::start(demo_config()).await;
    let mut call = caller(
        "+14255550100",
        Source::Silence,
        "wait 500ms, keys 987654321#, wait 1500ms, keys 24680#",
        Duration::from_secs(4),
    );
    call.dtmf = sbc_sim::dtmf::DtmfMode::InBandWithTelephoneEvent;
    let call = tokio::spawn(place(bridge.sip_addr(), MICROSOFT_PSTN, call));
    wait_until(
        "the leader keyed in with tones in the mix",
        || bridge.participants() == 1,
        Duration::from_secs(15),
    )
    .await;
    let outcome = call.await.unwrap();
    assert!(outcome.answered(), "{:?}", outcome.failures);
    assert_eq!(
        outcome.codec.as_ref().and_then(|c| c.telephone_event),
        Some(101),
        "telephone-event was negotiated"
    );
    assert_eq!(outcome.media.events_sent, 0, "no telephone-event was sent");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_over_tls_joins_a_meeting() {
    use sbc_sim::ua::{Signaling, Transport};
    let bridge = TestBridge::start(demo_config()).await;
    let ca = dialbridge_testkit::fixtures().join("tls/ca.pem");
    let signaling = Signaling::connect_with_ca(
        Transport::Tls,
        dialbridge_testkit::ip(MICROSOFT_PSTN),
        bridge.tls_addr().unwrap(),
        2,
        Some(&ca),
    )
    .await
    .unwrap();
    let config = caller(
        "+14255550100",
        tone(440.0),
        dialbridge_testkit::caller::JOIN_ADELE,
        Duration::from_secs(3),
    );
    let call = tokio::spawn(async move {
        sbc_sim::call::run(&signaling, &config, &sbc_sim::call::Quiet).await
    });
    wait_until(
        "the TLS caller in the mix",
        || bridge.participants() == 1,
        Duration::from_secs(15),
    )
    .await;
    let outcome = call.await.unwrap();
    assert!(outcome.passed(), "{:?}", outcome.failures);
    bridge.stop().await;
}

/// In the meeting, a caller without telephone-event keys `*6` as tones: the room's clock,
/// which decodes the caller's audio for the mix, finds the key (no audio is queued to the
/// call any more once it is in the mix) and the caller is muted, as the API then lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_band_keys_in_the_meeting_reach_the_keypad_controls() {
    let bridge = TestBridge::start(demo_config()).await;
    let script = format!(
        "{}, wait 2s, keys *6",
        dialbridge_testkit::caller::JOIN_ADELE
    );
    let call = in_band_caller_in_the_mix(&bridge, &script).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/v1/conferences", bridge.admin_addr());
    let auth = format!("Bearer {}", bridge.admin_token());
    let mut muted = false;
    for _ in 0..100 {
        let listed: serde_json::Value = http
            .get(&url)
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        muted = listed["conferences"][0]["participants"][0]["muted"] == true;
        if muted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        muted,
        "*6 keyed in-band in the meeting did not mute the caller"
    );
    answered_with_tones_only(call.await.unwrap());
    bridge.stop().await;
}
