//! Many threads and tasks race for one user number of capacity 2: never more than 2 in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use dialbridge_router::{
    BridgeSpec, Charge, E164, Licence, NumberKind, NumberSpec, Numbering, Plan, Router, TrunkSpec,
};

const NUMBER: u64 = 14255550123;

fn router() -> Router {
    let mut p = Plan::new(Numbering::new("1").unwrap());
    p.add_trunk(TrunkSpec {
        name: "ms",
        provider: "Microsoft",
        addresses: &["10.0.0.1".parse::<IpAddr>().unwrap()],
        max_sessions: 1000,
    })
    .unwrap();
    p.add_tenant("t", Licence::AudioConferencingStandard)
        .unwrap();
    p.add_bridge(BridgeSpec {
        name: "b",
        tenant: "t",
        capacity: 1000,
        enabled: true,
    })
    .unwrap();
    p.add_number(NumberSpec {
        number: E164::from_u64(NUMBER).unwrap(),
        kind: NumberKind::User,
        charge: Charge::Toll,
        provider: "Microsoft",
        bridge: Some("b"),
        capacity: Some(2),
    })
    .unwrap();
    Router::new(p)
}

/// Tracks how many holders are inside at once.
#[derive(Default)]
struct Occupancy {
    now: AtomicU32,
    max: AtomicU32,
    admitted: AtomicU64,
}

impl Occupancy {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        self.admitted.fetch_add(1, Ordering::Relaxed);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn threads_never_get_more_than_the_capacity() {
    let router = router();
    let trunk = router.trunk_by_name("ms").unwrap();
    let number = E164::from_u64(NUMBER).unwrap();
    let occupancy = Occupancy::default();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for i in 0..20_000u32 {
                    if let Ok(grant) = router.decide(trunk, number) {
                        occupancy.enter();
                        if i % 7 == 0 {
                            std::thread::yield_now();
                        }
                        // In after the reservation, out before its release: the tracked count never
                        // exceeds the router's own.
                        occupancy.leave();
                        drop(grant);
                    }
                }
            });
        }
    });
    assert!(occupancy.max.load(Ordering::SeqCst) <= 2);
    assert!(occupancy.admitted.load(Ordering::Relaxed) > 0);
    let s = router.snapshot();
    assert_eq!(s.admitted, occupancy.admitted.load(Ordering::Relaxed));
    assert_eq!(s.admitted + s.rejected.total(), 8 * 20_000);
    assert_eq!(router.number_stats(number).unwrap().in_progress, 0);
    assert!(
        s.trunks
            .iter()
            .chain(&s.bridges)
            .all(|r| r.in_progress == 0)
    );
}

#[test]
fn tokio_tasks_never_get_more_than_the_capacity() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let router = router();
    let trunk = router.trunk_by_name("ms").unwrap();
    let number = E164::from_u64(NUMBER).unwrap();
    let occupancy = Arc::new(Occupancy::default());
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let router = router.clone();
            let occupancy = occupancy.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..2_000 {
                    // The grant lives across an await, as a call's does.
                    if let Ok(grant) = router.decide(trunk, number) {
                        occupancy.enter();
                        tokio::task::yield_now().await;
                        occupancy.leave();
                        drop(grant);
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert!(occupancy.max.load(Ordering::SeqCst) <= 2);
    assert!(occupancy.admitted.load(Ordering::Relaxed) > 0);
    assert_eq!(router.number_stats(number).unwrap().in_progress, 0);
}
