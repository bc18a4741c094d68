//! `/metrics` and the roster after real calls. A caller whose RTP loses every tenth
//! audio packet joins adele's meeting: while it talks the roster shows its loss and
//! jitter and the dashboard's snapshot flags it with a poor-audio badge; once it has
//! hung up the packet totals are exact (every packet sent counted received, every
//! packet held back counted lost). A caller who lets the digit timer run out, keys a
//! wrong conference ID and a wrong PIN shows up in the DTMF failures, by reason. The
//! mixer's tick lateness is there too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::caller::{caller, place, tone};
use dialbridge_testkit::{ip, uac, wait_until};
use serde_json::Value;
use tokio::net::UdpSocket;

/// The admin API of a test bridge.
struct Admin {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Admin {
    fn of(bridge: &TestBridge) -> Admin {
        Admin {
            http: reqwest::Client::new(),
            base: format!("http://{}", bridge.admin_addr()),
            auth: format!("Bearer {}", bridge.admin_token()),
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp
    }

    async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    async fn conferences(&self) -> Value {
        self.get("/api/v1/conferences").await.json().await.unwrap()
    }
}

/// The value of the sample `series` (name and labels exactly as printed).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// The RTP a test caller sends from its own socket (the bridge checks the source IP,
/// not the port): PCMU silence every 20 ms and keys as RFC 4733 events, every tenth
/// audio packet held back. Every packet has a sequence number of its own, so the
/// bridge's count of received and lost packets can be checked exactly.
struct Rtp {
    sock: UdpSocket,
    to: SocketAddr,
    ticker: tokio::time::Interval,
    seq: u16,
    timestamp: u32,
    audio: u64,
    sent: u64,
    dropped: u64,
}

const PCMU: u8 = 0;
/// The telephone-event payload type of testkit's offer.
const EVENTS: u8 = 101;

impl Rtp {
    async fn new(from: &str, to: SocketAddr) -> Rtp {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Rtp {
            sock: UdpSocket::bind((ip(from), 0)).await.unwrap(),
            to,
            ticker,
            seq: 1000,
            timestamp: 160_000,
            audio: 0,
            sent: 0,
            dropped: 0,
        }
    }

    /// `frames` of 20 ms audio, one every 20 ms.
    async fn audio(&mut self, frames: u32) {
        for _ in 0..frames {
            self.ticker.tick().await;
            self.audio += 1;
            let lose = self.audio % 10 == 5;
            self.packet(PCMU, false, self.timestamp, &[0xff; 160], lose)
                .await;
            self.timestamp = self.timestamp.wrapping_add(160);
        }
    }

    /// One audio packet that is certainly delivered (the last one: a gap at the end
    /// would not count as loss, RFC 3550 counts up to the highest sequence number).
    async fn last(&mut self) {
        self.ticker.tick().await;
        self.packet(PCMU, false, self.timestamp, &[0xff; 160], false)
            .await;
    }

    /// Keys `digits`: each a 100 ms event (RFC 4733 §2.5: start with the marker, the
    /// duration growing, three end packets), then 60 ms of audio.
    async fn keys(&mut self, digits: &str) {
        for digit in digits.chars() {
            let event = match digit {
                '*' => 10,
                '#' => 11,
                d => d.to_digit(10).unwrap() as u8,
            };
            let start = self.timestamp;
            for (i, duration) in [160u16, 320, 480, 640, 800].into_iter().enumerate() {
                self.ticker.tick().await;
                let d = duration.to_be_bytes();
                self.packet(EVENTS, i == 0, start, &[event, 10, d[0], d[1]], false)
                    .await;
            }
            for _ in 0..3 {
                let d = 800u16.to_be_bytes();
                self.packet(EVENTS, false, start, &[event, 0x80 | 10, d[0], d[1]], false)
                    .await;
            }
            self.timestamp = start.wrapping_add(800);
            self.audio(3).await;
        }
    }

    async fn packet(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8], lose: bool) {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x5eed_0001u32.to_be_bytes());
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        if lose {
            self.dropped += 1;
        } else {
            self.sock.send_to(&p, self.to).await.unwrap();
            self.sent += 1;
        }
    }
}

