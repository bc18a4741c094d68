//! The `/metrics` endpoint: the figures of the router, the signaling, transport and
//! media tasks and the calls, encoded by `prometheus-client` in the Prometheus text
//! format, version 0.0.4, rather than the crate's default OpenMetrics text (which names
//! counter families without `_total` and ends with `# EOF`): Prometheus takes either,
//! and this one is the text the dashboards and scripts read.
//!
//! Counts kept for the metrics alone use the crate's types ([`Counter`], [`Histogram`]).
//! The rest is read at scrape time by the collector in `families`, the crate's way for
//! values it does not own: the call gauges the signaling task and the meetings share,
//! the transaction layer's totals, and what other crates keep (the router's snapshot,
//! the media engine's and the transports' stats).

mod calls;
mod families;

pub use calls::{
    CallQuality, DtmfFailure, DtmfFailures, QUALITY_INTERVAL, QualityReporter, QualityView,
};
pub use prometheus_client::metrics::histogram::Histogram;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dialbridge_media::MediaEngine;
use dialbridge_router::Router;
use dialbridge_sip::auth::{Failure, StaleNonce, Subject};
use dialbridge_sip::transaction::LayerStats;
use dialbridge_sip::transport::Transports;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Buckets (seconds) for call set-up latency: INVITE received to 200 OK sent.
pub const SETUP_LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Buckets (seconds) for RTP interarrival jitter (RFC 3550 §6.4.1).
pub const JITTER_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16];

/// A histogram of call set-up latency. The crate's histogram takes an uncontended lock
/// per observation; this one sees one per answered call, never one per packet.
pub fn setup_latency_histogram() -> Histogram {
    Histogram::new(SETUP_LATENCY_BUCKETS.iter().copied())
}

/// Live counts, shared with whoever wants to read them (tests, metrics). Kept here, with
/// the other published figures, so the meetings and the signaling task both write them
/// without importing each other.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Calls the bridge holds (each with its router grant).
    pub calls: AtomicUsize,
    /// Calls admitted to a meeting's mix (not in a lobby).
    pub participants: AtomicUsize,
    /// Meetings in progress.
    pub meetings: AtomicUsize,
}

/// Everything `/metrics` reads. The router and the call gauge are always there; the
/// other sources are `None` until the task that feeds them is wired in, and their
/// families are then left out.
#[derive(Debug, Clone)]
pub struct MetricsSources {
    pub router: Router,
    /// Calls in progress (the signaling task stores it).
    pub calls: Arc<Gauges>,
    /// The transaction layer's counters (the signaling task publishes them).
    pub sip: Arc<SipCounters>,
    /// The transports' refusal and loss counters.
    pub transports: Option<Transports>,
    /// INVITE received to 200 OK sent.
    pub setup_latency: Option<Arc<Histogram>>,
    /// The media engine: its sessions, rooms and clock (tick lateness).
    pub media: Option<MediaEngine>,
    /// RTP packet counters of all sessions, ended ones included.
    pub rtp: Option<Arc<RtpCounters>>,
    /// The calls' reception quality: jitter sampled per call, the worst call now.
    pub call_quality: Option<Arc<CallQuality>>,
    /// Failed DTMF entries (wrong IDs and PINs, timeouts, lock-outs, bad events).
    pub dtmf_failures: Option<Arc<DtmfFailures>>,
    /// Softphone digest authentication (the signaling task counts).
    pub auth: Option<Arc<AuthCounters>>,
    /// The meetings' dial-outs.
    pub dial_outs: Option<crate::dial_out::DialOuts>,
    /// The trunks' health (the signaling task probes and publishes).
    pub trunk_health: Option<crate::trunk_health::HealthBoard>,
    /// Calls refused or ended for money, and the ledger's open reservations.
    pub money: Option<MoneySource>,
    /// Capacity shared with other nodes (`[shared] redis`): its readiness and refusals.
    pub shared: Option<crate::shared::SharedCapacity>,
}

/// What `/metrics` reads of the money: the refusals counted by the signaling task, and
/// the ledger (when `[money]` is configured).
#[derive(Debug, Clone)]
pub struct MoneySource {
    pub refusals: Arc<MoneyRefusals>,
    pub ledger: Option<dialbridge_ledger::Ledger>,
}

/// Calls refused before their answer, or ended in progress, because nothing would pay
/// for them, by the ledger's reason (a fixed list).
#[derive(Debug, Default)]
pub struct MoneyRefusals {
    counts: [Counter; dialbridge_ledger::Refusal::ALL.len()],
}

impl MoneyRefusals {
    /// Counts one.
    pub fn count(&self, refusal: dialbridge_ledger::Refusal) {
        if let Some(i) = dialbridge_ledger::Refusal::ALL
            .iter()
            .position(|r| *r == refusal)
            && let Some(c) = self.counts.get(i)
        {
            c.inc();
        }
    }

    /// `(reason, count)` of every reason.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        dialbridge_ledger::Refusal::ALL
            .iter()
            .zip(&self.counts)
            .map(|(r, c)| (r.as_str(), c.get()))
    }
}

