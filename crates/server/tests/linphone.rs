//! Interoperability with Linphone 5.1 (`linphonec`, Debian's linphone-cli), a softphone
//! as people set it up: an account for alice with her password, registration off, and
//! nothing else changed. It dials the Contoso number on `dialbridge serve` (the demo, on
//! its own ports), keys its way into adele's meeting (`123456789#`, then `#` as a
//! participant) and hears, and is heard by, a second caller in that meeting.
//!
//! With its defaults Linphone puts a Contact without a user part and with a
//! `+sip.instance` parameter in its INVITE, and in its SDP the address of its default
//! route, IPv6 first (`c=IN IP6 <LAN address>`), while it sends its RTP from 127.0.0.1:
//! the bridge must take the Contact, and latch on where the RTP comes from. Each test
//! runs in a private network namespace (`dialbridge_testkit::netns`) so that the LAN
//! address it guesses is a stand-in that exists only in the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use dialbridge_testkit::audio::{read_wav_at, write_tone_wav};
use dialbridge_testkit::caller::{JOIN_ADELE, caller, place, tone};
use dialbridge_testkit::linphone::{Identity, Linphone};
use dialbridge_testkit::netns;
use dialbridge_testkit::serve::{DemoToml, Serve};
use sbc_sim::audio_check::{Expectation, analyse_at};

/// Adele's meeting.
const MEETING: &str = "123456789";
/// What Linphone dials: the Contoso number on the demo's SIP address.
const DIAL: &str = "sip:+14255550100@127.0.0.1:5060";
/// Telco A, the second caller's trunk, and its number for the same bridge.
const TELCO_A: &str = "127.0.0.20";
const TELCO_A_NUMBER: &str = "+33170000100";
/// Linphone talks at this frequency, the second caller at the other.
const LINPHONE_HZ: f64 = 440.0;
const OTHER_HZ: f64 = 1000.0;
/// How long the second caller stays once in the meeting.
const OTHER_HOLD: Duration = Duration::from_secs(8);
/// How long Linphone may take to key in: ten keys at one a second, then `#`.
const KEY_IN_LIMIT: Duration = Duration::from_secs(45);

/// The demo deployment as `dialbridge serve` runs it, on the demo's own addresses (the
/// namespace's): SIP 127.0.0.1:5060, admin 127.0.0.1:8088.
async fn demo_bridge(scratch: &Path) -> Serve {
    let config = DemoToml::new(scratch);
    Serve::start(
        Path::new(env!("CARGO_BIN_EXE_dialbridge")),
        &config,
        "127.0.0.1:8088".parse().unwrap(),
        scratch,
    )
    .await
}

