//! 100,000 randomized call lifecycles, calls in and dial-outs mixed, with every kind of
//! ending — dropped at once, in a task, after a plan swap, after the number moved or was
//! released, in a panicking thread — and every counter is back at zero at the end (and
//! matches the calls held on the way).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::panic::{self, AssertUnwindSafe};

use dialbridge_router::{
    BridgeSpec, Charge, DialOutGrant, E164, Grant, Licence, NumberKind, NumberSpec, Numbering,
    Plan, Router, TrunkId, TrunkSpec,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NUMBERS: u64 = 60;
const LIFECYCLES: u64 = 100_000;
const PANIC_TEXT: &str = "simulated call task failure";

fn number(i: u64) -> E164 {
    E164::from_u64(14255550000 + i).unwrap()
}

fn provider(i: u64) -> &'static str {
    ["Microsoft", "Telco A", "Telco B"][(i % 3) as usize]
}

/// Variant 0 and 1 differ in capacities, assignments, a removed trunk, bridge and numbers.
fn plan(variant: u64) -> Plan {
    let mut p = Plan::new(Numbering::new("1").unwrap());
    let trunks = [
        ("ms", "Microsoft", "10.0.0.1", 50),
        ("telco-a", "Telco A", "10.0.0.2", 30),
        ("telco-b", "Telco B", "10.0.0.3", 30),
    ];
    for (i, (name, provider, address, max)) in trunks.into_iter().enumerate() {
        if variant == 1 && i == 2 {
            continue;
        }
        p.add_trunk(TrunkSpec {
            name,
            provider,
            addresses: &[address.parse::<IpAddr>().unwrap()],
            max_sessions: max - 10 * variant as u32,
        })
        .unwrap();
        // Variant 1 sends telco-a's dial-outs elsewhere.
        let port = 5080 + variant as u16 * (i == 1) as u16;
        p.set_trunk_outbound(name, format!("{address}:{port}").parse().unwrap())
            .unwrap();
    }
    p.set_softphones("softphones", 20).unwrap();
    p.add_tenant("std", Licence::AudioConferencingStandard)
        .unwrap();
    p.add_tenant("oc", Licence::OperatorConnectConferencing)
        .unwrap();
    for (name, tenant, capacity) in [("b0", "std", 60), ("b1", "std", 40), ("b2", "oc", 50)] {
        if variant == 1 && name == "b1" {
            continue;
        }
        p.add_bridge(BridgeSpec {
            name,
            tenant,
            capacity: capacity / (1 + variant as u32),
            enabled: !(variant == 1 && name == "b2"),
        })
        .unwrap();
    }
    for i in 0..NUMBERS {
        if variant == 1 && i % 7 == 3 {
            continue;
        }
        let microsoft = i % 3 == 0;
        let bridge = match (i + variant) % 10 {
            9 => None,
            k if microsoft || k % 3 != 2 => Some(if k % 2 == 0 || variant == 1 {
                "b0"
            } else {
                "b1"
            }),
            _ => Some("b2"),
        };
        p.add_number(NumberSpec {
            number: number(i),
            kind: if i % 4 == 0 {
                NumberKind::User
            } else {
                NumberKind::Service
            },
            charge: if i % 5 == 0 {
                Charge::TollFree
            } else {
                Charge::Toll
            },
            provider: provider(i),
            bridge,
            capacity: Some(1 + ((i + variant) % 6) as u32),
        })
        .unwrap();
    }
    p
}

/// A call in or a dial-out, holding its reservation.
enum Held {
    In(Grant),
    Out(DialOutGrant),
}

impl Held {
    fn number(&self) -> Option<E164> {
        match self {
            Held::In(g) => Some(g.number()),
            Held::Out(_) => None,
        }
    }

    fn bridge(&self) -> &str {
        match self {
            Held::In(g) => g.bridge(),
            Held::Out(g) => g.bridge(),
        }
    }

    fn trunk_name(&self) -> &str {
        match self {
            Held::In(g) => g.trunk_name(),
            Held::Out(g) => g.trunk_name(),
        }
    }
}

/// Calls held per number, bridge and trunk, from the grants themselves.
fn held(
    grants: &[Held],
) -> (
    HashMap<E164, u32>,
    HashMap<String, u32>,
    HashMap<String, u32>,
) {
    let (mut n, mut b, mut t) = (HashMap::new(), HashMap::new(), HashMap::new());
    for g in grants {
        if let Some(number) = g.number() {
            *n.entry(number).or_default() += 1;
        }
        *b.entry(g.bridge().to_owned()).or_default() += 1;
        *t.entry(g.trunk_name().to_owned()).or_default() += 1;
    }
    (n, b, t)
}

fn assert_counters_match(router: &Router, grants: &[Held]) {
    let (numbers, bridges, trunks) = held(grants);
    for i in 0..NUMBERS + 1 {
        let want = numbers.get(&number(i)).copied().unwrap_or(0);
        let got = router.number_stats(number(i)).map_or(0, |s| s.in_progress);
        assert_eq!(got, want, "number {}", number(i));
    }
    let s = router.snapshot();
    for b in &s.bridges {
        assert_eq!(
            b.in_progress,
            bridges.get(&*b.name).copied().unwrap_or(0),
            "bridge {}",
            b.name
        );
    }
    for t in &s.trunks {
        assert_eq!(
            t.in_progress,
            trunks.get(&*t.name).copied().unwrap_or(0),
            "trunk {}",
            t.name
        );
    }
}

