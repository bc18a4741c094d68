//! Arbitrary bytes as the SDP of an offer (RFC 4566, RFC 3264) through what the bridge
//! does with one: parse, answer it inside a dialog (plain and SRTP local media), and
//! read it as the answer to our offer. Our answer must parse back and be stable.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use dialbridge_sip::sdp::{
    self, LocalMedia, MAX_CRYPTO, MAX_FORMATS, MAX_MEDIA, MediaSession, SessionDescription,
};
use libfuzzer_sys::fuzz_target;

/// The SDES key of the SRTP local media: it must never survive redaction.
const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = SessionDescription::parse_bytes(data) else {
        return;
    };
    // The bounds the module promises.
    assert!(offer.media.len() <= MAX_MEDIA);
    for m in &offer.media {
        assert!(m.formats.len() <= MAX_FORMATS);
        assert!(m.payload_types.len() <= m.formats.len());
        assert!(m.crypto.len() <= MAX_CRYPTO);
    }

    let plain = LocalMedia::g711(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 40_000, 7);
    let mut srtp = plain.clone();
    srtp.sdes_inline_key = Some(KEY.to_owned());
    for local in [plain, srtp] {
        let mut session = MediaSession::new(local.clone());
        match session.handle_offer(&offer) {
            Ok(answer) => {
                let parsed = SessionDescription::parse(&answer.sdp).expect("our answer parses");
                // RFC 3264 §6: one m-line in the answer per m-line of the offer.
                assert_eq!(parsed.media.len(), offer.media.len(), "m-line count");
                assert!(
                    !sdp::redact_sdes_keys(&answer.sdp).contains(KEY),
                    "key survives redaction"
                );
                // §8: the same offer again gets the same answer, version unchanged.
                let again = session.handle_offer(&offer).expect("same offer again");
                assert_eq!(again.sdp, answer.sdp, "answer to a repeated offer changed");
            }
            Err(e) => assert!(matches!(e.status_code(), 400 | 488)),
        }
        // The same bytes as the peer's answer to our offer.
        let _ = sdp::handle_answer(&local, &offer);
    }
});
