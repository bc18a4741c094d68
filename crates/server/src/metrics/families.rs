//! The families of `/metrics`, in the order they are exposed: [`MetricsSources`] as a
//! `prometheus-client` collector, which reads every source at scrape time and leaves
//! the format (escaping, `_total` and `_bucket` suffixes, number formatting) to the
//! crate. Counter names are given without `_total`: the encoder appends it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use dialbridge_media::{EngineStats, ShardStats};
use dialbridge_router::{RejectReason, Snapshot};
use dialbridge_sip::transport::Transports;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric, MetricEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::{
    AuthCounters, CallQuality, DtmfFailure, MetricsSources, MoneySource, RtpCounters, SipCounters,
};
use crate::trunk_health::TrunkHealthView;

impl Collector for MetricsSources {
    fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
        let out = &mut out;
        gauge(
            out,
            "dialbridge_calls_in_progress",
            "Calls the bridge holds right now.",
            self.calls.calls.load(Ordering::Relaxed),
        )?;
        gauge(
            out,
            "dialbridge_meetings_in_progress",
            "Meetings with someone in them.",
            self.calls.meetings.load(Ordering::Relaxed),
        )?;
        gauge(
            out,
            "dialbridge_meeting_participants",
            "Calls admitted to a meeting's mix (lobbies not counted).",
            self.calls.participants.load(Ordering::Relaxed),
        )?;
        write_router(out, &self.router.snapshot())?;
        if let Some(board) = &self.trunk_health {
            write_trunk_health(out, &board.current())?;
        }
        write_sip(out, &self.sip)?;
        if let Some(t) = &self.transports {
            write_transports(out, t)?;
        }
        if let Some(h) = &self.setup_latency {
            metric(
                out,
                "dialbridge_call_setup_seconds",
                "Time from INVITE received to 200 OK sent.",
                h.as_ref(),
            )?;
        }
        if let Some(media) = &self.media {
            write_engine(out, &media.stats())?;
            write_shards(out, &media.shard_stats())?;
        }
        if let Some(rtp) = &self.rtp {
            write_rtp(out, rtp)?;
        }
        if let Some(q) = &self.call_quality {
            write_call_quality(out, q)?;
        }
        if let Some(failures) = &self.dtmf_failures {
            let mut family = out.encode_descriptor(
                "dialbridge_dtmf_failures",
                "Failed DTMF entries in the entry IVR, by reason.",
                None,
                MetricType::Counter,
            )?;
            for reason in DtmfFailure::ALL {
                let n = ConstCounter::new(failures.get(reason));
                series(&mut family, &[("reason", reason.as_str())], &n)?;
            }
        }
        if let Some(auth) = &self.auth {
            write_auth(out, auth)?;
        }
        if let Some(dial_outs) = &self.dial_outs {
            write_dial_outs(out, dial_outs)?;
        }
        if let Some(money) = &self.money {
            write_money(out, money)?;
        }
        if let Some(shared) = &self.shared {
            gauge(
                out,
                "dialbridge_shared_capacity_ready",
                "1 while Redis answers this node's heartbeat and takes reservations (0: new calls are refused with 503).",
                u64::from(shared.is_ready()),
            )?;
            let mut family = out.encode_descriptor(
                "dialbridge_shared_capacity_refusals",
                "New calls this node admitted but the capacity shared with other nodes refused (a limit reached on all nodes together, or Redis unavailable).",
                None,
                MetricType::Counter,
            )?;
            for (limit, n) in shared.refusals().counts() {
                series(&mut family, &[("limit", limit)], &ConstCounter::new(n))?;
            }
        }
        Ok(())
    }
}

