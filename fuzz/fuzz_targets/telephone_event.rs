//! Arbitrary RTP telephone-event packets (RFC 4733) through the decoder a call's media
//! task feeds: payload, timestamp, sequence number, marker and arrival time all from
//! the input, with the decoder's timeout fired when due. Nothing panics, each digit
//! comes from the packet that reports it, and an immediate retransmission is silent.
#![no_main]

use std::time::{Duration, Instant};

use dialbridge_conference::Digit;
use dialbridge_conference::dtmf::TelephoneEventDecoder;
use libfuzzer_sys::fuzz_target;

/// Bytes of one packet record: payload length (0..=7), payload[7], timestamp[4],
/// sequence[2], marker and the milliseconds since the previous packet.
const RECORD: usize = 1 + 7 + 4 + 2 + 1 + 1;

fuzz_target!(|data: &[u8]| {
    let mut decoder = TelephoneEventDecoder::default();
    let mut now = Instant::now();
    for r in data.chunks_exact(RECORD) {
        let payload = &r[1..1 + usize::from(r[0] % 8)];
        let timestamp = u32::from_be_bytes([r[8], r[9], r[10], r[11]]);
        let seq = u16::from_be_bytes([r[12], r[13]]);
        let marker = r[14] & 1 != 0;
        now += Duration::from_millis(u64::from(r[15]) * 2);
        if let Some(due) = decoder.poll_timeout() {
            if due <= now {
                decoder.handle_timeout(due);
            }
        }
        match decoder.handle_packet(payload, timestamp, seq, marker, now) {
            Ok(Some(digit)) => {
                assert!(payload.len() >= 4);
                assert_eq!(
                    Some(digit),
                    Digit::from_event(payload[0]),
                    "digit from elsewhere"
                );
                // The same packet again is a retransmission, never a second press.
                let again = decoder.handle_packet(payload, timestamp, seq, marker, now);
                assert_eq!(again, Ok(None), "retransmission reported");
            }
            Ok(None) => {}
            Err(_) => assert!(payload.len() < 4, "a 4-byte payload refused"),
        }
        if let Some(active) = decoder.active() {
            assert!(active.event() < 16);
        }
    }
});
