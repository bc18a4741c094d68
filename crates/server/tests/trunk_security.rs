//! Trunk security policy end to end, with real TLS clients and certificates made in the
//! test: a trunk identified by the name in its SBC's client certificate (as Teams Direct
//! Routing does), `require_tls`, `require_srtp`, and SDES keys kept off plain transports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use dialbridge_server::testing::{TestBridge, demo_config, demo_config_edited};
use dialbridge_testkit::tls::{TestCa, client_config};
use dialbridge_testkit::{ip, scratch_dir, uac};

const NUMBER: &str = "+14255550100";
/// The microsoft-pstn trunk's address in the demo.
const MICROSOFT_PSTN: &str = "127.0.0.10";
/// No trunk's address.
const ELSEWHERE: &str = "127.0.0.40";
const TRUNK_LINE: &str = "addresses = [\"127.0.0.10\"]";

/// An RTP/SAVP offer with a fresh key (`{port}` is the caller's RTP port).
fn srtp_offer() -> String {
    use dialbridge_media::SrtpKeys;
    format!(
        "m=audio {{port}} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        SrtpKeys::encode_inline(&SrtpKeys::random_key_salt())
    )
}

/// The demo with `keys` added to the microsoft-pstn trunk and, with `ca`, the clients'
/// CA bundle written and named in [sip].
fn demo_with(keys: &str, ca: Option<&TestCa>) -> dialbridge_server::config::Config {
    let bundle = ca.map(|ca| {
        let path = scratch_dir("trunk-security").join("sbc-ca.pem");
        ca.write_pem(&path);
        path
    });
    demo_config_edited(|text| {
        let text = text.replace(TRUNK_LINE, &format!("{TRUNK_LINE}\n{keys}"));
        match &bundle {
            Some(path) => text.replace(
                "tls_private_key = \"tls/key.pem\"",
                &format!(
                    "tls_private_key = \"tls/key.pem\"\ntls_client_ca = \"{}\"",
                    path.display()
                ),
            ),
            None => text,
        }
    })
}

fn assert_refused(call: &uac::Call, status: u16, reason: &str) {
    assert_eq!(call.status, status, "{}", call.response);
    let got = uac::header(&call.response, "Reason").unwrap_or_default();
    assert!(got.contains(reason), "Reason {got:?}, want {reason:?}");
}

async fn over_tls(
    bridge: &TestBridge,
    from: &str,
    media: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> Result<uac::Call, String> {
    uac::call_over_tls(bridge.tls_addr().unwrap(), ip(from), NUMBER, media, tls).await
}

async fn over_udp(bridge: &TestBridge, from: &str, media: &str) -> uac::Call {
    let from: IpAddr = ip(from);
    uac::call_offering(bridge.sip_addr(), from, NUMBER, media).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_named_in_its_client_certificate_is_answered_over_tls() {
    let ca = TestCa::new("SBC operator CA");
    let bridge =
        TestBridge::start(demo_with("tls_names = [\"sbc1.example.com\"]", Some(&ca))).await;
    let sbc1 = client_config(Some(&ca.client(&["sbc1.example.com"])));
    // From the trunk's address, and from anywhere: the certificate is the identity.
    for from in [MICROSOFT_PSTN, ELSEWHERE] {
        let call = over_tls(&bridge, from, &srtp_offer(), sbc1.clone())
            .await
            .unwrap();
        assert_eq!(call.status, 200, "from {from}: {}", call.response);
        assert!(call.response.contains("RTP/SAVP"), "{}", call.response);
        assert_eq!(call.hang_up().await, 200);
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_absent_client_certificate_is_refused() {
    let ca = TestCa::new("SBC operator CA");
    let bridge =
        TestBridge::start(demo_with("tls_names = [\"sbc1.example.com\"]", Some(&ca))).await;
    let plain = uac::G711_OFFER;
    // The trunk's address without a certificate: a spoofed source must not pass.
    let call = over_tls(&bridge, MICROSOFT_PSTN, plain, client_config(None))
        .await
        .unwrap();
    assert_refused(&call, 403, "trunk requires a TLS client certificate");
    // A certificate of the right CA for another name.
    let wrong = client_config(Some(&ca.client(&["sbc9.example.com"])));
    let call = over_tls(&bridge, MICROSOFT_PSTN, plain, wrong.clone())
        .await
        .unwrap();
    assert_refused(
        &call,
        403,
        "TLS client certificate does not name this trunk",
    );
    // From elsewhere, the wrong name is no trunk's: a softphone, challenged.
    let call = over_tls(&bridge, ELSEWHERE, plain, wrong).await.unwrap();
    assert_eq!(call.status, 401, "{}", call.response);
    // The trunk's address over UDP.
    let call = over_udp(&bridge, MICROSOFT_PSTN, plain).await;
    assert_refused(&call, 403, "trunk requires TLS");
    // The right name from another CA: the handshake fails, no SIP gets through.
    let other = TestCa::new("someone else's CA");
    let forged = client_config(Some(&other.client(&["sbc1.example.com"])));
    assert!(
        over_tls(&bridge, MICROSOFT_PSTN, plain, forged)
            .await
            .is_err()
    );
    assert_eq!(bridge.calls_in_progress(), 0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_that_requires_tls_is_refused_over_udp() {
    let bridge = TestBridge::start(demo_with("require_tls = true", None)).await;
    let call = over_udp(&bridge, MICROSOFT_PSTN, uac::G711_OFFER).await;
    assert_refused(&call, 403, "trunk requires TLS");
    // Identified by address as before, over TLS.
    let call = over_tls(
        &bridge,
        MICROSOFT_PSTN,
        uac::G711_OFFER,
        client_config(None),
    )
    .await
    .unwrap();
    assert_eq!(call.status, 200, "{}", call.response);
    assert_eq!(call.hang_up().await, 200);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_that_requires_srtp_refuses_a_plain_rtp_offer() {
    let bridge = TestBridge::start(demo_with("require_srtp = true", None)).await;
    let call = over_tls(
        &bridge,
        MICROSOFT_PSTN,
        uac::G711_OFFER,
        client_config(None),
    )
    .await
    .unwrap();
    assert_refused(&call, 488, "trunk requires SRTP");
    let call = over_tls(&bridge, MICROSOFT_PSTN, &srtp_offer(), client_config(None))
        .await
        .unwrap();
    assert_eq!(call.status, 200, "{}", call.response);
    assert_eq!(call.hang_up().await, 200);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srtp_offer_over_plain_udp_is_refused_unless_the_trunk_opts_out() {
    let bridge = TestBridge::start(demo_config()).await;
    let call = over_udp(&bridge, MICROSOFT_PSTN, &srtp_offer()).await;
    assert_refused(&call, 488, "SDES needs TLS");
    assert!(!call.response.contains("a=crypto"), "{}", call.response);
    assert_eq!(bridge.calls_in_progress(), 0);
    bridge.stop().await;

    let bridge = TestBridge::start(demo_with("sdes_over_plain_transport = true", None)).await;
    let call = over_udp(&bridge, MICROSOFT_PSTN, &srtp_offer()).await;
    assert_eq!(call.status, 200, "{}", call.response);
    assert!(call.response.contains("a=crypto:1"), "{}", call.response);
    assert_eq!(call.hang_up().await, 200);
    bridge.stop().await;
}
