//! Recording a meeting through the admin API: two callers talk in adele's meeting, an
//! administrator records a few seconds of it, and the WAV holds both voices at 16 kHz;
//! a recording still running when the meeting ends is finished and readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::audio::goertzel_power;
use dialbridge_testkit::caller::{JOIN_ADELE, caller, place, tone};
use dialbridge_testkit::wait_until;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A fresh directory for this test's recordings.
fn recordings_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("recordings-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Admin {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Admin {
    fn new(bridge: &TestBridge) -> Admin {
        Admin {
            http: reqwest::Client::new(),
            base: format!("http://{}", bridge.admin_addr()),
            auth: format!("Bearer {}", bridge.admin_token()),
        }
    }

    async fn record(&self, conference: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!(
                "{}/api/v1/conferences/contoso/{conference}/recording",
                self.base
            ))
            .header("Authorization", &self.auth)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn conferences(&self) -> Value {
        self.http
            .get(format!("{}/api/v1/conferences", self.base))
            .header("Authorization", &self.auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The WAV's rate and samples.
fn read(path: &str) -> (u32, Vec<i16>) {
    let reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (1, 16));
    let samples = reader.into_samples::<i16>().map(Result::unwrap).collect();
    (spec.sample_rate, samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_records_a_meeting() {
    let dir = recordings_dir("api");
    let mut config = demo_config();
    config.conference.recordings_dir = dir.clone();
    let bridge = TestBridge::start(config).await;
    let sip = bridge.sip_addr();
    let hold = Duration::from_secs(10);
    let a = tokio::spawn(place(
        sip,
        "127.0.0.20",
        caller("+33170000100", tone(440.0), JOIN_ADELE, hold),
    ));
    let b = tokio::spawn(place(
        sip,
        "127.0.0.20",
        caller("+33170000100", tone(1000.0), JOIN_ADELE, hold),
    ));
    wait_until(
        "two in the mix",
        || bridge.participants() == 2,
        Duration::from_secs(15),
    )
    .await;
    let admin = Admin::new(&bridge);

    // Refusals first: they change nothing.
    let (status, body) = admin.record("123456789", json!({"recording": "yes"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = admin.record("999999999", json!({"recording": true})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("999999999"),
        "{body}"
    );
    let (status, body) = admin.record("12ab", json!({"recording": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = admin.record("123456789", json!({"recording": false})).await;
    assert_eq!(status, StatusCode::CONFLICT, "not recording yet: {body}");
    assert!(!dir.exists(), "no file before a recording starts");

    let (status, started) = admin.record("123456789", json!({"recording": true})).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(started["recording"], true);
    let file = started["file"].as_str().unwrap().to_string();
    assert!(file.starts_with(dir.to_str().unwrap()), "{file}");
    assert!(file.contains("contoso-123456789-"), "{file}");
    let listed = admin.conferences().await;
    assert_eq!(listed["conferences"][0]["recording"], true, "{listed}");
    let (status, body) = admin.record("123456789", json!({"recording": true})).await;
    assert_eq!(status, StatusCode::CONFLICT, "already recording: {body}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, stopped) = admin.record("123456789", json!({"recording": false})).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["recording"], false);
    assert_eq!(stopped["file"], file.as_str());
    let seconds = stopped["seconds"].as_f64().unwrap();
    assert!((2.5..4.5).contains(&seconds), "{seconds} s recorded");
    let listed = admin.conferences().await;
    assert_eq!(listed["conferences"][0]["recording"], false, "{listed}");

    // The file: 16 kHz, as long as reported, both callers in it.
    let (rate, samples) = read(&file);
    assert_eq!(rate, 16_000);
    let duration = samples.len() as f64 / 16_000.0;
    assert!((duration - seconds).abs() < 0.05, "{duration} vs {seconds}");
    let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
    let (p440, p1000, p3000) = (
        goertzel_power(middle, 16_000.0, 440.0),
        goertzel_power(middle, 16_000.0, 1000.0),
        goertzel_power(middle, 16_000.0, 3000.0),
    );
    assert!(
        p440 > 100.0 * p3000 && p1000 > 100.0 * p3000,
        "both voices recorded: 440 {p440:.1}, 1000 {p1000:.1}, floor 3000 {p3000:.1}"
    );

    // Recording again, then everyone leaves: the meeting's end finishes the file.
    let (status, again) = admin.record("123456789", json!({"recording": true})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let second = again["file"].as_str().unwrap().to_string();
    assert_ne!(second, file);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert!(a.answered() && b.answered());
    wait_until(
        "the meeting over",
        || bridge.meetings() == 0,
        Duration::from_secs(10),
    )
    .await;
    let mut last = 0;
    for _ in 0..50 {
        // The writer thread finishes the file just after the room closes.
        if let Ok(reader) = hound::WavReader::open(&second) {
            last = reader.len();
            if last > 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last > 16_000, "the second recording holds {last} samples");
    bridge.stop().await;
}
