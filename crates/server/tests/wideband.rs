//! Wideband meetings end to end on the demo deployment, with sbc-sim as the trunk: a
//! G.722 caller, an Opus caller and a G.711 caller in one meeting get the codec they
//! offered, hear each other but never themselves across codecs, and a 6 kHz tone —
//! gone on any 8 kHz path — goes from the Opus caller to the G.722 caller, which
//! proves the room mixes at 16 kHz (and 5 kHz goes back from G.722 to Opus). Wideband
//! trunks without telephone-event key in-band, and their keys stay out of the mix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::audio::goertzel_power;
use dialbridge_testkit::caller::{JOIN_ADELE, caller, place};
use dialbridge_testkit::wait_until;
use sbc_sim::audio_check::{Analysis, Expectation, analyse_at, has_tone};
use sbc_sim::dtmf::DtmfMode;
use sbc_sim::rtp::Source;
use sbc_sim::{CallCodec, CallOutcome};
use tokio::task::JoinHandle;

const TELCO_A: &str = "127.0.0.20";
/// Telco A's number for the conference service.
const SERVICE: &str = "+33170000100";
/// Stay this long after keying in: everyone overlaps for several seconds.
const HOLD: Duration = Duration::from_secs(9);

/// A steady sine generated at the codec's own rate (16 kHz for G.722, 48 kHz for Opus).
fn tone(hz: f64) -> Source {
    Source::Tone {
        hz,
        amplitude: 6000,
    }
}

/// One caller into adele's meeting speaking `codec`.
async fn join(bridge: SocketAddr, codec: CallCodec, source: Source) -> CallOutcome {
    let mut config = caller(SERVICE, source, JOIN_ADELE, HOLD);
    config.codec = codec;
    place(bridge, TELCO_A, config).await
}

/// Seconds 4 to 1 before the caller hung up: everyone is in, the prompts are over.
fn window(o: &CallOutcome) -> &[i16] {
    let rate = o.heard_rate as usize;
    let n = o.heard.len();
    assert!(n > rate * 6, "heard only {n} samples at {rate} Hz");
    &o.heard[n - rate * 4..n - rate]
}

fn analysis(o: &CallOutcome, hz: f64) -> Analysis {
    analyse_at(window(o), o.heard_rate, Some(hz))
}

fn power(o: &CallOutcome, hz: f64) -> f64 {
    goertzel_power(window(o), f64::from(o.heard_rate), hz)
}

/// The codec the answer chose: its encoding name, payload type and RTP clock.
fn negotiated(o: &CallOutcome) -> (&'static str, u8, u32) {
    let c = o.codec.expect("an SDP answer");
    (c.encoding, c.payload_type, c.clock_rate)
}