/// Calls refused or ended for money, and the ledger's open reservations.
fn write_money(out: &mut DescriptorEncoder<'_>, money: &MoneySource) -> fmt::Result {
    let mut family = out.encode_descriptor(
        "dialbridge_money_refusals",
        "Calls refused before their answer, or ended in progress, because nothing would pay for them, by reason.",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in money.refusals.counts() {
        series(&mut family, &[("reason", reason)], &ConstCounter::new(n))?;
    }
    if let Some(ledger) = &money.ledger {
        gauge(
            out,
            "dialbridge_ledger_open_reservations",
            "Increments reserved ahead by calls in progress and not yet settled or refunded.",
            ledger.open_reservations(),
        )?;
    }
    Ok(())
}

/// Softphone digest authentication.
fn write_auth(out: &mut DescriptorEncoder<'_>, auth: &AuthCounters) -> fmt::Result {
    counter(
        out,
        "dialbridge_sip_auth_successes",
        "Softphone requests whose digest credentials were accepted.",
        auth.authenticated.get(),
    )?;
    // (name, help, label, (label value, count) of each series)
    type Family<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, u64)>);
    let families: [Family<'_>; 3] = [
        (
            "dialbridge_sip_auth_failures",
            "Failed softphone authentication attempts, by reason (each counts towards a lock-out).",
            "reason",
            auth.failures().collect(),
        ),
        (
            "dialbridge_sip_auth_stale",
            "Right credentials with a nonce refused (challenged again with stale=true), by reason.",
            "reason",
            auth.stales().to_vec(),
        ),
        (
            "dialbridge_sip_auth_lockouts",
            "Lock-outs started after too many failed attempts, per source address or per user.",
            "scope",
            auth.lockouts().to_vec(),
        ),
    ];
    for (name, help, label, values) in families {
        let mut family = out.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (value, n) in values {
            series(&mut family, &[(label, value)], &ConstCounter::new(n))?;
        }
    }
    counter(
        out,
        "dialbridge_sip_auth_locked_out",
        "Softphone requests refused (403, no challenge) during a lock-out.",
        auth.refused_locked.get(),
    )
}

/// The media engine's clock and tables.
fn write_engine(out: &mut DescriptorEncoder<'_>, s: &EngineStats) -> fmt::Result {
    // The engine keeps a fine-bucketed histogram of its own (50 µs steps) and gives out
    // its quantiles, not its buckets, nor a sum: the series of a summary without
    // `_sum`. prometheus-client has no summary type, so they are written as gauges —
    // the quantiles a family with the `quantile` label, the count one of its own — and
    // keep a summary's series names and labels.
    let lateness = &s.tick_lateness;
    let mut quantiles = out.encode_descriptor(
        "dialbridge_mixer_tick_lateness_seconds",
        "How late mixer ticks started against their 20 ms schedule, since start \
         (quantiles are bucket upper bounds, 50 us resolution).",
        None,
        MetricType::Gauge,
    )?;
    for (quantile, value) in [("0.5", lateness.p50), ("0.99", lateness.p99)] {
        let value = ConstGauge::new(value.as_secs_f64());
        series(&mut quantiles, &[("quantile", quantile)], &value)?;
    }
    gauge(
        out,
        "dialbridge_mixer_tick_lateness_seconds_count",
        "Mixer ticks measured for dialbridge_mixer_tick_lateness_seconds, since start.",
        lateness.count,
    )?;
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
        gauge(out, name, help, value.as_secs_f64())?;
    }
    for (name, help, value) in [
        ("dialbridge_mixer_ticks", "Mixer ticks run.", s.ticks),
        (
            "dialbridge_mixer_ticks_skipped",
            "Mixer ticks given up because the clock fell too far behind.",
            s.ticks_skipped,
        ),
        (
            "dialbridge_rtp_receive_queue_overflows",
            "RTP packets dropped because a call's inbound queue was full.",
            s.receive_queue_overflows,
        ),
        (
            "dialbridge_rtp_latched",
            "Times a call's media target moved to where its RTP came from (symmetric RTP \
             latching, or a new port on the SDP address).",
            s.rtp_latched,
        ),
        (
            "dialbridge_rtp_latch_refused",
            "RTP packets refused for their source: not the caller's, and not allowed to \
             latch (also in dialbridge_rtp_receive_dropped_total).",
            s.rtp_latch_refused,
        ),
    ] {
        counter(out, name, help, value)?;
    }
    gauge(
        out,
        "dialbridge_media_sessions",
        "RTP sessions open.",
        s.sessions,
    )?;
    gauge(out, "dialbridge_media_rooms", "Mixing rooms open.", s.rooms)?;
    gauge(
        out,
        "dialbridge_rtp_ports_in_use",
        "RTP/RTCP port pairs bound (IPv4 and IPv6).",
        s.ports_in_use,
    )
}

/// A per-shard family: name, help, type and the value it reads.
type ShardFamily = (
    &'static str,
    &'static str,
    MetricType,
    fn(&ShardStats) -> u64,
);