impl MetricsSources {
    /// The sources every bridge has; the optional ones empty.
    pub fn new(router: Router, calls: Arc<Gauges>) -> MetricsSources {
        MetricsSources {
            router,
            calls,
            sip: Arc::default(),
            transports: None,
            setup_latency: None,
            media: None,
            rtp: None,
            call_quality: None,
            dtmf_failures: None,
            auth: None,
            dial_outs: None,
            trunk_health: None,
            money: None,
            shared: None,
        }
    }

    /// Wires the media families: the engine, and what the calls publish.
    pub fn with_media(
        mut self,
        media: MediaEngine,
        quality: Arc<CallQuality>,
        dtmf_failures: Arc<DtmfFailures>,
    ) -> MetricsSources {
        self.media = Some(media);
        self.rtp = Some(quality.rtp.clone());
        self.call_quality = Some(quality);
        self.dtmf_failures = Some(dtmf_failures);
        self
    }
}

/// The whole exposition, every family read now.
pub fn render(sources: &MetricsSources) -> String {
    // A registry per scrape: the sources are a handful of `Arc`s, and which of them are
    // wired is only known once the bridge has started.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources.clone()));
    let mut text = String::with_capacity(8192);
    // Writing into a `String` cannot fail, and our collector's only errors are the
    // writer's.
    let _ = prometheus_text::encode(&mut text, &registry);
    text
}

/// The transaction layer's [`LayerStats`], copied where the metrics can read them. The
/// layer belongs to the signaling task, which calls [`SipCounters::publish`]; these are
/// copies of its totals, not counts of our own, hence atomics and not [`Counter`]s.
#[derive(Debug, Default)]
pub struct SipCounters {
    pub transactions: AtomicU64,
    pub stray_acks: AtomicU64,
    pub stray_responses: AtomicU64,
    pub malformed: AtomicU64,
    pub overloaded: AtomicU64,
    pub retransmissions_absorbed: AtomicU64,
    /// New calls shed (503 before any work); counted by the signaling task itself.
    pub shed: AtomicU64,
}

impl SipCounters {
    /// Stores the layer's counters and its number of live transactions (a few relaxed
    /// stores: cheap enough to do after every batch of events).
    pub fn publish(&self, stats: &LayerStats, transactions: usize) {
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(
            &self.transactions,
            u64::try_from(transactions).unwrap_or(u64::MAX),
        );
        set(&self.stray_acks, stats.stray_acks);
        set(&self.stray_responses, stats.stray_responses);
        set(&self.malformed, stats.malformed);
        set(&self.overloaded, stats.overloaded);
        set(
            &self.retransmissions_absorbed,
            stats.retransmissions_absorbed,
        );
    }
}

/// Softphone digest authentication: how attempts ended, and lock-outs. Labels come from
/// fixed lists (never a user name or an address: those go to the log).
#[derive(Debug, Default)]
pub struct AuthCounters {
    /// Requests whose credentials were accepted.
    pub authenticated: Counter,
    /// Requests refused while their source or user was locked out.
    pub refused_locked: Counter,
    failures: [Counter; Failure::ALL.len()],
    /// Right credentials with an expired or a replayed nonce.
    stale: [Counter; 2],
    /// Lock-outs started, by source and by user.
    lockouts: [Counter; 2],
}

impl AuthCounters {
    /// Counts a failed attempt.
    pub fn failure(&self, failure: Failure) {
        if let Some(i) = Failure::ALL.iter().position(|f| *f == failure)
            && let Some(c) = self.failures.get(i)
        {
            c.inc();
        }
    }

    /// Counts a stale nonce.
    pub fn stale(&self, nonce: StaleNonce) {
        self.stale[stale_index(nonce)].inc();
    }

    /// Counts a lock-out started.
    pub fn lockout(&self, subject: &Subject) {
        self.lockouts[scope_index(subject)].inc();
    }

