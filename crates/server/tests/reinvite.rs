//! Re-INVITEs in a call: the media session keeps the codec it was answered with, so a
//! re-offer without it is refused with 488 and the call goes on unchanged (RFC 3261
//! §14.2); a re-offer with it is answered with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::uac::{G711_OFFER, call};

const PCMA_ONLY: &str = "m=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
     a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n";
const WIDEBAND_THEN_PCMU: &str = "m=audio {port} RTP/AVP 9 0 101\r\na=rtpmap:9 G722/8000\r\n\
     a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_offer_keeps_the_codec_in_use_or_is_refused() {
    let bridge = TestBridge::start(demo_config()).await;
    let mut c = call(
        bridge.sip_addr(),
        "127.0.0.20".parse().unwrap(),
        "+33170000100",
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.response);
    assert!(
        c.response.contains("a=rtpmap:0 PCMU/8000"),
        "{}",
        c.response
    );

    let (status, response) = c.reinvite(PCMA_ONLY).await;
    assert_eq!(status, 488, "{response}");
    // Still PCMU on the wire, and the call still up.
    let heard = c.listen(Duration::from_millis(500)).await;
    assert!(
        heard.len() >= 8 * 300,
        "PCMU packets after the 488: {}",
        heard.len()
    );
    assert_eq!(bridge.calls_in_progress(), 1);

    // G.722 offered first now, but the call is PCMU: answered PCMU.
    let (status, response) = c.reinvite(WIDEBAND_THEN_PCMU).await;
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("a=rtpmap:0 PCMU/8000"), "{response}");
    assert!(!response.contains("G722"), "{response}");
    let (status, response) = c.reinvite(G711_OFFER).await;
    assert_eq!(status, 200, "{response}");

    assert_eq!(c.hang_up().await, 200);
    bridge.stop().await;
}