/// Waits until `user` is in adele's meeting's mix; fails with what Linphone and the
/// bridge said.
async fn wait_in_meeting(bridge: &Serve, phone: &Linphone, user: &str) {
    let end = Instant::now() + KEY_IN_LIMIT;
    loop {
        if bridge.in_meeting(MEETING).await.iter().any(|u| u == user) {
            return;
        }
        assert!(
            Instant::now() < end && !phone.call_ended(),
            "{user} (Linphone) never got into meeting {MEETING}:\n{}\n--- bridge ---\n{}",
            phone.report(),
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Linphone dials and keys into adele's meeting as a participant, playing `play`.
async fn join(identity: &Identity, bridge: &Serve, play: &Path, record: &Path) -> Linphone {
    let mut phone = Linphone::start(identity).await;
    phone.play(play).await;
    phone.record(record).await;
    phone.dial(DIAL).await;
    phone.keys(&format!("{MEETING}#")).await;
    phone.keys("#").await;
    wait_in_meeting(bridge, &phone, "alice").await;
    phone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linphone_with_an_account_and_its_defaults_joins_a_meeting_hears_and_is_heard() {
    if !netns::inside() {
        return netns::run_isolated(
            "linphone_with_an_account_and_its_defaults_joins_a_meeting_hears_and_is_heard",
        )
        .await;
    }
    let scratch = dialbridge_testkit::scratch_dir("linphone-test");
    let bridge = demo_bridge(&scratch.join("bridge")).await;
    let sip: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let mic = scratch.join("linphone-mic.wav");
    write_tone_wav(&mic, LINPHONE_HZ, 120, 8000);
    let heard = scratch.join("linphone-heard.wav");

    let mut phone = join(&Identity::alice_account("127.0.0.1"), &bridge, &mic, &heard).await;
    // What makes this Linphone's defaults (fixtures/sip/valid/linphone-invite*.sip).
    let invite = phone.sent_request("INVITE").unwrap_or_default();
    assert!(
        invite.contains("Contact: <sip:127.0.0.1:5070;transport=udp>;+sip.instance="),
        "{invite}"
    );
    assert!(
        invite.contains(&format!("c=IN IP6 {}", netns::LAN_V6)),
        "{invite}"
    );

    // A second caller, from a trunk, into the same meeting, talking all the time.
    let other = place(
        sip,
        TELCO_A,
        caller(TELCO_A_NUMBER, tone(OTHER_HZ), JOIN_ADELE, OTHER_HOLD),
    )
    .await;
    let still_in = bridge.in_meeting(MEETING).await;
    phone.hang_up().await;

    assert!(
        other.answered() && other.passed(),
        "the second caller: status {:?} {:?}: {:?}",
        other.status,
        other.reason,
        other.failures
    );
    assert!(
        still_in.iter().any(|u| u == "alice"),
        "Linphone stayed in the meeting while the other caller was there: {still_in:?}\n{}",
        phone.report()
    );
    // The second caller hears Linphone: its last seconds, when both were in.
    let rate = other.heard_rate as usize;
    let n = other.heard.len();
    assert!(n > rate * 5, "the second caller heard only {n} samples");
    let window = &other.heard[n - rate * 4..n - rate];
    let heard_linphone = analyse_at(window, other.heard_rate, Some(LINPHONE_HZ));
    assert!(
        Expectation::Tone(LINPHONE_HZ)
            .check(&heard_linphone)
            .is_ok(),
        "the second caller does not hear Linphone's {LINPHONE_HZ} Hz: {heard_linphone:?}\n{}\n--- bridge ---\n{}",
        phone.report(),
        bridge.log()
    );
    // Linphone hears the second caller.
    let (samples, rate) = read_wav_at(&heard);
    let heard_other = analyse_at(&samples, rate, Some(OTHER_HZ));
    assert!(
        Expectation::Tone(OTHER_HZ).check(&heard_other).is_ok(),
        "Linphone does not hear the other caller's {OTHER_HZ} Hz ({} s recorded at {rate} Hz): \
         {heard_other:?}\n{}\n--- bridge ---\n{}",
        samples.len() / rate.max(1) as usize,
        phone.report(),
        bridge.log()
    );
    drop(phone);
    drop(bridge);
    let _ = std::fs::remove_dir_all(&scratch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linphone_without_an_account_gets_in_with_the_address_it_guessed_in_from() {
    if !netns::inside() {
        return netns::run_isolated(
            "linphone_without_an_account_gets_in_with_the_address_it_guessed_in_from",
        )
        .await;
    }
    let scratch = dialbridge_testkit::scratch_dir("linphone-test");
    let bridge = demo_bridge(&scratch.join("bridge")).await;
    let mic = scratch.join("linphone-mic.wav");
    write_tone_wav(&mic, LINPHONE_HZ, 60, 8000);
    let heard = scratch.join("linphone-heard.wav");

    // alice as Linphone's identity, her password for the challenge, no account: From is
    // `"Alice" <sip:alice@[2001:db8::2]>` (fixtures/sip/valid/linphone-invite-guessed-host.sip).
    let mut phone = join(&Identity::alice_identity(), &bridge, &mic, &heard).await;
    let invite = phone.sent_request("INVITE").unwrap_or_default();
    assert!(
        invite.contains(&format!("From: \"Alice\" <sip:alice@[{}]>", netns::LAN_V6)),
        "{invite}"
    );
    phone.hang_up().await;
    // It heard the bridge (the prompts) all along.
    let (samples, rate) = read_wav_at(&heard);
    let analysis = analyse_at(&samples, rate, None);
    assert!(
        Expectation::Audio.check(&analysis).is_ok(),
        "Linphone heard nothing: {analysis:?}\n{}",
        phone.report()
    );
    drop(phone);
    drop(bridge);
    let _ = std::fs::remove_dir_all(&scratch);
}