    /// `(reason, count)` of every failure.
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Failure::ALL
            .iter()
            .zip(&self.failures)
            .map(|(f, c)| (f.as_str(), c.get()))
    }

    /// `(reason, count)` of stale nonces.
    pub fn stales(&self) -> [(&'static str, u64); 2] {
        [StaleNonce::Expired, StaleNonce::Replayed]
            .map(|n| (n.as_str(), self.stale[stale_index(n)].get()))
    }

    /// `(scope, count)` of lock-outs started.
    pub fn lockouts(&self) -> [(&'static str, u64); 2] {
        [
            ("source", self.lockouts[0].get()),
            ("user", self.lockouts[1].get()),
        ]
    }
}

fn stale_index(nonce: StaleNonce) -> usize {
    match nonce {
        StaleNonce::Expired => 0,
        StaleNonce::Replayed => 1,
    }
}

fn scope_index(subject: &Subject) -> usize {
    match subject {
        Subject::Source(_) => 0,
        Subject::User(_) => 1,
    }
}

/// RTP counters summed over every session (each increment one atomic add).
#[derive(Debug, Default)]
pub struct RtpCounters {
    pub packets_sent: Counter,
    pub packets_received: Counter,
    /// Packets never received (sequence number gaps, RFC 3550 §6.4.1 cumulative loss).
    pub packets_lost: Counter,
    pub send_dropped: Counter,
    pub receive_dropped: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_sources_appear_once_given() {
        let config = crate::config::Config::demo().unwrap();
        let router = Router::new(crate::plan_from(&config).unwrap());
        let gauges = Arc::new(Gauges::default());
        gauges.calls.store(3, Ordering::Relaxed);
        let mut sources = MetricsSources::new(router, gauges);
        let text = render(&sources);
        assert!(text.starts_with(
            "# HELP dialbridge_calls_in_progress Calls the bridge holds right now.\n\
             # TYPE dialbridge_calls_in_progress gauge\n\
             dialbridge_calls_in_progress 3\n"
        ));
        assert!(text.contains("dialbridge_bridge_capacity{bridge=\"contoso-bridge\"} 1000\n"));
        assert!(text.contains("dialbridge_trunk_capacity{trunk=\"microsoft-pstn\"} 2000\n"));
        assert!(text.contains("dialbridge_sip_transactions 0\n"));
        assert!(!text.contains("dialbridge_call_setup_seconds"));
        assert!(!text.contains("dialbridge_dtmf_failures_total"));

        sources.sip.publish(
            &LayerStats {
                stray_acks: 1,
                retransmissions_absorbed: 5,
                ..LayerStats::default()
            },
            9,
        );
        let setup = Arc::new(setup_latency_histogram());
        setup.observe(0.02);
        sources.setup_latency = Some(setup);
        let quality = Arc::new(CallQuality::default());
        quality.rtp.packets_lost.inc_by(4);
        let mut reporter = quality.reporter();
        reporter.publish(
            dialbridge_media::SessionStats {
                received: 10,
                ..Default::default()
            },
            dialbridge_media::Quality {
                jitter_ms: 25.0,
                loss_fraction: 0.25,
                ..Default::default()
            },
        );
        let failures = Arc::new(DtmfFailures::default());
        failures.count(DtmfFailure::WrongPin);
        failures.count(DtmfFailure::WrongPin);
        sources.rtp = Some(quality.rtp.clone());
        sources.call_quality = Some(quality);
        sources.dtmf_failures = Some(failures);
        let auth = Arc::new(AuthCounters::default());
        auth.failure(Failure::WrongCredentials);
        auth.stale(StaleNonce::Replayed);
        auth.lockout(&Subject::User("alice".into()));
        auth.refused_locked.inc();
        sources.auth = Some(auth);
        let refusals = Arc::new(MoneyRefusals::default());
        refusals.count(dialbridge_ledger::Refusal::NoCredits);
        sources.money = Some(MoneySource {
            refusals,
            ledger: None,
        });
        let text = render(&sources);
        for line in [
            "dialbridge_sip_transactions 9\n",
            "dialbridge_sip_stray_acks_total 1\n",
            "dialbridge_sip_retransmissions_absorbed_total 5\n",
            "dialbridge_call_setup_seconds_bucket{le=\"0.025\"} 1\n",
            "dialbridge_call_setup_seconds_count 1\n",
            "dialbridge_rtp_jitter_seconds_bucket{le=\"0.02\"} 0\n",
            "dialbridge_rtp_jitter_seconds_bucket{le=\"0.04\"} 1\n",
            "dialbridge_rtp_jitter_seconds_count 1\n",
            "dialbridge_rtp_jitter_max_seconds 0.025\n",
            "dialbridge_rtp_loss_ratio_max 0.25\n",
            "dialbridge_rtp_calls_measured 1\n",
            "dialbridge_rtp_packets_received_total 10\n",
            "dialbridge_rtp_packets_lost_total 4\n",
            "dialbridge_dtmf_failures_total{reason=\"wrong_pin\"} 2\n",
            "dialbridge_dtmf_failures_total{reason=\"timeout\"} 0\n",
            "dialbridge_sip_auth_failures_total{reason=\"wrong_credentials\"} 1\n",
            "dialbridge_sip_auth_failures_total{reason=\"wrong_uri\"} 0\n",
            "dialbridge_sip_auth_stale_total{reason=\"replayed\"} 1\n",
            "dialbridge_sip_auth_lockouts_total{scope=\"user\"} 1\n",
            "dialbridge_sip_auth_lockouts_total{scope=\"source\"} 0\n",
            "dialbridge_sip_auth_locked_out_total 1\n",
            "dialbridge_sip_auth_successes_total 0\n",
            "dialbridge_money_refusals_total{reason=\"no_credits\"} 1\n",
            "dialbridge_money_refusals_total{reason=\"unknown_tenant\"} 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // Every family is declared once, and every sample belongs to a declared family.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(declared.insert(name.to_owned()), "{name} declared twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{name} undeclared");
            }
        }
    }
}
