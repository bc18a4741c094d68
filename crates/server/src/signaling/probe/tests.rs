//! The prober inside the signaling task, on a virtual clock: OPTIONS leave through its
//! transaction layer for each trunk's outbound target, answers and timeouts come back
//! as SIP, and the health is published. No socket is opened and no test sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dialbridge_sip::message;
use dialbridge_sip::message::fields::response_for;
use dialbridge_sip::rsip::{Method, Request, SipMessage};
use dialbridge_sip::transaction::{PeerAddr, TransportKind};
use dialbridge_sip::transport::Received;

use crate::metrics::{Gauges, setup_latency_histogram};
use crate::services::Services;
use crate::signaling::{Observers, Signaling, Wire};
use crate::trunk_health::{HealthConfig, HealthState};

/// The demo's signaling task with probing on (15 s, 5 s, down after 2, up after 1), a
/// captured wire and a clock of its own.
struct Bench {
    signaling: Signaling,
    services: Arc<Services>,
    now: Instant,
}

impl Bench {
    fn new() -> Bench {
        let mut config = crate::testing::demo_config();
        config.trunk_health = HealthConfig {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            down_after: 2,
            up_after: 1,
        };
        let gauges = Arc::new(Gauges::default());
        let services = Services::start(&config, gauges.clone()).unwrap();
        let wire = Wire::Captured {
            local: "127.0.0.1:5060".parse().unwrap(),
            sent: Vec::new(),
        };
        let observers = Observers {
            sip: Arc::default(),
            setup_latency: Arc::new(setup_latency_histogram()),
            auth: Arc::default(),
        };
        let signaling = Signaling::new(Arc::new(config), services.clone(), wire, gauges, observers);
        Bench {
            signaling,
            services,
            now: Instant::now(),
        }
    }

    /// Moves the clock by `by`, firing what is due in deadline order.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(at) = self.signaling.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.signaling.handle_timeout(self.now);
            self.signaling.drive(self.now);
        }
        self.now = until;
    }

    /// The OPTIONS sent since the last call, with where they went.
    fn options_sent(&mut self) -> Vec<(PeerAddr, Request)> {
        let Wire::Captured { sent, .. } = &mut self.signaling.wire else {
            unreachable!()
        };
        sent.drain(..)
            .map(|(peer, bytes)| match message::parse(&bytes).unwrap() {
                SipMessage::Request(r) if r.method == Method::Options => (peer, r),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    /// The far end at `peer` answers `options` with `status`.
    fn answer(&mut self, peer: PeerAddr, options: &Request, status: u16) {
        let response = response_for(options, status, None, Some("far"));
        let received = Received {
            peer,
            bytes: message::encode(&SipMessage::Response(response)),
            certificate_names: None,
        };
        self.signaling.handle_received(received, self.now);
        self.signaling.drive(self.now);
    }

    fn state(&self, trunk: &str) -> HealthState {
        self.signaling.trunk_health().trunk(trunk).unwrap().state
    }

    fn is_up(&self, trunk: &str) -> bool {
        let id = self.services.router.trunk_by_name(trunk).unwrap();
        self.signaling.probes.health.is_up(id)
    }
}

#[tokio::test]
async fn every_outbound_target_gets_an_options_and_its_answer_counts() {
    let mut bench = Bench::new();
    bench.advance(Duration::ZERO);
    let sent = bench.options_sent();
    let targets: Vec<String> = sent.iter().map(|(p, _)| p.addr.to_string()).collect();
    assert_eq!(
        targets,
        ["127.0.0.10:5080", "127.0.0.20:5080", "127.0.0.30:5080"]
    );
    let (peer, options) = &sent[0];
    assert_eq!(peer.transport, TransportKind::Udp);
    let text =
        String::from_utf8(message::encode(&SipMessage::Request(options.clone())).to_vec()).unwrap();
    assert!(
        text.starts_with("OPTIONS sip:127.0.0.10:5080 SIP/2.0\r\n"),
        "{text}"
    );
    for needle in [
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK",
        "To: <sip:127.0.0.10:5080>\r\n",
        "CSeq: 1 OPTIONS\r\n",
        "Max-Forwards: 70\r\n",
        "Accept: application/sdp\r\n",
        "Contact: <sip:dialbridge@127.0.0.1:5060>\r\n",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    assert_eq!(bench.state("microsoft-pstn"), HealthState::Unprobed);
    for (peer, options) in &sent {
        bench.answer(*peer, options, 200);
    }
    assert_eq!(bench.state("microsoft-pstn"), HealthState::Up);
    assert_eq!(bench.signaling.trunk_health().current().len(), 3);
    // The next round, an interval later; 503 from Telco A marks it down at once.
    bench.advance(Duration::from_secs(15));
    let sent = bench.options_sent();
    assert_eq!(sent.len(), 3);
    bench.answer(sent[1].0, &sent[1].1, 503);
    assert_eq!(bench.state("telco-a"), HealthState::Down);
    assert!(!bench.is_up("telco-a"));
    let contoso = bench
        .services
        .router
        .dial_out_trunks("contoso", None)
        .unwrap();
    assert_eq!(
        bench.signaling.probes.health.available(&contoso),
        [bench
            .services
            .router
            .trunk_by_name("microsoft-pstn")
            .unwrap()]
    );
}

#[tokio::test]
async fn unanswered_probes_mark_down_and_their_transactions_are_dropped() {
    let mut bench = Bench::new();
    bench.advance(Duration::ZERO);
    assert_eq!(bench.options_sent().len(), 3);
    // 5 s without an answer: one failure each (retransmissions at 0.5, 1.5, 3.5 s).
    bench.advance(Duration::from_secs(5));
    let retransmitted = bench.options_sent();
    assert_eq!(retransmitted.len(), 9, "Timer E over UDP");
    assert!(bench.is_up("microsoft-pstn"));
    // The transactions given up on are gone, not retransmitting until Timer F.
    assert_eq!(bench.signaling.layer.len(), 0);
    bench.advance(Duration::from_secs(10));
    assert_eq!(bench.options_sent().len(), 3);
    bench.advance(Duration::from_secs(5));
    bench.options_sent();
    assert!(!bench.is_up("microsoft-pstn"));
    assert_eq!(bench.state("telco-b"), HealthState::Down);
    let report = bench.signaling.trunk_health().trunk("telco-b").unwrap();
    assert_eq!((report.options_sent, report.options_failed), (2, 2));
    // A late answer to a given-up probe is a stray response, not a success.
    let (peer, options) = retransmitted[0].clone();
    bench.answer(peer, &options, 200);
    assert!(!bench.is_up("microsoft-pstn"));
    // The next probe's answer brings it back.
    bench.advance(Duration::from_secs(10));
    let sent = bench.options_sent();
    bench.answer(sent[0].0, &sent[0].1, 200);
    assert!(bench.is_up("microsoft-pstn"));
}

#[tokio::test]
async fn a_dial_out_failure_brings_the_next_probe_forward() {
    let mut bench = Bench::new();
    bench.advance(Duration::ZERO);
    for (peer, options) in bench.options_sent() {
        bench.answer(peer, &options, 200);
    }
    bench.advance(Duration::from_secs(2));
    let telco_b = bench.services.router.trunk_by_name("telco-b").unwrap();
    let now = bench.now;
    bench
        .signaling
        .probes
        .health
        .report_invite_failure(telco_b, now);
    bench.advance(Duration::ZERO);
    let sent = bench.options_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.addr.to_string(), "127.0.0.30:5080");
    let report = bench.signaling.trunk_health().trunk("telco-b").unwrap();
    assert_eq!(report.consecutive_failures, 1);
}
