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

/// Over TLS: SDES keys never cross the network in the clear (an RTP/SAVP offer over UDP
/// is refused, see `trunk_security.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_offering_srtp_gets_encrypted_media() {
    use dialbridge_media::{SrtpKeys, SrtpSuite};
    let bridge = TestBridge::start(demo_config()).await;
    let our_key = SrtpKeys::random_key_salt();
    let offer = format!(
        "m=audio {{port}} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        SrtpKeys::encode_inline(&our_key)
    );
    let call = uac::call_over_tls(
        bridge.tls_addr().unwrap(),
        "127.0.0.10".parse().unwrap(),
        "+14255550100",
        &offer,
        dialbridge_testkit::tls::client_config(None),
    )
    .await
    .unwrap();
    assert_eq!(call.status, 200, "{}", call.response);
    assert!(call.response.contains("RTP/SAVP"), "{}", call.response);
    let crypto = call
        .response
        .lines()
        .find_map(|l| l.strip_prefix("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"))
        .expect("the answer carries the bridge's key")
        .trim()
        .to_string();
    // Decrypt what the bridge sends with the key it gave us.
    let keys = SrtpKeys::from_sdes(
        "AES_CM_128_HMAC_SHA1_80",
        &crypto,
        &SrtpKeys::encode_inline(&our_key),
    )
    .unwrap();
    let mut context = dialbridge_media::srtp::SrtpContext::new(
        SrtpSuite::AesCm128HmacSha1_80,
        &keys.local_key_salt,
    );
    let mut packet = call
        .receive_raw(Duration::from_secs(2))
        .await
        .expect("SRTP from the bridge");
    assert_eq!(
        packet.len(),
        12 + 160 + 10,
        "RTP header, 20 ms of PCMU, 80-bit tag"
    );
    let len = context
        .unprotect_rtp(&mut packet)
        .expect("it authenticates with the bridge's key");
    assert_eq!(len, 12 + 160);
    assert_eq!(packet[1] & 0x7f, 0, "PCMU inside");
    assert_eq!(call.hang_up().await, 200);
    bridge.stop().await;
}
