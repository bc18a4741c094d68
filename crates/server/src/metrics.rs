//! The `/metrics` endpoint: the Prometheus text exposition format (version 0.0.4: a
//! `# HELP` and a `# TYPE` line per family, then `name{label="value"} number` samples)
//! rendered from the router's counters and the gauges, counters and histograms the
//! signaling, transport and media tasks publish.
//!
//! Hand-written rather than a client library: the format is a few lines of text, and
//! the sources already keep their own atomics; a [`Histogram`] is the one thing added.

mod calls;

pub use calls::{
    CallQuality, DtmfFailure, DtmfFailures, QUALITY_INTERVAL, QualityReporter, QualityView,
};

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dialbridge_media::{EngineStats, MediaEngine};
use dialbridge_router::{RejectReason, Router, Snapshot};
use dialbridge_sip::transaction::LayerStats;
use dialbridge_sip::transport::Transports;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets (seconds) for call set-up latency: INVITE received to 200 OK sent.
pub const SETUP_LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Buckets (seconds) for RTP interarrival jitter (RFC 3550 §6.4.1).
pub const JITTER_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16];

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

/// The transaction layer's [`LayerStats`], copied where the metrics can read them. The
/// layer belongs to the signaling task, which calls [`SipCounters::publish`].
#[derive(Debug, Default)]
pub struct SipCounters {
    pub transactions: AtomicU64,
    pub stray_acks: AtomicU64,
    pub stray_responses: AtomicU64,
    pub malformed: AtomicU64,
    pub overloaded: AtomicU64,
    pub retransmissions_absorbed: AtomicU64,
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

/// RTP counters summed over every session.
#[derive(Debug, Default)]
pub struct RtpCounters {
    pub packets_sent: AtomicU64,
    pub packets_received: AtomicU64,
    /// Packets never received (sequence number gaps, RFC 3550 §6.4.1 cumulative loss).
    pub packets_lost: AtomicU64,
    pub send_dropped: AtomicU64,
    pub receive_dropped: AtomicU64,
}

/// A Prometheus histogram with fixed buckets. [`Histogram::observe`] is lock-free and
/// allocates nothing: a bucket search over at most a dozen bounds and two atomic adds.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in seconds, ascending; the `+Inf` bucket is implicit.
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative), `bounds.len() + 1` of them.
    buckets: Box<[AtomicU64]>,
    /// Sum of observations in nanoseconds (an integer so it can be added atomically).
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// A histogram over `bounds` (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `seconds` (negative and NaN count as 0).
    pub fn observe(&self, seconds: f64) {
        let seconds = if seconds.is_nan() || seconds < 0.0 {
            0.0
        } else {
            seconds
        };
        let i = self
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        // `as` saturates for huge values, which is what a sum should do.
        self.sum_nanos
            .fetch_add((seconds * 1e9).round() as u64, Ordering::Relaxed);
    }

    /// Counts one observation of `d`.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

/// The whole exposition, in the order of the families below.
pub fn render(sources: &MetricsSources) -> String {
    let mut out = Exposition(String::with_capacity(8192));
    let calls = sources.calls.calls.load(Ordering::Relaxed);
    out.gauge(
        "dialbridge_calls_in_progress",
        "Calls the bridge holds right now.",
    );
    out.sample("dialbridge_calls_in_progress", &[], calls as f64);
    write_router(&mut out, &sources.router.snapshot());
    write_sip(&mut out, &sources.sip);
    if let Some(t) = &sources.transports {
        write_transports(&mut out, t);
    }
    if let Some(h) = &sources.setup_latency {
        out.histogram(
            "dialbridge_call_setup_seconds",
            "Time from INVITE received to 200 OK sent.",
            h,
        );
    }
    if let Some(media) = &sources.media {
        write_engine(&mut out, &media.stats());
    }
    if let Some(rtp) = &sources.rtp {
        write_rtp(&mut out, rtp);
    }
    if let Some(q) = &sources.call_quality {
        write_call_quality(&mut out, q);
    }
    if let Some(failures) = &sources.dtmf_failures {
        out.family(
            "dialbridge_dtmf_failures_total",
            "Failed DTMF entries in the entry IVR, by reason.",
            "counter",
        );
        for reason in DtmfFailure::ALL {
            out.sample(
                "dialbridge_dtmf_failures_total",
                &[("reason", reason.as_str())],
                failures.get(reason) as f64,
            );
        }
    }
    out.0
}

