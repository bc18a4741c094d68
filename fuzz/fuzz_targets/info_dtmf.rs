//! Arbitrary SIP INFO bodies through `parse_info`, which the signaling task runs on
//! every INFO: the first line of the input is the Content-Type, the rest the body.
//! Nothing panics, and what a body says, our own `dtmf-relay` rendering says again.
#![no_main]

use dialbridge_conference::dtmf::{MAX_INFO_BODY, parse_info};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(content_type) = std::str::from_utf8(content_type) else {
        return;
    };
    let Ok(info) = parse_info(content_type, body) else {
        return;
    };
    assert!(body.len() <= MAX_INFO_BODY);
    let mut relay = format!("Signal={}\r\n", info.digit.event());
    if let Some(d) = info.duration {
        relay.push_str(&format!("Duration={}\r\n", d.as_millis()));
    }
    let again = parse_info("application/dtmf-relay", relay.as_bytes()).expect("our body parses");
    assert_eq!(again, info, "dtmf-relay round trip");
    let key = parse_info(
        "application/dtmf",
        info.digit.event().to_string().as_bytes(),
    );
    assert_eq!(
        key.map(|k| k.digit).ok(),
        Some(info.digit),
        "dtmf round trip"
    );
});