/// Each media shard's load (label `shard`): how evenly rooms spread over the cores.
fn write_shards(out: &mut DescriptorEncoder<'_>, shards: &[ShardStats]) -> fmt::Result {
    let families: [ShardFamily; 4] = [
        (
            "dialbridge_media_shard_sessions",
            "RTP sessions living in a media shard (its rooms' members, and sessions given \
             to it outside a room).",
            MetricType::Gauge,
            |s| u64::try_from(s.sessions).unwrap_or(u64::MAX),
        ),
        (
            "dialbridge_media_shard_rooms",
            "Rooms a media shard mixes.",
            MetricType::Gauge,
            |s| u64::try_from(s.rooms).unwrap_or(u64::MAX),
        ),
        (
            "dialbridge_media_shard_received",
            "Datagrams (RTP and RTCP) a media shard's receive thread read.",
            MetricType::Counter,
            |s| s.received,
        ),
        (
            "dialbridge_media_shard_ticks",
            "Mixer ticks a media shard's clock ran.",
            MetricType::Counter,
            |s| s.ticks,
        ),
    ];
    for (name, help, kind, value) in families {
        let mut family = out.encode_descriptor(name, help, None, kind)?;
        for (index, shard) in shards.iter().enumerate() {
            let index = index.to_string();
            let labels = [("shard", index.as_str())];
            match kind {
                MetricType::Counter => {
                    series(&mut family, &labels, &ConstCounter::new(value(shard)))?;
                }
                _ => series(&mut family, &labels, &ConstGauge::new(value(shard)))?,
            }
        }
    }
    Ok(())
}

/// The calls' reception quality: jitter over time, and the worst call right now.
fn write_call_quality(out: &mut DescriptorEncoder<'_>, q: &CallQuality) -> fmt::Result {
    metric(
        out,
        "dialbridge_rtp_jitter_seconds",
        "Interarrival jitter (RFC 3550) of each call's inbound RTP, sampled once a second per call.",
        q.jitter.as_ref(),
    )?;
    let (calls, loss, jitter_ms) = q.worst();
    gauge(
        out,
        "dialbridge_rtp_calls_measured",
        "Calls in progress with published RTP quality figures.",
        calls,
    )?;
    gauge(
        out,
        "dialbridge_rtp_jitter_max_seconds",
        "The highest interarrival jitter of the calls in progress.",
        jitter_ms / 1000.0,
    )?;
    gauge(
        out,
        "dialbridge_rtp_loss_ratio_max",
        "The highest inbound loss fraction (last RTCP interval) of the calls in progress.",
        loss,
    )
}