/// The media engine's clock and tables.
fn write_engine(out: &mut Exposition, s: &EngineStats) {
    // The engine keeps a fine-bucketed histogram of its own (50 µs steps) and gives
    // out its quantiles, not its buckets: a summary, then, without `_sum`, which the
    // engine does not keep (the format lets a summary's consumers do without it).
    let name = "dialbridge_mixer_tick_lateness_seconds";
    out.family(
        name,
        "How late mixer ticks started against their 20 ms schedule, since start \
         (quantiles are bucket upper bounds, 50 us resolution).",
        "summary",
    );
    let lateness = &s.tick_lateness;
    out.sample(name, &[("quantile", "0.5")], lateness.p50.as_secs_f64());
    out.sample(name, &[("quantile", "0.99")], lateness.p99.as_secs_f64());
    out.sample(&format!("{name}_count"), &[], lateness.count as f64);
    for (name, help, value) in [
        (
            "dialbridge_mixer_tick_lateness_max_seconds",
            "The latest a mixer tick started, since start.",
            lateness.max,
        ),
        (
            "dialbridge_mixer_tick_max_seconds",
            "The longest mixer tick (mix, encode and send for everyone), since start.",
            s.max_tick,
        ),
    ] {
        out.gauge(name, help);
        out.sample(name, &[], value.as_secs_f64());
    }
    out.counter("dialbridge_mixer_ticks_total", "Mixer ticks run.", s.ticks);
    out.counter(
        "dialbridge_mixer_ticks_skipped_total",
        "Mixer ticks given up because the clock fell too far behind.",
        s.ticks_skipped,
    );
    out.counter(
        "dialbridge_rtp_receive_queue_overflows_total",
        "RTP packets dropped because a call's inbound queue was full.",
        s.receive_queue_overflows,
    );
    out.counter(
        "dialbridge_rtp_latched_total",
        "Times a call's media target moved to where its RTP came from (symmetric RTP \
         latching, or a new port on the SDP address).",
        s.rtp_latched,
    );
    out.counter(
        "dialbridge_rtp_latch_refused_total",
        "RTP packets refused for their source: not the caller's, and not allowed to \
         latch (also in dialbridge_rtp_receive_dropped_total).",
        s.rtp_latch_refused,
    );
    for (name, help, value) in [
        (
            "dialbridge_media_sessions",
            "RTP sessions open.",
            s.sessions,
        ),
        ("dialbridge_media_rooms", "Mixing rooms open.", s.rooms),
    ] {
        out.gauge(name, help);
        out.sample(name, &[], value as f64);
    }
}

/// The calls' reception quality: jitter over time, and the worst call right now.
fn write_call_quality(out: &mut Exposition, q: &CallQuality) {
    out.histogram(
        "dialbridge_rtp_jitter_seconds",
        "Interarrival jitter (RFC 3550) of each call's inbound RTP, sampled once a second per call.",
        &q.jitter,
    );
    let (calls, loss, jitter_ms) = q.worst();
    for (name, help, value) in [
        (
            "dialbridge_rtp_calls_measured",
            "Calls in progress with published RTP quality figures.",
            calls as f64,
        ),
        (
            "dialbridge_rtp_jitter_max_seconds",
            "The highest interarrival jitter of the calls in progress.",
            jitter_ms / 1000.0,
        ),
        (
            "dialbridge_rtp_loss_ratio_max",
            "The highest inbound loss fraction (last RTCP interval) of the calls in progress.",
            loss,
        ),
    ] {
        out.gauge(name, help);
        out.sample(name, &[], value);
    }
}

