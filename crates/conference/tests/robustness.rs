//! Property tests of the public API: nothing from the network panics, state stays
//! bounded, and the prompts the IVR names exist as fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dialbridge_conference::Digit;
use dialbridge_conference::dtmf::{
    CallDtmf, GoertzelDetector, TelephoneEventDecoder, encode_telephone_event, parse_info,
};
use dialbridge_conference::ivr::{
    Action, ConferenceKey, Ivr, IvrConfig, LookupResult, PinResult, PromptId, TenantId,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn telephone_event_decoder_never_panics(
        packets in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..12), 0u32..8, any::<u16>(), any::<bool>(), 0u64..400),
            0..200,
        )
    ) {
        let mut dec = TelephoneEventDecoder::default();
        let mut now = Instant::now();
        for (payload, ts, seq, marker, dt) in packets {
            now += Duration::from_millis(dt);
            dec.handle_timeout(now);
            if dec.handle_packet(&payload, ts * 1000, seq, marker, now).is_err() {
                prop_assert!(payload.len() < 4);
            }
        }
    }

    #[test]
    fn in_order_stream_reports_each_event_once(
        events in proptest::collection::vec((0u8..16, 1u16..30, 0u16..5), 1..20),
        loss in proptest::collection::vec(any::<bool>(), 600),
    ) {
        let t0 = Instant::now();
        let mut dec = TelephoneEventDecoder::default();
        let mut seq: u16 = 65000; // wraps during the test
        let mut ts: u32 = u32::MAX - 50_000; // wraps too
        let mut now = t0;
        let mut sent = Vec::new();
        let mut got = Vec::new();
        let mut k = 0;
        for (code, updates, ends) in events {
            let mut first_delivered = false;
            for i in 0..=(updates + ends) {
                let end = i > updates;
                let p = encode_telephone_event(code, end, 10, i.min(updates) * 160);
                seq = seq.wrapping_add(1);
                now += Duration::from_millis(20);
                let lost = loss.get(k).copied().unwrap_or(false) && i != updates;
                k += 1;
                if lost {
                    continue;
                }
                first_delivered = true;
                if let Some(d) = dec.handle_packet(&p, ts, seq, i == 0, now).unwrap() {
                    got.push(d);
                }
            }
            if first_delivered {
                sent.push(Digit::from_event(code).unwrap());
            }
            ts = ts.wrapping_add(u32::from(updates + 1) * 160 + 800);
            now += Duration::from_millis(100);
        }
        prop_assert_eq!(got, sent);
    }

    #[test]
    fn info_parser_never_panics(ct in "[a-zA-Z/;= -]{0,40}", body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_info(&ct, &body);
        let _ = parse_info("application/dtmf-relay", &body);
        let _ = parse_info("application/dtmf", &body);
    }

    #[test]
    fn goertzel_never_panics_on_any_audio(samples in proptest::collection::vec(any::<i16>(), 0..2000)) {
        let mut det = GoertzelDetector::default();
        for frame in samples.chunks(97) {
            det.handle_samples(frame);
            while det.poll_digit().is_some() {}
        }
        let mut call = CallDtmf::default();
        let _ = call.handle_audio(&samples, Instant::now());
    }

    #[test]
    fn ivr_survives_any_input_and_stays_bounded(
        inputs in proptest::collection::vec((0u8..8, 0u8..16, 0u64..7000), 0..120)
    ) {
        let t0 = Instant::now();
        let tenant = TenantId::new("contoso");
        let mut ivr = Ivr::new(IvrConfig::new(tenant.clone()), t0);
        let mut now = t0;
        let mut finished = false;
        for (kind, x, dt) in inputs {
            now += Duration::from_millis(dt);
            match kind {
                0..=2 => ivr.handle_digit(Digit::from_event(x).unwrap(), now),
                3 => ivr.handle_prompt_finished(PromptId::ALL[usize::from(x) % 12], now),
                4 => ivr.handle_timeout(now),
                5 => {
                    let r = match x % 3 {
                        0 => LookupResult::NotFound,
                        1 => LookupResult::Failed,
                        _ => LookupResult::Found(ConferenceKey {
                            tenant: tenant.clone(),
                            id: dialbridge_conference::ivr::ConferenceId::parse("123456789").unwrap(),
                        }),
                    };
                    ivr.handle_lookup_result(r, now);
                }
                6 => {
                    let r = [PinResult::Valid, PinResult::Invalid, PinResult::Refused, PinResult::Failed];
                    ivr.handle_pin_result(r[usize::from(x) % 4], now);
                }
                _ => {}
            }
            let mut n = 0;
            while let Some(a) = ivr.poll_action() {
                n += 1;
                prop_assert!(!finished, "action after Join/Hangup: {:?}", a);
                if matches!(a, Action::Join { .. } | Action::Hangup { .. }) {
                    finished = true;
                    prop_assert!(ivr.is_done());
                }
                if let Action::VerifyPin { pin, .. } = &a {
                    prop_assert_eq!(format!("{pin:?}"), "***");
                }
            }
            // At most: the failed entry reported, the prompt stopped, the next one
            // started, and a question or the end.
            prop_assert!(n <= 4, "one input queued {} actions", n);
            if finished {
                prop_assert_eq!(ivr.poll_timeout(), None);
            }
        }
    }
}

#[test]
fn every_prompt_has_a_fixture() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/prompts");
    for p in PromptId::ALL {
        let file = dir.join(format!("{}.wav", p.file_stem()));
        assert!(file.is_file(), "missing {}", file.display());
    }
}
