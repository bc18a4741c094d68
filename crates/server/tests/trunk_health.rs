//! Trunk health with real sockets: the real `dialbridge serve` probes each trunk's
//! outbound target with OPTIONS from its SIP socket; UDP answerers on loopback stand at
//! the targets. A trunk that answers is up; one that stops answering, or answers 503,
//! is down (in `/metrics` and `GET /api/v1/trunks`); one that answers again is up.
//! Short intervals (200 ms, a 300 ms timeout) keep the test short; every wait is
//! bounded and polls the API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialbridge_testkit::options::OptionsAnswerer;
use dialbridge_testkit::ports::free_udp_tcp_port;
use dialbridge_testkit::serve::{DemoToml, Serve};
use dialbridge_testkit::{ip, scratch_dir};
use serde_json::Value;

/// How long any state may take to show (a few probes at 200 ms, on a busy machine).
const WITHIN: Duration = Duration::from_secs(15);

struct Bridge {
    serve: Serve,
    sip: SocketAddr,
}

/// The demo bridge with its three trunks' outbound targets at `targets` (in the demo's
/// order), probing every 200 ms.
async fn bridge(targets: [SocketAddr; 3]) -> Bridge {
    let dir = scratch_dir("trunk-health");
    let sip = free_udp_tcp_port(ip("127.0.0.1"));
    let tls = free_udp_tcp_port(ip("127.0.0.1"));
    let admin = free_udp_tcp_port(ip("127.0.0.1"));
    let mut config = DemoToml::new(&dir)
        .on_loopback_ports(sip, tls, admin)
        .set("trunk_health", "interval_ms", "200")
        .set("trunk_health", "timeout_ms", "300")
        .set("trunk_health", "down_after", "2")
        .set("trunk_health", "up_after", "1");
    for (demo, target) in ["127.0.0.10:5080", "127.0.0.20:5080", "127.0.0.30:5080"]
        .iter()
        .zip(targets)
    {
        config = config.replace(
            &format!("outbound = \"{demo}\""),
            &format!("outbound = \"{target}\""),
        );
    }
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let serve = Serve::start(
        env!("CARGO_BIN_EXE_dialbridge").as_ref(),
        &config,
        admin_addr,
        &dir,
    )
    .await;
    Bridge {
        serve,
        sip: format!("127.0.0.1:{sip}").parse().unwrap(),
    }
}

impl Bridge {
    /// The trunk called `name` as `GET /api/v1/trunks` shows it.
    async fn trunk(&self, name: &str) -> Value {
        let (status, body) = self.serve.get("/api/v1/trunks").await;
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        body["trunks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no trunk {name} in {body}"))
    }

    /// Waits (bounded) until trunk `name` is `health` with `last_answer`, probed.
    async fn until(&self, name: &str, health: &str, last_answer: &str) -> Value {
        let end = Instant::now() + WITHIN;
        loop {
            let t = self.trunk(name).await;
            if t["health"] == health && t["last_answer"] == last_answer && t["probed"] == true {
                return t;
            }
            assert!(
                Instant::now() < end,
                "{name} not {health} after {last_answer} within {WITHIN:?}: {t}\n--- bridge log ---\n{}",
                self.serve.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn metrics(&self) -> String {
        let (status, text) = self.serve.get("/metrics").await;
        assert_eq!(status, 200, "{text}");
        text
    }
}

/// The value of the series `name{trunk="<trunk>"}` in `metrics`.
fn sample(metrics: &str, name: &str, trunk: &str) -> f64 {
    let series = format!("{name}{{trunk=\"{trunk}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_mark_trunks_down_when_silent_or_unavailable_and_up_when_they_answer() {
    let pstn = OptionsAnswerer::bind(ip("127.0.0.10")).await;
    let telco_a = OptionsAnswerer::bind(ip("127.0.0.20")).await;
    let telco_b = OptionsAnswerer::bind(ip("127.0.0.30")).await;
    let bridge = bridge([pstn.addr(), telco_a.addr(), telco_b.addr()]).await;

    // Every target answers 200: up, probed.
    for (name, answerer) in [
        ("microsoft-pstn", &pstn),
        ("telco-a", &telco_a),
        ("telco-b", &telco_b),
    ] {
        let t = bridge.until(name, "up", "200").await;
        assert_eq!(t["outbound"], answerer.addr().to_string());
    }
    // From the bridge's own SIP socket.
    assert_eq!(pstn.last_from(), Some(bridge.sip));
    let metrics = bridge.metrics().await;
    assert_eq!(
        sample(&metrics, "dialbridge_trunk_up", "microsoft-pstn"),
        1.0
    );
    assert!(sample(&metrics, "dialbridge_trunk_options_sent_total", "telco-b") >= 1.0);

    // The Microsoft trunk goes silent, Telco A answers 503: both down, Telco B stays up.
    pstn.go_silent();
    telco_a.answer_with(503);
    let silent = bridge.until("microsoft-pstn", "down", "timeout").await;
    assert!(
        silent["consecutive_failures"].as_u64().unwrap() >= 2,
        "{silent}"
    );
    assert!(silent["last_change_at"].is_string(), "{silent}");
    bridge.until("telco-a", "down", "503").await;
    let metrics = bridge.metrics().await;
    assert_eq!(
        sample(&metrics, "dialbridge_trunk_up", "microsoft-pstn"),
        0.0
    );
    assert_eq!(sample(&metrics, "dialbridge_trunk_up", "telco-a"), 0.0);
    assert_eq!(sample(&metrics, "dialbridge_trunk_up", "telco-b"), 1.0);
    assert!(
        sample(
            &metrics,
            "dialbridge_trunk_options_failed_total",
            "microsoft-pstn"
        ) >= 2.0
    );
    assert_eq!(bridge.trunk("telco-b").await["health"], "up");

    // They answer again: up after one answer.
    let before = pstn.received();
    pstn.answer_with(200);
    telco_a.answer_with(200);
    bridge.until("microsoft-pstn", "up", "200").await;
    bridge.until("telco-a", "up", "200").await;
    assert!(pstn.received() > before);
    let metrics = bridge.metrics().await;
    assert_eq!(
        sample(&metrics, "dialbridge_trunk_up", "microsoft-pstn"),
        1.0
    );
    let log = bridge.serve.log();
    assert!(log.contains("trunk down"), "{log}");
    assert!(log.contains("trunk up"), "{log}");
}