/// The router's families: totals, and per trunk, bridge and busy number.
fn write_router(out: &mut Exposition, snap: &Snapshot) {
    out.counter(
        "dialbridge_router_admitted_total",
        "Calls the router admitted.",
        snap.admitted,
    );
    out.family(
        "dialbridge_router_refused_total",
        "Calls the router refused, by reason.",
        "counter",
    );
    // Every reason, zeros included, so a rate() over the family always has its series.
    for reason in RejectReason::ALL {
        out.sample(
            "dialbridge_router_refused_total",
            &[("reason", reason.as_str())],
            snap.rejected.get(reason) as f64,
        );
    }
    for (kind, list) in [("trunk", &snap.trunks), ("bridge", &snap.bridges)] {
        let in_progress = format!("dialbridge_{kind}_calls_in_progress");
        out.family(
            &in_progress,
            &format!("Calls in progress per {kind}."),
            "gauge",
        );
        for r in list.iter() {
            out.sample(&in_progress, &[(kind, &r.name)], f64::from(r.in_progress));
        }
        let capacity = format!("dialbridge_{kind}_capacity");
        out.family(&capacity, &format!("Call capacity per {kind}."), "gauge");
        for r in list.iter() {
            if let Some(c) = r.capacity {
                out.sample(&capacity, &[(kind, &r.name)], f64::from(c));
            }
        }
        let admitted = format!("dialbridge_{kind}_admitted_total");
        out.family(&admitted, &format!("Calls admitted per {kind}."), "counter");
        for r in list.iter() {
            out.sample(&admitted, &[(kind, &r.name)], r.admitted as f64);
        }
        let refused = format!("dialbridge_{kind}_refused_total");
        out.family(
            &refused,
            &format!("Calls refused per {kind} and reason."),
            "counter",
        );
        for r in list.iter() {
            for (reason, n) in r.rejected.iter() {
                out.sample(
                    &refused,
                    &[(kind, &r.name), ("reason", reason.as_str())],
                    n as f64,
                );
            }
        }
    }
    // Numbers: only those with calls up or refusals, as the snapshot lists them (a plan
    // may hold millions of numbers).
    let numbers: Vec<(String, &dialbridge_router::NumberStats)> = snap
        .numbers
        .iter()
        .map(|n| (n.number.to_string(), n))
        .collect();
    out.family(
        "dialbridge_number_calls_in_progress",
        "Calls in progress per number (numbers with calls or refusals).",
        "gauge",
    );
    for (e164, n) in &numbers {
        out.sample(
            "dialbridge_number_calls_in_progress",
            &[("number", e164)],
            f64::from(n.in_progress),
        );
    }
    out.family(
        "dialbridge_number_capacity",
        "Concurrent-call capacity per number (numbers with calls or refusals).",
        "gauge",
    );
    for (e164, n) in &numbers {
        if let Some(c) = n.capacity {
            out.sample(
                "dialbridge_number_capacity",
                &[("number", e164)],
                f64::from(c),
            );
        }
    }
    out.family(
        "dialbridge_number_refused_total",
        "Calls refused per number and reason.",
        "counter",
    );
    for (e164, n) in &numbers {
        for (reason, count) in n.rejected.iter() {
            out.sample(
                "dialbridge_number_refused_total",
                &[("number", e164), ("reason", reason.as_str())],
                count as f64,
            );
        }
    }
}

fn write_sip(out: &mut Exposition, sip: &SipCounters) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    out.gauge(
        "dialbridge_sip_transactions",
        "SIP transactions alive (server and client).",
    );
    out.sample(
        "dialbridge_sip_transactions",
        &[],
        load(&sip.transactions) as f64,
    );
    for (name, help, value) in [
        (
            "dialbridge_sip_stray_acks_total",
            "ACKs matching no transaction and no 2xx awaiting its ACK.",
            &sip.stray_acks,
        ),
        (
            "dialbridge_sip_stray_responses_total",
            "Responses matching no client transaction.",
            &sip.stray_responses,
        ),
        (
            "dialbridge_sip_malformed_total",
            "Messages with no usable Via, branch or CSeq.",
            &sip.malformed,
        ),
        (
            "dialbridge_sip_overloaded_total",
            "Requests refused because too many transactions were alive.",
            &sip.overloaded,
        ),
        (
            "dialbridge_sip_retransmissions_absorbed_total",
            "Request retransmissions absorbed by a server transaction.",
            &sip.retransmissions_absorbed,
        ),
    ] {
        out.counter(name, help, load(value));
    }
}

fn write_transports(out: &mut Exposition, transports: &Transports) {
    let s = transports.stats();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (name, help, value) in [
        (
            "dialbridge_transport_datagrams_dropped_total",
            "Datagrams dropped (inbound queue full).",
            &s.datagrams_dropped,
        ),
        (
            "dialbridge_transport_oversized_refused_total",
            "Messages refused for being too large.",
            &s.oversized_refused,
        ),
        (
            "dialbridge_transport_connections_accepted_total",
            "Stream (TCP, TLS) connections accepted.",
            &s.connections_accepted,
        ),
        (
            "dialbridge_transport_connections_refused_total",
            "Stream connections closed at accept (limit reached, TLS failed).",
            &s.connections_refused,
        ),
        (
            "dialbridge_transport_send_failures_total",
            "Messages that could not be sent.",
            &s.send_failures,
        ),
    ] {
        out.counter(name, help, load(value));
    }
}

