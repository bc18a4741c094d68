//! SIP message costs per call: parsing a trunk INVITE with SDP, and answering it
//! (parse, then build and print 100 Trying and 200 OK).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dialbridge_sip::message::{self, fields};
use dialbridge_sip::rsip::SipMessage;

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
    group.finish();
}

criterion_group!(benches, parse, answer);
criterion_main!(benches);