/// The first `event: snapshot` of an event stream, within 5 s.
async fn first_snapshot(mut stream: reqwest::Response) -> Value {
    assert!(stream.status().is_success(), "{}", stream.status());
    let mut text = String::new();
    let read = async {
        loop {
            if let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                if block.lines().any(|l| l == "event: snapshot") {
                    let data: Vec<&str> = block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect();
                    return serde_json::from_str::<Value>(&data.join("\n")).unwrap();
                }
                continue;
            }
            let chunk = stream.chunk().await.unwrap().expect("the stream ended");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a snapshot within 5 s")
}

/// The bridge's RTP address from the SDP of its answer.
fn media_addr(answer: &str) -> SocketAddr {
    let c = answer
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("c= line");
    let port = answer
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next())
        .expect("m=audio line");
    format!("{}:{}", c.trim(), port).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_call_shows_its_loss_and_jitter_live_and_exactly_once_ended() {
    let bridge = TestBridge::start(demo_config()).await;
    let admin = Admin::of(&bridge);
    let call = uac::call(bridge.sip_addr(), ip("127.0.0.20"), "+33170000100").await;
    assert_eq!(call.status, 200, "{}", call.response);
    let mut rtp = Rtp::new("127.0.0.20", media_addr(&call.response)).await;

    // Into adele's meeting as a participant, then talk until the roster shows the loss
    // of a whole RTCP report interval (the loss share is measured per interval, 5 s
    // give or take half; the count of lost packets as they go).
    rtp.audio(25).await;
    rtp.keys("123456789#").await;
    rtp.audio(75).await;
    rtp.keys("#").await;
    // The first interval with loss may have begun while the keys went out (none of
    // them dropped): talk on for about 8 s more, so that an interval of audio alone
    // reports, and keep the row with the highest loss.
    let mut row = Value::Null;
    let mut first_lost = None;
    for _ in 0..60 {
        rtp.audio(25).await;
        let listed = admin.conferences().await;
        let p = &listed["conferences"][0]["participants"][0];
        let loss = p["quality"]["loss_percent"].as_f64().unwrap_or(0.0);
        if loss <= 0.0 {
            continue;
        }
        let lost = p["quality"]["packets_lost"].as_i64().unwrap_or(0);
        let first = *first_lost.get_or_insert(lost);
        if loss > row["quality"]["loss_percent"].as_f64().unwrap_or(0.0) {
            row = p.clone();
        }
        if lost >= first + 40 {
            break;
        }
    }
    let quality = &row["quality"];
    assert!(quality.is_object(), "the roster shows the caller's quality");
    assert!(quality["packets_lost"].as_i64().unwrap() >= 1, "{row}");
    assert!(quality["packets_lost"].as_i64().unwrap() <= rtp.dropped as i64);
    assert!(quality["jitter_ms"].as_f64().unwrap() > 0.0, "{row}");
    // One audio packet in ten, between keys: about 10 %.
    let loss = quality["loss_percent"].as_f64().unwrap();
    assert!((5.0..=15.0).contains(&loss), "{row}");

    // The dashboard flags the caller (its badge on the page) while it keeps talking.
    let events = tokio::spawn({
        let request = admin
            .http
            .get(format!("{}/api/v1/events", admin.base))
            .header("Authorization", &admin.auth);
        async move { first_snapshot(request.send().await.unwrap()).await }
    });
    rtp.audio(25).await;
    let snapshot = events.await.unwrap();
    let flagged = &snapshot["conferences"][0]["participants"][0];
    let badge = flagged["quality_warning"].as_str().unwrap_or_default();
    assert!(badge.starts_with("loss "), "{flagged}");
    let warnings = snapshot["warnings"].to_string();
    assert!(
        warnings.contains("poor audio from +15550001111 in conference 123456789: loss "),
        "{warnings}"
    );

    let live = admin.metrics().await;
    assert_eq!(sample(&live, "dialbridge_rtp_calls_measured"), 1.0);
    assert!(sample(&live, "dialbridge_rtp_jitter_seconds_count") >= 1.0);
    assert!(sample(&live, "dialbridge_rtp_jitter_max_seconds") > 0.0);
    assert!(sample(&live, "dialbridge_rtp_packets_lost_total") >= 1.0);
    assert_eq!(sample(&live, "dialbridge_media_rooms"), 1.0);
    // The clock ticks from the start, room or not.
    assert!(sample(&live, "dialbridge_mixer_tick_lateness_seconds_count") > 50.0);
    assert!(sample(&live, "dialbridge_mixer_ticks_total") > 50.0);
    let p99 = sample(
        &live,
        "dialbridge_mixer_tick_lateness_seconds{quantile=\"0.99\"}",
    );
    assert!((0.0..0.1).contains(&p99), "{p99}");

    rtp.last().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(call.hang_up().await, 200);
    wait_until(
        "the call to end",
        || bridge.calls_in_progress() == 0,
        Duration::from_secs(5),
    )
    .await;
    // The ended call's counts stay in the totals, exactly.
    let ended = admin.metrics().await;
    assert!(rtp.dropped >= 10, "{} audio packets held back", rtp.dropped);
    assert_eq!(
        sample(&ended, "dialbridge_rtp_packets_received_total"),
        rtp.sent as f64,
        "{ended}"
    );
    assert_eq!(
        sample(&ended, "dialbridge_rtp_packets_lost_total"),
        rtp.dropped as f64,
        "{ended}"
    );
    assert!(sample(&ended, "dialbridge_rtp_packets_sent_total") > 100.0);
    assert_eq!(sample(&ended, "dialbridge_rtp_calls_measured"), 0.0);
    for reason in ["wrong_conference_id", "wrong_pin", "timeout", "locked_out"] {
        let series = format!("dialbridge_dtmf_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(sample(&ended, &series), 0.0, "{series}");
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_a_wrong_conference_id_and_a_wrong_pin_are_dtmf_failures() {
    let mut config = demo_config();
    config.ivr.inter_digit_timeout = Duration::from_secs(1);
    let bridge = TestBridge::start(config).await;
    let admin = Admin::of(&bridge);
    // "12" then silence: the inter-digit timer runs out. Then an ID nobody has, adele's,
    // a PIN that is not hers, and # to join as a participant after all.
    let script = "wait 500ms, keys 12, wait 2500ms, keys 111111111#, wait 2500ms, \
                  keys 123456789#, wait 2000ms, keys 2468#, wait 3000ms, keys #";
    let call = tokio::spawn(place(
        bridge.sip_addr(),
        "127.0.0.20",
        caller("+33170000100", tone(440.0), script, Duration::from_secs(3)),
    ));
    wait_until(
        "the caller in the meeting",
        || bridge.participants() == 1,
        Duration::from_secs(30),
    )
    .await;
    let outcome = call.await.unwrap();
    assert!(outcome.passed(), "{:?}", outcome.failures);

    let text = admin.metrics().await;
    for (reason, n) in [
        ("timeout", 1.0),
        ("wrong_conference_id", 1.0),
        ("wrong_pin", 1.0),
        ("locked_out", 0.0),
        ("malformed", 0.0),
    ] {
        let series = format!("dialbridge_dtmf_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(sample(&text, &series), n, "{series} in\n{text}");
    }
    bridge.stop().await;
}