fn write_rtp(out: &mut Exposition, rtp: &RtpCounters) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (name, help, value) in [
        (
            "dialbridge_rtp_packets_sent_total",
            "RTP packets sent.",
            &rtp.packets_sent,
        ),
        (
            "dialbridge_rtp_packets_received_total",
            "RTP packets received.",
            &rtp.packets_received,
        ),
        (
            "dialbridge_rtp_packets_lost_total",
            "RTP packets lost on the way in (sequence gaps).",
            &rtp.packets_lost,
        ),
        (
            "dialbridge_rtp_send_dropped_total",
            "RTP packets not sent (socket buffer full or send failed).",
            &rtp.send_dropped,
        ),
        (
            "dialbridge_rtp_receive_dropped_total",
            "RTP packets dropped on receipt (malformed, foreign source, queue full).",
            &rtp.receive_dropped,
        ),
    ] {
        out.counter(name, help, load(value));
    }
}

/// The text being written. `fmt::Write` into a `String` cannot fail, hence the
/// ignored results.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = write!(self.0, "# HELP {name} ");
        escape(&mut self.0, help, false);
        let _ = writeln!(self.0, "\n# TYPE {name} {kind}");
    }

    fn gauge(&mut self, name: &str, help: &str) {
        self.family(name, help, "gauge");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, "counter");
        self.sample(name, &[], value as f64);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"");
                escape(&mut self.0, v, true);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", Value(value));
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, help, "histogram");
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (i, b) in h.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = match h.bounds.get(i) {
                Some(bound) => Value(*bound).to_string(),
                None => "+Inf".to_owned(),
            };
            self.sample(&bucket, &[("le", &le)], cumulative as f64);
        }
        let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], cumulative as f64);
    }
}

/// A sample value as the format writes it (Go's `strconv` style: `+Inf`, `NaN`).
struct Value(f64);

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            write!(f, "{v}")
        }
    }
}