/// The router's families: totals, and per trunk, bridge and busy number.
fn write_router(out: &mut DescriptorEncoder<'_>, snap: &Snapshot) -> fmt::Result {
    counter(
        out,
        "dialbridge_router_admitted",
        "Calls the router admitted.",
        snap.admitted,
    )?;
    let mut refused = out.encode_descriptor(
        "dialbridge_router_refused",
        "Calls the router refused, by reason.",
        None,
        MetricType::Counter,
    )?;
    // Every reason, zeros included, so a rate() over the family always has its series.
    for reason in RejectReason::ALL {
        let n = ConstCounter::new(snap.rejected.get(reason));
        series(&mut refused, &[("reason", reason.as_str())], &n)?;
    }
    for (kind, list) in [("trunk", &snap.trunks), ("bridge", &snap.bridges)] {
        let name = format!("dialbridge_{kind}_calls_in_progress");
        let help = format!("Calls in progress per {kind}.");
        let mut family = out.encode_descriptor(&name, &help, None, MetricType::Gauge)?;
        for r in list {
            let n = ConstGauge::new(r.in_progress);
            series(&mut family, &[(kind, &*r.name)], &n)?;
        }
        let name = format!("dialbridge_{kind}_capacity");
        let help = format!("Call capacity per {kind}.");
        let mut family = out.encode_descriptor(&name, &help, None, MetricType::Gauge)?;
        for r in list {
            if let Some(c) = r.capacity {
                series(&mut family, &[(kind, &*r.name)], &ConstGauge::new(c))?;
            }
        }
        let name = format!("dialbridge_{kind}_admitted");
        let help = format!("Calls admitted per {kind}.");
        let mut family = out.encode_descriptor(&name, &help, None, MetricType::Counter)?;
        for r in list {
            let n = ConstCounter::new(r.admitted);
            series(&mut family, &[(kind, &*r.name)], &n)?;
        }
        let name = format!("dialbridge_{kind}_refused");
        let help = format!("Calls refused per {kind} and reason.");
        let mut family = out.encode_descriptor(&name, &help, None, MetricType::Counter)?;
        for r in list {
            for (reason, n) in r.rejected.iter() {
                let labels = [(kind, &*r.name), ("reason", reason.as_str())];
                series(&mut family, &labels, &ConstCounter::new(n))?;
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
    let mut family = out.encode_descriptor(
        "dialbridge_number_calls_in_progress",
        "Calls in progress per number (numbers with calls or refusals).",
        None,
        MetricType::Gauge,
    )?;
    for (e164, n) in &numbers {
        let value = ConstGauge::new(n.in_progress);
        series(&mut family, &[("number", e164.as_str())], &value)?;
    }
    let mut family = out.encode_descriptor(
        "dialbridge_number_capacity",
        "Concurrent-call capacity per number (numbers with calls or refusals).",
        None,
        MetricType::Gauge,
    )?;
    for (e164, n) in &numbers {
        if let Some(c) = n.capacity {
            series(
                &mut family,
                &[("number", e164.as_str())],
                &ConstGauge::new(c),
            )?;
        }
    }
    let mut family = out.encode_descriptor(
        "dialbridge_number_refused",
        "Calls refused per number and reason.",
        None,
        MetricType::Counter,
    )?;
    for (e164, n) in &numbers {
        for (reason, count) in n.rejected.iter() {
            let labels = [("number", e164.as_str()), ("reason", reason.as_str())];
            series(&mut family, &labels, &ConstCounter::new(count))?;
        }
    }
    Ok(())
}

/// The trunks' health, per trunk with an outbound target.
fn write_trunk_health(out: &mut DescriptorEncoder<'_>, trunks: &[TrunkHealthView]) -> fmt::Result {
    let mut family = out.encode_descriptor(
        "dialbridge_trunk_up",
        "Whether the trunk's outbound target is up (1: answering, or not probed yet; 0: down, dial-outs skip it).",
        None,
        MetricType::Gauge,
    )?;
    for t in trunks {
        let up = ConstGauge::new(i64::from(t.state.is_up()));
        series(&mut family, &[("trunk", &*t.name)], &up)?;
    }
    let sent = "OPTIONS sent to the trunk's outbound target.";
    let failed = "OPTIONS to the trunk's outbound target that failed (no answer in time, 408, \
        5xx but 501, 6xx).";
    for (name, help, failures) in [
        ("dialbridge_trunk_options_sent", sent, false),
        ("dialbridge_trunk_options_failed", failed, true),
    ] {
        let mut family = out.encode_descriptor(name, help, None, MetricType::Counter)?;
        for t in trunks {
            let n = if failures {
                t.options_failed
            } else {
                t.options_sent
            };
            series(&mut family, &[("trunk", &*t.name)], &ConstCounter::new(n))?;
        }
    }
    Ok(())
}

fn write_sip(out: &mut DescriptorEncoder<'_>, sip: &SipCounters) -> fmt::Result {
    gauge(
        out,
        "dialbridge_sip_transactions",
        "SIP transactions alive (server and client).",
        load(&sip.transactions),
    )?;
    for (name, help, value) in [
        (
            "dialbridge_sip_stray_acks",
            "ACKs matching no transaction and no 2xx awaiting its ACK.",
            &sip.stray_acks,
        ),
        (
            "dialbridge_sip_stray_responses",
            "Responses matching no client transaction.",
            &sip.stray_responses,
        ),
        (
            "dialbridge_sip_malformed",
            "Messages with no usable Via, branch or CSeq.",
            &sip.malformed,
        ),
        (
            "dialbridge_sip_overloaded",
            "Requests refused because too many transactions were alive.",
            &sip.overloaded,
        ),
        (
            "dialbridge_sip_calls_shed",
            "New calls answered 503 before any work: past the call rate, or the \
             signaling task behind.",
            &sip.shed,
        ),
        (
            "dialbridge_sip_retransmissions_absorbed",
            "Request retransmissions absorbed by a server transaction.",
            &sip.retransmissions_absorbed,
        ),
    ] {
        counter(out, name, help, load(value))?;
    }
    Ok(())
}

fn write_transports(out: &mut DescriptorEncoder<'_>, transports: &Transports) -> fmt::Result {
    let s = transports.stats();
    for (name, help, value) in [
        (
            "dialbridge_transport_datagrams_dropped",
            "Datagrams dropped (inbound queue full).",
            &s.datagrams_dropped,
        ),
        (
            "dialbridge_transport_oversized_refused",
            "Messages refused for being too large.",
            &s.oversized_refused,
        ),
        (
            "dialbridge_transport_connections_accepted",
            "Stream (TCP, TLS) connections accepted.",
            &s.connections_accepted,
        ),
        (
            "dialbridge_transport_connections_refused",
            "Stream connections closed at accept (limit reached, TLS failed).",
            &s.connections_refused,
        ),
        (
            "dialbridge_transport_send_failures",
            "Messages that could not be sent.",
            &s.send_failures,
        ),
    ] {
        counter(out, name, help, load(value))?;
    }
    Ok(())
}

fn write_rtp(out: &mut DescriptorEncoder<'_>, rtp: &RtpCounters) -> fmt::Result {
    for (name, help, value) in [
        (
            "dialbridge_rtp_packets_sent",
            "RTP packets sent.",
            &rtp.packets_sent,
        ),
        (
            "dialbridge_rtp_packets_received",
            "RTP packets received.",
            &rtp.packets_received,
        ),
        (
            "dialbridge_rtp_packets_lost",
            "RTP packets lost on the way in (sequence gaps).",
            &rtp.packets_lost,
        ),
        (
            "dialbridge_rtp_send_dropped",
            "RTP packets not sent (socket buffer full or send failed).",
            &rtp.send_dropped,
        ),
        (
            "dialbridge_rtp_receive_dropped",
            "RTP packets dropped on receipt (malformed, foreign source, queue full).",
            &rtp.receive_dropped,
        ),
    ] {
        metric(out, name, help, value)?;
    }
    Ok(())
}

/// One family of a single unlabelled metric.
fn metric(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(out.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A counter read at scrape time (`name` without `_total`).
fn counter(out: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    metric(out, name, help, &ConstCounter::new(value))
}

/// A gauge read at scrape time.
fn gauge(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    metric(out, name, help, &ConstGauge::new(value))
}

/// One labelled series of a family opened with `encode_descriptor`.
fn series(
    family: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(family.encode_family(labels)?)
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The meetings' dial-outs: in progress now, refused before any INVITE, and how the
/// placed ones ended.
fn write_dial_outs(out: &mut DescriptorEncoder, d: &crate::dial_out::DialOuts) -> fmt::Result {
    let (refused, placed, finished) = d.totals();
    gauge(
        out,
        "dialbridge_dial_outs_in_progress",
        "Dial-outs placed and not over (calling, ringing, answered or joined).",
        d.in_progress(),
    )?;
    counter(
        out,
        "dialbridge_dial_outs_refused",
        "Dial-outs refused before any INVITE (no route, no trunk up, not funded...).",
        refused,
    )?;
    counter(
        out,
        "dialbridge_dial_outs_placed",
        "Dial-outs placed on a trunk.",
        placed,
    )?;
    let mut family = out.encode_descriptor(
        "dialbridge_dial_outs_ended",
        "Dial-outs over, by how they ended.",
        None,
        MetricType::Counter,
    )?;
    for (state, n) in finished {
        series(
            &mut family,
            &[("state", state.as_str())],
            &ConstCounter::new(n),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use dialbridge_router::{NumberStats, ReasonCounts, ResourceStats};
    use prometheus_client::encoding::prometheus_text;
    use prometheus_client::registry::Registry;

    /// The text of what `write` writes, alone.
    fn render_with<F>(write: F) -> String
    where
        F: Fn(&mut DescriptorEncoder<'_>) -> fmt::Result + Send + Sync + 'static,
    {
        struct Only<F>(F);
        impl<F> fmt::Debug for Only<F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("Only")
            }
        }
        impl<F> Collector for Only<F>
        where
            F: Fn(&mut DescriptorEncoder<'_>) -> fmt::Result + Send + Sync + 'static,
        {
            fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
                (self.0)(&mut out)
            }
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Only(write)));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

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
        let text = render_with(move |out| write_router(out, &snap));
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
dialbridge_router_refused_total{reason=\"no_dial_out_route\"} 0
dialbridge_router_refused_total{reason=\"unknown_bridge\"} 0
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
        assert_eq!(text, expected);
    }

    #[test]
    fn trunk_health_renders_exactly() {
        use crate::trunk_health::{HealthState, TrunkHealthView};
        let router = dialbridge_router::Router::new(
            crate::plan_from(&crate::testing::demo_config()).unwrap(),
        );
        let view = |name: &str, state, sent, failed| TrunkHealthView {
            trunk: router.trunk_by_name(name).unwrap(),
            name: name.into(),
            target: "127.0.0.10:5080".parse().unwrap(),
            state,
            consecutive_failures: 0,
            last_finding: None,
            last_finding_at: None,
            last_change_at: None,
            options_sent: sent,
            options_failed: failed,
        };
        let trunks = vec![
            view("microsoft-pstn", HealthState::Down, 9, 4),
            view("telco-a", HealthState::Unprobed, 0, 0),
        ];
        let text = render_with(move |out| write_trunk_health(out, &trunks));
        let expected = "\
# HELP dialbridge_trunk_up Whether the trunk's outbound target is up (1: answering, or not probed yet; 0: down, dial-outs skip it).
# TYPE dialbridge_trunk_up gauge
dialbridge_trunk_up{trunk=\"microsoft-pstn\"} 0
dialbridge_trunk_up{trunk=\"telco-a\"} 1
# HELP dialbridge_trunk_options_sent_total OPTIONS sent to the trunk's outbound target.
# TYPE dialbridge_trunk_options_sent_total counter
dialbridge_trunk_options_sent_total{trunk=\"microsoft-pstn\"} 9
dialbridge_trunk_options_sent_total{trunk=\"telco-a\"} 0
# HELP dialbridge_trunk_options_failed_total OPTIONS to the trunk's outbound target that failed (no answer in time, 408, 5xx but 501, 6xx).
# TYPE dialbridge_trunk_options_failed_total counter
dialbridge_trunk_options_failed_total{trunk=\"microsoft-pstn\"} 4
dialbridge_trunk_options_failed_total{trunk=\"telco-a\"} 0
";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let setup = Arc::new(crate::metrics::setup_latency_histogram());
        // Binary fractions, so the sum is exact; 0.25 sits on a bound, which counts it.
        for s in [0.003_906_25, 0.007_812_5, 0.015_625, 0.25, 8.0] {
            setup.observe(s);
        }
        let text = render_with(move |out| {
            metric(
                out,
                "x_seconds",
                "Help with \\ and\nnewline \"quoted\".",
                &*setup,
            )
        });
        assert_eq!(
            text,
            "\
# HELP x_seconds Help with \\\\ and\\nnewline \"quoted\".
# TYPE x_seconds histogram
x_seconds_bucket{le=\"0.005\"} 1
x_seconds_bucket{le=\"0.01\"} 2
x_seconds_bucket{le=\"0.025\"} 3
x_seconds_bucket{le=\"0.05\"} 3
x_seconds_bucket{le=\"0.1\"} 3
x_seconds_bucket{le=\"0.25\"} 4
x_seconds_bucket{le=\"0.5\"} 4
x_seconds_bucket{le=\"1\"} 4
x_seconds_bucket{le=\"2.5\"} 4
x_seconds_bucket{le=\"+Inf\"} 5
x_seconds_sum 8.27734375
x_seconds_count 5
"
        );
    }

    #[test]
    fn the_engine_clock_renders_a_summarys_series_as_gauges() {
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
        let text = render_with(move |out| write_engine(out, &stats));
        assert_has_lines(
            &text,
            &[
                "# TYPE dialbridge_mixer_tick_lateness_seconds gauge\n",
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
            ],
        );
    }

    fn assert_has_lines(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn each_media_shard_has_its_series() {
        let shards = [
            ShardStats {
                sessions: 7,
                rooms: 2,
                received: 1400,
                ticks: 50,
            },
            ShardStats {
                sessions: 3,
                rooms: 1,
                received: 600,
                ticks: 49,
            },
        ];
        let text = render_with(move |out| write_shards(out, &shards));
        assert_has_lines(
            &text,
            &[
                "# TYPE dialbridge_media_shard_sessions gauge\n",
                "dialbridge_media_shard_sessions{shard=\"0\"} 7\n",
                "dialbridge_media_shard_sessions{shard=\"1\"} 3\n",
                "dialbridge_media_shard_rooms{shard=\"1\"} 1\n",
                "dialbridge_media_shard_received_total{shard=\"0\"} 1400\n",
                "dialbridge_media_shard_ticks_total{shard=\"1\"} 49\n",
            ],
        );
    }
}
