//! SIP message costs per call: parsing a trunk INVITE with SDP, and answering it
//! (parse, then build and print 100 Trying and 200 OK; and the same through the
//! transaction layer and the UAS dialog).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dialbridge_sip::dialog::{Dialog, LocalAddress, SessionTimerConfig};
use dialbridge_sip::message::{self, fields};
use dialbridge_sip::rsip::{self, SipMessage};
use dialbridge_sip::transaction::{Event, LayerConfig, PeerAddr, TransactionLayer, TransportKind};

/// A realistic trunk INVITE with SDP (fixtures/sip/valid/trunk-invite.sip).
const TRUNK_INVITE: &[u8] = include_bytes!("../../fixtures/sip/valid/trunk-invite.sip");
/// The same call as the Microsoft PSTN sends it: long headers, SRTP and ICE in the SDP.
const MS_INVITE: &[u8] = include_bytes!("../../fixtures/sip/valid/microsoft-pstn-invite.sip");
/// Compact names, the slow (copying) normalisation path.
const COMPACT_INVITE: &[u8] = include_bytes!("../../fixtures/sip/valid/sbc-compact-invite.sip");

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("sip/parse");
    for (name, bytes) in [
        ("trunk_invite", TRUNK_INVITE),
        ("ms_pstn_invite", MS_INVITE),
        ("compact_invite", COMPACT_INVITE),
    ] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| message::parse(black_box(bytes)).unwrap())
        });
    }
    group.bench_function("normalize_trunk_invite", |b| {
        b.iter(|| message::normalize(black_box(TRUNK_INVITE)).unwrap().len())
    });
    group.finish();
}

fn answer(c: &mut Criterion) {
    let mut group = c.benchmark_group("sip/answer");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(2048);
    group.bench_function("trunk_invite_100_200", |b| {
        b.iter(|| {
            let SipMessage::Request(mut req) = message::parse(black_box(TRUNK_INVITE)).unwrap()
            else {
                unreachable!("fixture is a request")
            };
            fields::set_received_rport(&mut req, "127.0.0.20:5060".parse().unwrap());
            out.clear();
            let trying = fields::response_for(&req, 100, None, None);
            message::encode_into(&trying.into(), &mut out);
            let ok = fields::response_for(&req, 200, None, Some("db-4f2a9c"));
            message::encode_into(&ok.into(), &mut out);
            black_box(out.len())
        })
    });
    // The whole path a new call takes through the stack: parse, the transaction layer
    // (a new INVITE server transaction, its 100 Trying), the UAS dialog's 200 OK with
    // our tag and Contact, and both responses encoded for the wire. Each iteration is a
    // new call (its own branch and Call-ID), so the layer's table grows as under load.
    let mut layer: TransactionLayer<PeerAddr> = TransactionLayer::new(LayerConfig::default());
    let peer = PeerAddr {
        transport: TransportKind::Udp,
        addr: "127.0.0.20:5060".parse().unwrap(),
        connection: None,
    };
    let local = LocalAddress::new(
        "dialbridge",
        "127.0.0.1:5060".parse().unwrap(),
        rsip::Transport::Udp,
    );
    let timers = SessionTimerConfig::default();
    let text = String::from_utf8_lossy(TRUNK_INVITE).to_string();
    // Time is virtual: each call arrives 1 ms after the previous one, so transactions
    // expire (Timer L, the 2xx give-up) as they would at 1,000 calls/s and the table
    // stays at its steady size (about 32,000) instead of filling up.
    let base = std::time::Instant::now();
    let mut n = 0u64;
    group.bench_function("trunk_invite_through_transaction_layer", |b| {
        b.iter(|| {
            n += 1;
            let now = base + std::time::Duration::from_millis(n);
            layer.handle_timeout(now);
            while layer.poll_event().is_some() {}
            while layer.poll_transmit().is_some() {}
            let bytes = text
                .replacen("z9hG4bK", &format!("z9hG4bK{n}x"), 1)
                .replacen("Call-ID: ", &format!("Call-ID: {n}-"), 1);
            let SipMessage::Request(req) = message::parse(black_box(bytes.as_bytes())).unwrap()
            else {
                unreachable!("fixture is a request")
            };
            layer.handle_request(req, peer, now);
            let Some(Event::NewRequest { key, request, .. }) = layer.poll_event() else {
                unreachable!("a new INVITE is handed up")
            };
            let mut dialog = Dialog::new_uas(&request, local.clone(), &timers, now).unwrap();
            let ok = dialog.make_response(&request, 200, now);
            layer.respond(&key, ok, now).unwrap();
            out.clear();
            while let Some(t) = layer.poll_transmit() {
                message::encode_into(&t.message, &mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, parse, answer);
criterion_main!(benches);