/// Escapes `\` and newline (and `"` in label values), as the format requires.
fn escape(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialbridge_router::{NumberStats, ReasonCounts, ResourceStats};

    fn counts(pairs: &[(RejectReason, u64)]) -> ReasonCounts {
        let mut c = ReasonCounts::default();
        for (r, n) in pairs {
            c.0[r.index()] = *n;
        }
        c
    }

    #[test]
    fn router_snapshot_renders_exactly() {
        let snap = Snapshot {
            admitted: 7,
            rejected: counts(&[(RejectReason::NumberBusy, 3)]),
            trunks: vec![ResourceStats {
                name: "telco-a".into(),
                in_progress: 2,
                capacity: Some(500),
                admitted: 4,
                rejected: counts(&[(RejectReason::WrongProvider, 1)]),
            }],
            bridges: vec![ResourceStats {
                name: "odd \"bridge\"\\x".into(),
                in_progress: 1,
                capacity: None,
                admitted: 3,
                rejected: ReasonCounts::default(),
            }],
            numbers: vec![NumberStats {
                number: "+14255550123".parse().unwrap(),
                in_progress: 2,
                capacity: Some(2),
                rejected: counts(&[(RejectReason::NumberBusy, 3)]),
            }],
        };
        let mut out = Exposition(String::new());
        write_router(&mut out, &snap);
        let expected = "\
# HELP dialbridge_router_admitted_total Calls the router admitted.
# TYPE dialbridge_router_admitted_total counter
dialbridge_router_admitted_total 7
# HELP dialbridge_router_refused_total Calls the router refused, by reason.
# TYPE dialbridge_router_refused_total counter
dialbridge_router_refused_total{reason=\"not_a_number\"} 0
dialbridge_router_refused_total{reason=\"unknown_trunk\"} 0
dialbridge_router_refused_total{reason=\"unknown_number\"} 0
dialbridge_router_refused_total{reason=\"unassigned\"} 0
dialbridge_router_refused_total{reason=\"wrong_provider\"} 0
dialbridge_router_refused_total{reason=\"licence_forbids_provider\"} 0
dialbridge_router_refused_total{reason=\"bridge_disabled\"} 0
dialbridge_router_refused_total{reason=\"number_busy\"} 3
dialbridge_router_refused_total{reason=\"bridge_overloaded\"} 0
dialbridge_router_refused_total{reason=\"trunk_overloaded\"} 0
# HELP dialbridge_trunk_calls_in_progress Calls in progress per trunk.
# TYPE dialbridge_trunk_calls_in_progress gauge
dialbridge_trunk_calls_in_progress{trunk=\"telco-a\"} 2
# HELP dialbridge_trunk_capacity Call capacity per trunk.
# TYPE dialbridge_trunk_capacity gauge
dialbridge_trunk_capacity{trunk=\"telco-a\"} 500
# HELP dialbridge_trunk_admitted_total Calls admitted per trunk.
# TYPE dialbridge_trunk_admitted_total counter
dialbridge_trunk_admitted_total{trunk=\"telco-a\"} 4
# HELP dialbridge_trunk_refused_total Calls refused per trunk and reason.
# TYPE dialbridge_trunk_refused_total counter
dialbridge_trunk_refused_total{trunk=\"telco-a\",reason=\"wrong_provider\"} 1
# HELP dialbridge_bridge_calls_in_progress Calls in progress per bridge.
# TYPE dialbridge_bridge_calls_in_progress gauge
dialbridge_bridge_calls_in_progress{bridge=\"odd \\\"bridge\\\"\\\\x\"} 1
# HELP dialbridge_bridge_capacity Call capacity per bridge.
# TYPE dialbridge_bridge_capacity gauge
# HELP dialbridge_bridge_admitted_total Calls admitted per bridge.
# TYPE dialbridge_bridge_admitted_total counter
dialbridge_bridge_admitted_total{bridge=\"odd \\\"bridge\\\"\\\\x\"} 3
# HELP dialbridge_bridge_refused_total Calls refused per bridge and reason.
# TYPE dialbridge_bridge_refused_total counter
# HELP dialbridge_number_calls_in_progress Calls in progress per number (numbers with calls or refusals).
# TYPE dialbridge_number_calls_in_progress gauge
dialbridge_number_calls_in_progress{number=\"+14255550123\"} 2
# HELP dialbridge_number_capacity Concurrent-call capacity per number (numbers with calls or refusals).
# TYPE dialbridge_number_capacity gauge
dialbridge_number_capacity{number=\"+14255550123\"} 2
# HELP dialbridge_number_refused_total Calls refused per number and reason.
# TYPE dialbridge_number_refused_total counter
dialbridge_number_refused_total{number=\"+14255550123\",reason=\"number_busy\"} 3
";
        assert_eq!(out.0, expected);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        static BOUNDS: &[f64] = &[0.01, 0.1, 1.0];
        let h = Histogram::new(BOUNDS);
        for s in [0.005, 0.01, 0.05, 0.5, 7.0, -1.0, f64::NAN] {
            h.observe(s);
        }
        h.observe_duration(Duration::from_millis(20));
        assert_eq!(h.count(), 8);
        let mut out = Exposition(String::new());
        out.histogram("x_seconds", "Help with \\ and\nnewline \"quoted\".", &h);
        assert_eq!(
            out.0,
            "\
# HELP x_seconds Help with \\\\ and\\nnewline \"quoted\".
# TYPE x_seconds histogram
x_seconds_bucket{le=\"0.01\"} 4
x_seconds_bucket{le=\"0.1\"} 6
x_seconds_bucket{le=\"1\"} 7
x_seconds_bucket{le=\"+Inf\"} 8
x_seconds_sum 7.585
x_seconds_count 8
"
        );
    }

    #[test]
    fn the_engine_clock_renders_as_a_summary() {
        let stats = EngineStats {
            sessions: 3,
            rooms: 1,
            ticks: 500,
            ticks_skipped: 2,
            max_tick: Duration::from_micros(800),
            tick_lateness: dialbridge_media::LatencySummary {
                count: 500,
                p50: Duration::from_micros(150),
                p99: Duration::from_micros(3_250),
                max: Duration::from_millis(7),
            },
            rtp_latched: 4,
            rtp_latch_refused: 9,
            ..EngineStats::default()
        };
        let mut out = Exposition(String::new());
        write_engine(&mut out, &stats);
        for line in [
            "# TYPE dialbridge_mixer_tick_lateness_seconds summary\n",
            "dialbridge_mixer_tick_lateness_seconds{quantile=\"0.5\"} 0.00015\n",
            "dialbridge_mixer_tick_lateness_seconds{quantile=\"0.99\"} 0.00325\n",
            "dialbridge_mixer_tick_lateness_seconds_count 500\n",
            "dialbridge_mixer_tick_lateness_max_seconds 0.007\n",
            "dialbridge_mixer_tick_max_seconds 0.0008\n",
            "dialbridge_mixer_ticks_total 500\n",
            "dialbridge_mixer_ticks_skipped_total 2\n",
            "dialbridge_media_sessions 3\n",
            "dialbridge_media_rooms 1\n",
            "dialbridge_rtp_latched_total 4\n",
            "dialbridge_rtp_latch_refused_total 9\n",
        ] {
            assert!(out.0.contains(line), "missing {line:?} in\n{}", out.0);
        }
    }

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
        let setup = Arc::new(Histogram::new(SETUP_LATENCY_BUCKETS));
        setup.observe(0.02);
        sources.setup_latency = Some(setup);
        let quality = Arc::new(CallQuality::default());
        quality.rtp.packets_lost.store(4, Ordering::Relaxed);
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
