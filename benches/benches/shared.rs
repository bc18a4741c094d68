//! What sharing state between nodes costs a new call, against a real local Redis and
//! PostgreSQL (started by the bench, on loopback): the routing decision with its
//! reservation claimed in Redis and given back (one round trip each way through the
//! node's keeper), beside the decision alone; and a toll-free call's first minute
//! reserved and committed in the ledger, then settled, in PostgreSQL beside SQLite.
//! These are latencies of one call on an idle machine, not throughput: the keeper and
//! the ledger's writer serve many calls at once.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use dialbridge_ledger::{Ledger, Leg, MoneyConfig, done_channel};
use dialbridge_router::{E164, Plan, Router};
use dialbridge_shared::{CapacitySettings, Claim, SharedCapacity};
use dialbridge_testkit::servers::{Postgres, Redis};

const DEMO: &str = include_str!("../../fixtures/demo.toml");

fn routing_with_redis(c: &mut Criterion) {
    let redis = Redis::start();
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| unreachable!("{e}"));
    let plan =
        Plan::from_toml_str(Path::new("demo.toml"), DEMO).unwrap_or_else(|e| unreachable!("{e}"));
    let router = Router::new(plan);
    let trunk = router
        .identify_trunk([127, 0, 0, 10].into())
        .unwrap_or_else(|| unreachable!());
    let number = E164::from_u64(14255550100).unwrap_or_else(|e| unreachable!("{e}"));
    let settings = CapacitySettings {
        namespace: "dialbridge".to_string(),
        node: "bench".to_string(),
        lease: Duration::from_secs(15),
        timeout: Duration::from_secs(2),
    };
    let shared = runtime.block_on(async {
        let shared =
            SharedCapacity::start(&redis.url(), &settings).unwrap_or_else(|e| unreachable!("{e}"));
        // A fresh Redis settles for two heartbeats first.
        while !shared.is_ready() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shared
    });
    c.bench_function("shared/route_alone", |b| {
        b.iter(|| black_box(router.decide(trunk, black_box(number)).is_ok()))
    });
    c.bench_function("shared/route_claim_release_redis", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let grant = router
                    .decide(trunk, number)
                    .unwrap_or_else(|_| unreachable!());
                let number = grant.number().to_string();
                let claim =
                    Claim::call(&number, grant.bridge(), grant.trunk_name(), grant.limits());
                let lease = shared
                    .acquire(claim)
                    .await
                    .unwrap_or_else(|r| unreachable!("{r:?}"));
                drop(lease);
                // The release's round trip too, so each iteration leaves Redis as it found it.
                shared.flush().await;
            })
        })
    });
}

fn money() -> MoneyConfig {
    MoneyConfig::from_toml_str(DEMO)
        .unwrap_or_else(|e| unreachable!("{e}"))
        .unwrap_or_else(|| unreachable!())
}

/// Reserve the first minute, wait for its row, settle it and wait again.
fn first_minute(ledger: &Ledger, call: u64) {
    let leg = Leg::TollFreeInbound {
        number: "+18885550100",
    };
    let (done, committed) = done_channel();
    let reservation = ledger
        .reserve(
            "contoso",
            leg,
            &format!("bench-{call}"),
            SystemTime::now(),
            done,
        )
        .unwrap_or_else(|r| unreachable!("{r:?}"));
    committed
        .recv()
        .unwrap_or_else(|e| unreachable!("{e}"))
        .unwrap_or_else(|e| unreachable!("{e}"));
    let (done, settled) = done_channel();
    ledger
        .settle(reservation.id, SystemTime::now(), done)
        .unwrap_or_else(|e| unreachable!("{e}"));
    settled
        .recv()
        .unwrap_or_else(|e| unreachable!("{e}"))
        .unwrap_or_else(|e| unreachable!("{e}"));
}

fn funding_committed(c: &mut Criterion) {
    let postgres = Postgres::start();
    let mut config = money();
    // Enough credits for every iteration criterion may run.
    for tenant in &mut config.tenants {
        tenant.opening_credits = "1000000.00".parse().unwrap_or_else(|e| unreachable!("{e}"));
    }
    let dir = std::env::temp_dir().join(format!("dialbridge-bench-ledger-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("ledger.sqlite");
    let sqlite = Ledger::open(&file.to_string_lossy(), config.clone(), SystemTime::now())
        .unwrap_or_else(|e| unreachable!("{e}"));
    let pg = Ledger::open_postgres(&postgres.url(), "bench", config, SystemTime::now())
        .unwrap_or_else(|e| unreachable!("{e}"));
    let mut call = 0;
    c.bench_function("shared/first_minute_committed_sqlite", |b| {
        b.iter(|| {
            call += 1;
            first_minute(&sqlite, call)
        })
    });
    c.bench_function("shared/first_minute_committed_postgres", |b| {
        b.iter(|| {
            call += 1;
            first_minute(&pg, call)
        })
    });
    drop((sqlite, pg));
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, routing_with_redis, funding_committed);
criterion_main!(benches);