#[test]
fn every_kind_of_ending_releases_exactly_once() {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let expected = info.payload().downcast_ref::<&str>() == Some(&PANIC_TEXT);
        if !expected {
            default_hook(info);
        }
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(0x00d1_a1b7_1d6e);
    let router = Router::new(plan(0));
    let mut variant = 0;
    let trunk_ids: Vec<TrunkId> = ["ms", "telco-a", "telco-b", "softphones"]
        .iter()
        .map(|n| router.trunk_by_name(n).unwrap())
        .collect();
    let mut grants: Vec<Held> = Vec::new();
    let mut tasks = Vec::new();
    let mut ended = 0u64;
    let mut endings = [0u64; 6];
    let mut refused = 0u64;
    let mut dial_outs = 0u64;
    while ended < LIFECYCLES {
        let target = rng.random_range(0..120usize);
        if grants.len() < target {
            let trunk = trunk_ids[rng.random_range(0..trunk_ids.len())];
            // One in four is a dial-out: from any bridge (b1 and b2 come and go with the
            // variant; b2's Operator Connect licence refuses the Microsoft trunk), over
            // any trunk (the softphones take none).
            if rng.random_bool(0.25) {
                let bridge = ["b0", "b1", "b2"][rng.random_range(0..3usize)];
                match router.reserve_dial_out(bridge, trunk) {
                    Ok(g) => {
                        dial_outs += 1;
                        grants.push(Held::Out(g));
                    }
                    Err(_) => refused += 1,
                }
                continue;
            }
            // One in NUMBERS + 1 is a number no plan has.
            let n = number(rng.random_range(0..NUMBERS + 1));
            match router.decide(trunk, n) {
                Ok(g) => grants.push(Held::In(g)),
                Err(_) => refused += 1,
            }
            continue;
        }
        let Some(grant) =
            (!grants.is_empty()).then(|| grants.swap_remove(rng.random_range(0..grants.len())))
        else {
            continue;
        };
        let kind = rng.random_range(0..6usize);
        endings[kind] += 1;
        ended += 1;
        match kind {
            // BYE, CANCEL, failed answer: dropped where it is.
            0 => drop(grant),
            // Dropped by the call's task, later, on another thread.
            1 => tasks.push(runtime.spawn(async move {
                tokio::task::yield_now().await;
                drop(grant);
            })),
            // A reload in between.
            2 => {
                variant = 1 - variant;
                router.replace_plan(plan(variant));
                drop(grant);
            }
            // The number moved meanwhile (refused moves are fine: the licence may forbid it);
            // for a dial-out, its trunk shrank (unless a swap took it away).
            3 => {
                let to = ["b0", "b1", "b2"][rng.random_range(0..3usize)];
                match grant.number() {
                    Some(n) => router.assign_number(n, to).map_or((), |_| ()),
                    None => router
                        .set_trunk_capacity(grant.trunk_name(), 5)
                        .map_or((), |_| ()),
                }
                drop(grant);
            }
            // The number was given back meanwhile (the next reload brings it back); for a
            // dial-out, its bridge shrank below the calls it holds.
            4 => {
                match grant.number() {
                    Some(n) => router.release_number(n).map_or((), |_| ()),
                    None => router
                        .set_bridge_capacity(grant.bridge(), 3)
                        .map_or((), |_| ()),
                }
                drop(grant);
            }
            // The call's thread panics while holding the grant.
            _ => {
                if rng.random_bool(0.5) {
                    let result = std::thread::spawn(move || {
                        let _held = grant;
                        panic::panic_any(PANIC_TEXT);
                    })
                    .join();
                    assert!(result.is_err());
                } else {
                    let result = panic::catch_unwind(AssertUnwindSafe(move || {
                        let _held = grant;
                        panic::panic_any(PANIC_TEXT);
                    }));
                    assert!(result.is_err());
                }
            }
        }
        if ended.is_multiple_of(5_000) {
            runtime.block_on(async {
                for t in tasks.drain(..) {
                    t.await.unwrap();
                }
            });
            assert_counters_match(&router, &grants);
        }
    }
    // Calls still up at the end are hung up together (a shutdown).
    let still_up = grants.len() as u64;
    drop(grants);
    runtime.block_on(async {
        for t in tasks.drain(..) {
            t.await.unwrap();
        }
    });
    assert_counters_match(&router, &[]);
    let s = router.snapshot();
    assert!(
        s.trunks
            .iter()
            .chain(&s.bridges)
            .all(|r| r.in_progress == 0)
    );
    assert!(s.numbers.iter().all(|n| n.in_progress == 0));
    assert_eq!(s.admitted, LIFECYCLES + still_up);
    assert_eq!(s.rejected.total(), refused);
    assert!(endings.iter().all(|e| *e > 10_000), "{endings:?}");
    assert!(refused > 0);
    assert!(dial_outs > 10_000, "{dial_outs}");
}
