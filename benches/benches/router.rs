//! The call router's hot path with a million numbers loaded: normalising the Request-URI,
//! deciding, and dropping the grant (target: under 1 µs). The setup also prints the
//! memory the plan and the router take for those numbers (resident set, /proc/self/statm).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use dialbridge_router::{
    BridgeSpec, Charge, E164, Licence, NumberKind, NumberSpec, Numbering, Plan, Router, TrunkSpec,
};

const NUMBERS: u64 = 1_000_000;
const BRIDGES: u64 = 100;
/// First number: +33 1 70 00 00 00, then every third (spread over the table).
const BASE: u64 = 33_170_000_000;

fn number(i: u64) -> E164 {
    E164::from_u64(BASE + 3 * i).unwrap_or_else(|e| unreachable!("{e}"))
}

/// Resident set size in bytes (Linux), 0 elsewhere.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A million Telco A service numbers on 100 bridges of 10 tenants.
fn plan() -> Plan {
    let mut p = Plan::new(Numbering::new("33").unwrap_or_else(|e| unreachable!("{e}")));
    let address: IpAddr = [127, 0, 0, 20].into();
    p.add_trunk(TrunkSpec {
        name: "telco-a",
        provider: "Telco A",
        addresses: &[address],
        max_sessions: 100_000,
    })
    .unwrap_or_else(|e| unreachable!("{e}"));
    let tenants: Vec<String> = (0..10).map(|t| format!("tenant-{t}")).collect();
    for t in &tenants {
        p.add_tenant(t, Licence::OperatorConnectConferencing)
            .unwrap_or_else(|e| unreachable!("{e}"));
    }
    let bridges: Vec<String> = (0..BRIDGES).map(|b| format!("bridge-{b}")).collect();
    for (i, b) in bridges.iter().enumerate() {
        p.add_bridge(BridgeSpec {
            name: b,
            tenant: &tenants[i % tenants.len()],
            capacity: 10_000,
            enabled: true,
        })
        .unwrap_or_else(|e| unreachable!("{e}"));
    }
    p.reserve_numbers(NUMBERS as usize);
    for i in 0..NUMBERS {
        p.add_number(NumberSpec {
            number: number(i),
            kind: NumberKind::Service,
            charge: Charge::Toll,
            provider: "Telco A",
            bridge: Some(&bridges[(i % BRIDGES) as usize]),
            capacity: None,
        })
        .unwrap_or_else(|e| unreachable!("{e}"));
    }
    p
}

fn routing(c: &mut Criterion) {
    let before = rss();
    let plan = plan();
    let with_plan = rss();
    let router = Router::new(plan);
    let with_router = rss();
    eprintln!(
        "router: {NUMBERS} numbers: plan {:.1} MiB ({:.0} B/number); router after the plan is dropped {:.1} MiB ({:.0} B/number)",
        mib(with_plan - before),
        (with_plan - before) as f64 / NUMBERS as f64,
        mib(with_router.saturating_sub(before)),
        with_router.saturating_sub(before) as f64 / NUMBERS as f64,
    );
    let trunk = router
        .identify_trunk([127, 0, 0, 20].into())
        .unwrap_or_else(|| unreachable!());
    // Request-URIs as an SBC sends them, spread over the whole plan.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let uris: Vec<String> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("sip:{}@127.0.0.1:5060;user=phone", number(x % NUMBERS))
        })
        .collect();
    let numbers: Vec<E164> = uris
        .iter()
        .map(|u| router.normalise(u).unwrap_or_else(|e| unreachable!("{e}")))
        .collect();

    let mut i = 0;
    c.bench_function("router/normalise_decide_drop_1M_numbers", |b| {
        b.iter(|| {
            let uri = &uris[i % uris.len()];
            i += 1;
            let grant = router.route(trunk, black_box(uri));
            black_box(&grant);
        })
    });
    let mut i = 0;
    c.bench_function("router/normalise", |b| {
        b.iter(|| {
            let uri = &uris[i % uris.len()];
            i += 1;
            black_box(router.normalise(black_box(uri)))
        })
    });
    let mut i = 0;
    c.bench_function("router/decide_drop_1M_numbers", |b| {
        b.iter(|| {
            let n = numbers[i % numbers.len()];
            i += 1;
            black_box(router.decide(trunk, black_box(n)))
        })
    });
    let unknown = E164::from_u64(BASE + 1).unwrap_or_else(|e| unreachable!("{e}"));
    c.bench_function("router/decide_unknown_number_404", |b| {
        b.iter(|| black_box(router.decide(trunk, black_box(unknown))))
    });
}

criterion_group!(benches, routing);
criterion_main!(benches);