/// Waits until `n` callers are in the mix; a caller whose call ends first (refused,
/// say with 488 for a codec the bridge does not answer) fails the test with its outcome.
async fn wait_for_mix(bridge: &TestBridge, n: usize, calls: &[&JoinHandle<CallOutcome>]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while bridge.participants() < n {
        if calls.iter().any(|c| c.is_finished()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {n} callers in the mix ({} in)",
            bridge.participants()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every call was answered and went as expected.
fn all_passed(outcomes: &[(&str, &CallOutcome)]) {
    for (name, o) in outcomes {
        assert!(
            o.answered() && o.passed(),
            "{name}: status {:?} {:?}, codec {:?}: {:?}",
            o.status,
            o.reason,
            o.codec,
            o.failures
        );
    }
}

async fn everyone_gone(bridge: &TestBridge) {
    wait_until(
        "everyone gone",
        || bridge.calls_in_progress() == 0,
        Duration::from_secs(5),
    )
    .await;
    wait_until(
        "the meeting closed",
        || bridge.meetings() == 0,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g722_opus_and_pcmu_callers_hear_each_other_but_not_themselves() {
    let bridge = TestBridge::start(demo_config()).await;
    let sip = bridge.sip_addr();
    let a = tokio::spawn(join(sip, CallCodec::G722, tone(440.0)));
    let b = tokio::spawn(join(sip, CallCodec::Opus, tone(1000.0)));
    let c = tokio::spawn(join(sip, CallCodec::Pcmu, Source::Silence));
    wait_for_mix(&bridge, 3, &[&a, &b, &c]).await;
    let meetings = bridge.meetings();
    let (a, b, c) = (a.await.unwrap(), b.await.unwrap(), c.await.unwrap());
    all_passed(&[("A", &a), ("B", &b), ("C", &c)]);
    assert_eq!(meetings, 1, "one meeting for the three");
    // Each got the one codec it offered, numbered as offered.
    assert_eq!(negotiated(&a), ("G722", 9, 8000), "A's answer");
    assert_eq!(negotiated(&b), ("opus", 111, 48_000), "B's answer");
    assert_eq!(negotiated(&c), ("PCMU", 0, 8000), "C's answer");
    assert_eq!(b.codec.unwrap().telephone_event, Some(101));
    assert_eq!(
        (a.heard_rate, b.heard_rate, c.heard_rate),
        (16_000, 16_000, 8000)
    );

    // The IVR's prompts (8 kHz files) reach every codec: the first 3 s are audible.
    for (name, o) in [("A", &a), ("B", &b), ("C", &c)] {
        let rate = o.heard_rate as usize;
        let prompt = analyse_at(&o.heard[..3 * rate], o.heard_rate, None);
        assert!(
            Expectation::Audio.check(&prompt).is_ok(),
            "{name} hears the welcome prompt: {prompt:?}"
        );
    }
    // C (G.711) hears both wideband callers.
    for hz in [440.0, 1000.0] {
        let heard = analysis(&c, hz);
        assert!(heard.tone_blocks >= 25, "C hears {hz} Hz: {heard:?}");
    }
    // A (G.722) hears B, never itself; B (Opus) hears A, never itself.
    for (name, o, other, own) in [("A", &a, 1000.0, 440.0), ("B", &b, 440.0, 1000.0)] {
        let heard = analysis(o, other);
        assert!(
            heard.tone_blocks >= 25,
            "{name} hears {other} Hz: {heard:?}"
        );
        let echo = analysis(o, own);
        assert_eq!(
            echo.tone_blocks, 0,
            "{name} hears itself at {own} Hz: {echo:?}"
        );
        // 30 dB: the mix is N-1 exactly, only codec noise is left of one's own tone.
        assert!(
            power(o, other) > 1000.0 * power(o, own),
            "{name}: {other} Hz {:.1} vs own {own} Hz {:.1}",
            power(o, other),
            power(o, own)
        );
    }
    everyone_gone(&bridge).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_6khz_tone_from_an_opus_caller_reaches_a_g722_caller() {
    let bridge = TestBridge::start(demo_config()).await;
    let sip = bridge.sip_addr();
    let a = tokio::spawn(join(sip, CallCodec::G722, tone(5000.0)));
    let b = tokio::spawn(join(sip, CallCodec::Opus, tone(6000.0)));
    wait_for_mix(&bridge, 2, &[&a, &b]).await;
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    all_passed(&[("A", &a), ("B", &b)]);
    assert_eq!(negotiated(&a), ("G722", 9, 8000), "A's answer");
    assert_eq!(negotiated(&b), ("opus", 111, 48_000), "B's answer");
    // 6 kHz is above the 4 kHz Nyquist frequency of an 8 kHz mix: only a wideband
    // path from B's Opus through the room to A's G.722 carries it.
    let heard = analysis(&a, 6000.0);
    assert!(
        heard.tone_blocks >= 25,
        "A hears B's 6 kHz tone (the room mixes at 16 kHz): {heard:?}"
    );
    // And it is the tone, not a folded image of it (an 8 kHz path would alias 6 kHz to
    // 2 kHz).
    assert!(
        power(&a, 6000.0) > 100.0 * power(&a, 2000.0),
        "6 kHz {:.1} vs 2 kHz {:.1}",
        power(&a, 6000.0),
        power(&a, 2000.0)
    );
    // The other way: G.722's upper sub-band (4-8 kHz) reaches the Opus caller.
    let heard = analysis(&b, 5000.0);
    assert!(heard.tone_blocks >= 25, "B hears A's 5 kHz tone: {heard:?}");
    for (name, o, own) in [("A", &a, 5000.0), ("B", &b, 6000.0)] {
        let echo = analysis(o, own);
        assert_eq!(echo.tone_blocks, 0, "{name} hears itself: {echo:?}");
    }
    everyone_gone(&bridge).await;
    bridge.stop().await;
}

/// Trunks without telephone-event key their way in with tones in the audio; the bridge
/// hears them on a G.722 and on an Opus leg as it does on G.711.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wideband_callers_key_in_band_into_the_meeting() {
    let bridge = TestBridge::start(demo_config()).await;
    let sip = bridge.sip_addr();
    let mut calls = Vec::new();
    for codec in [CallCodec::G722, CallCodec::Opus] {
        let mut config = caller(SERVICE, Source::Silence, JOIN_ADELE, Duration::from_secs(3));
        config.codec = codec;
        config.dtmf = DtmfMode::InBand;
        calls.push(tokio::spawn(place(sip, TELCO_A, config)));
    }
    wait_for_mix(&bridge, 2, &[&calls[0], &calls[1]]).await;
    assert_eq!(
        bridge.participants(),
        2,
        "both keyed the meeting ID in-band"
    );
    for (name, call) in ["G.722", "Opus"].into_iter().zip(calls) {
        let o = call.await.unwrap();
        all_passed(&[(name, &o)]);
        let c = o.codec.unwrap();
        assert_eq!(
            c.telephone_event, None,
            "{name}: in-band offers no telephone-event"
        );
    }
    everyone_gone(&bridge).await;
    bridge.stop().await;
}

/// In-band keys pressed in the meeting are squelched from the mix on a wideband leg as
/// on G.711: a G.711 listener never hears a G.722 or Opus caller's DTMF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_band_keys_from_wideband_callers_stay_out_of_the_mix() {
    for codec in [CallCodec::G722, CallCodec::Opus] {
        let bridge = TestBridge::start(demo_config()).await;
        let sip = bridge.sip_addr();
        let listener = tokio::spawn(join(sip, CallCodec::Pcmu, Source::Silence));
        // Once in the room: ten presses of 1 (697 + 1209 Hz), 100 ms each.
        let script = format!("{JOIN_ADELE}, wait 2s, keys 1111111111, wait 1s");
        let mut keyer = caller(SERVICE, Source::Silence, &script, Duration::from_secs(1));
        keyer.codec = codec;
        keyer.dtmf = DtmfMode::InBand;
        let keyer = tokio::spawn(place(sip, TELCO_A, keyer));
        let (keyer, listener) = (keyer.await.unwrap(), listener.await.unwrap());
        all_passed(&[("keyer", &keyer), ("listener", &listener)]);
        // 20 ms frames of the listener's recording (8 kHz) holding both tones of key 1.
        let frames = listener
            .heard
            .chunks_exact(160)
            .filter(|f| has_tone(f, 697.0) && has_tone(f, 1209.0))
            .count();
        assert_eq!(
            frames, 0,
            "the listener heard {codec:?} DTMF in {frames} frames"
        );
        everyone_gone(&bridge).await;
        bridge.stop().await;
    }
}
