//! The far end of the bridge's dial-outs, met by a peer we did not write: sipp calls
//! `sbc-sim answer` (through the [`Answerer`] helper the end-to-end tests use) with the
//! load scenario, which keys in and talks a 440 Hz capture, and pings it with OPTIONS;
//! and the sipp UAS scenario that presses 1 (uas-dialout-key1.xml) answers an sbc-sim
//! call, OPTIONS pings before it, and keys 1 from its capture.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialbridge_media::RtpView;
use dialbridge_testkit::answerer::Answerer;
use dialbridge_testkit::caller::{caller, place, tone};
use dialbridge_testkit::ports::free_udp_tcp_port;
use dialbridge_testkit::sipp::Sipp;
use dialbridge_testkit::{ip, options};
use sbc_sim::answer::EndedBy;
use sbc_sim::audio_check::Expectation;

/// The number a dial-out calls.
const DIALLED: &str = "+14255557000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_calls_sbc_sim_answer_which_keys_1_and_hears_the_tone() {
    let mut answerer = Answerer::start(&[
        "--listen",
        "127.0.0.1:0",
        "--ring-ms",
        "200",
        "--key",
        "1",
        "--key-after-ms",
        "500",
        "--expect-tone",
        "440",
        "--hold-ms",
        "30000",
        "--timeout",
        "40s",
    ])
    .await;
    let local = ip("127.0.0.1");
    // An independent check of our answer to a ping: 200 with Allow, Accept, Supported.
    Sipp::new("uac-options.xml", answerer.addr(), local, DIALLED)
        .timeout(Duration::from_secs(10))
        .passes()
        .await;
    // The load call keys its way in (events the phone ignores), then talks 440 Hz for
    // 5 s, holds 6 s and hangs up.
    let sipp = Sipp::new("uac-load.xml", answerer.addr(), local, DIALLED)
        .hold(Duration::from_secs(6))
        .timeout(Duration::from_secs(30))
        .run()
        .await;
    let report = answerer.next_report(Duration::from_secs(10)).await;
    let answered = answerer.finish().await;
    assert!(
        sipp.passed(),
        "sipp: {}\n--- answerer ---\n{}",
        sipp.log,
        answered.log
    );
    let report = report.unwrap_or_else(|| panic!("no report:\n{}", answered.log));
    assert_eq!(answered.code(), 0, "{report:?}\n{}", answered.log);
    assert_eq!(answered.summary.options, 1);
    assert_eq!(
        answered.the_call(),
        &report,
        "next_report's report is in the run's"
    );
    assert_eq!(
        (report.to.as_str(), report.from.as_str()),
        (DIALLED, "+33612345678")
    );
    assert_eq!(
        (report.status, report.ended_by),
        (Some(200), EndedBy::Caller)
    );
    assert_eq!(report.keyed.as_deref(), Some("1"));
    let heard = report.heard.clone().unwrap();
    assert_eq!(
        (heard.expected_heard, heard.tone_hz),
        (Some(true), Some(440.0)),
        "{heard:?}"
    );
    assert!(heard.tone_run_ms >= 4000, "the 5 s capture: {heard:?}");
    assert!(report.rtp.events_sent >= 4, "{:?}", report.rtp);
    assert_eq!(answered.json_lines().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_answerer_ends_and_reports_its_call() {
    let answerer = Answerer::start(&[
        "--listen",
        "127.0.0.1:0",
        "--ring-ms",
        "0",
        "--hold-ms",
        "60000",
        "--timeout",
        "60s",
    ])
    .await;
    let addr = answerer.addr();
    let mut config = caller(DIALLED, tone(440.0), "", Duration::from_secs(30));
    config.expect.bridge_hangs_up = true;
    let call = tokio::spawn(place(addr, "127.0.0.1", config));
    let up = Instant::now() + Duration::from_secs(10);
    while !answerer.log().contains("← ACK") {
        assert!(Instant::now() < up, "{}", answerer.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered = answerer.stop().await;
    let outcome = call.await.unwrap();
    assert!(outcome.passed(), "{:?}\n{}", outcome.failures, answered.log);
    let report = answered.the_call();
    assert_eq!(report.ended_by, EndedBy::Timeout);
    assert!(report.failures[0].contains("still up"), "{report:?}");
    assert_eq!(answered.code(), 1, "a call cut short fails the run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sipp_far_end_answers_pings_then_keys_1() {
    let phone = ip("127.0.0.1");
    let port = free_udp_tcp_port(phone);
    let uas_addr = SocketAddr::new(phone, port);
    let port_arg = port.to_string();
    // Pings are calls of their own to sipp: -m is above them, the dial-out's end stops it.
    let uas = Sipp::new("uas-dialout-key1.xml", uas_addr, phone, "dialout")
        .calls(100, 10)
        .args(&["-p", &port_arg])
        .timeout(Duration::from_secs(30));
    let uas = tokio::spawn(async move { uas.run().await });
    let up = Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind(uas_addr).is_ok() {
        assert!(Instant::now() < up, "sipp never bound {uas_addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..2 {
        let answer = options::ping(uas_addr, phone, Duration::from_secs(2)).await;
        assert_eq!(answer, Some(200));
    }
    let mut config = caller(DIALLED, tone(1000.0), "", Duration::from_secs(7));
    // The phone talks its capture's 440 Hz, around its key.
    config.expect.audio = vec![Expectation::Tone(440.0)];
    let outcome = place(uas_addr, "127.0.0.1", config).await;
    let sipp = uas.await.unwrap();
    assert!(
        outcome.passed(),
        "{:?}\n--- sipp ---\n{}",
        outcome.failures,
        sipp.log
    );
    assert!(sipp.passed(), "{}", sipp.log);
    // The key's packets: five while it is held, three ends.
    assert_eq!(outcome.media.events_received, 8, "{:?}", outcome.media);
    assert_eq!(captured_key_events(), 8);
}

/// The RFC 4733 packets of the capture the sipp far end plays: every one is event 1
/// (its end packets with the E bit); their count.
fn captured_key_events() -> usize {
    let path = dialbridge_testkit::fixtures().join("sipp/pcap/pcmu-440hz-dtmf-1.pcap");
    let pcap = std::fs::read(path).unwrap();
    // Classic pcap: a 24-byte file header, then 16-byte record headers; Ethernet (14),
    // IPv4 (20) and UDP (8) headers before the RTP packet.
    let mut at = 24;
    let (mut events, mut ends) = (0, 0);
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let rtp = RtpView::parse(&pcap[at + 16 + 42..at + 16 + len]).unwrap();
        if rtp.payload_type == 101 {
            let payload = rtp.payload();
            assert_eq!(payload[0], 1, "the key is 1");
            events += 1;
            ends += usize::from(payload[1] & 0x80 != 0);
        } else {
            assert_eq!(rtp.payload_type, 0, "PCMU");
        }
        at += 16 + len;
    }
    assert_eq!(ends, 3);
    events
}
