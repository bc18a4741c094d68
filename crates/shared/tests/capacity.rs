//! Capacity shared between nodes, against a real Redis (started by the test): every
//! acquisition checks all limits across nodes and takes all or none; a dead node's
//! reservations come back within the lease time while a live node keeps its own; Redis
//! going away refuses new claims and loses nothing once it is back. Each node here is its
//! own keeper (its own instance in Redis, its own connection), as separate processes
//! are; the server's `tests/shared_nodes.rs` races real bridge processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use dialbridge_router::Limits;
use dialbridge_shared::{CapacitySettings, Claim, Lease, SharedCapacity, SharedRefusal};
use dialbridge_testkit::servers::Redis;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A node's keeper, once Redis takes its reservations: a fresh Redis first settles for
/// two heartbeats, as one that lost its data does (see `shared/scripts.rs`).
async fn node(redis: &Redis, name: &str, lease: Duration) -> SharedCapacity {
    let config = CapacitySettings {
        namespace: "dialbridge".to_string(),
        node: name.to_string(),
        lease,
        timeout: Duration::from_secs(2),
    };
    let node = SharedCapacity::start(&redis.url(), &config).unwrap();
    wait_ready(&node).await;
    node
}

async fn wait_ready(node: &SharedCapacity) {
    for _ in 0..400 {
        if node.is_ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Redis did not take reservations within 20 s");
}

fn claim(number: &str, number_limit: u32, bridge_limit: u32, trunk_limit: u32) -> Claim {
    Claim::call(
        number,
        "bridge",
        "trunk",
        Limits {
            number: Some(number_limit),
            bridge: bridge_limit,
            trunk: trunk_limit,
        },
    )
}

/// The sum of a counter's fields in Redis (dead instances included).
async fn stored(redis: &Redis, key: &str) -> i64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let fields: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(format!("dialbridge:cap:{key}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    fields.values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_claims_from_three_nodes_on_a_number_of_capacity_two_take_exactly_two() {
    let redis = Redis::start();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(node(&redis, &format!("node-{i}"), Duration::from_secs(15)).await);
    }
    let claims = (0..20).map(|i| {
        let node = nodes[i % 3].clone();
        tokio::spawn(async move { node.acquire(claim("+14255550123", 2, 100, 100)).await })
    });
    let mut leases = Vec::new();
    for outcome in futures_join(claims).await {
        match outcome {
            Ok(lease) => leases.push(lease),
            Err(refusal) => assert_eq!(refusal, SharedRefusal::NumberBusy),
        }
    }
    assert_eq!(leases.len(), 2);
    assert_eq!(stored(&redis, "number:+14255550123").await, 2);
    // One given back: exactly one more fits, on any node.
    leases.pop();
    let again = wait_for_grant(&nodes[2], || claim("+14255550123", 2, 100, 100)).await;
    assert_eq!(
        nodes[1]
            .acquire(claim("+14255550123", 2, 100, 100))
            .await
            .unwrap_err(),
        SharedRefusal::NumberBusy
    );
    drop((again, leases));
    wait_until_stored(&redis, "number:+14255550123", 0).await;
    assert_eq!(stored(&redis, "bridge:bridge").await, 0);
    assert_eq!(stored(&redis, "trunk:trunk").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_refuses_in_its_own_terms_and_takes_nothing() {
    let redis = Redis::start();
    let a = node(&redis, "a", Duration::from_secs(15)).await;
    let held = a.acquire(claim("+1", 5, 1, 5)).await.unwrap();
    // The bridge is full: a claim on another number takes neither its number nor the trunk.
    assert_eq!(
        a.acquire(claim("+2", 5, 1, 5)).await.unwrap_err(),
        SharedRefusal::BridgeOverloaded
    );
    assert_eq!(stored(&redis, "number:+2").await, 0);
    assert_eq!(stored(&redis, "trunk:trunk").await, 1);
    drop(held);
    let held = a.acquire(claim("+1", 5, 5, 1)).await.unwrap();
    assert_eq!(
        a.acquire(claim("+2", 5, 5, 1)).await.unwrap_err(),
        SharedRefusal::TrunkOverloaded
    );
    drop(held);
    wait_until_stored(&redis, "trunk:trunk", 0).await;
}

#[test]
fn a_dead_nodes_reservations_come_back_within_the_lease_and_a_live_nodes_stay() {
    let redis = Redis::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let live = runtime.block_on(async {
        let live = node(&redis, "live", Duration::from_secs(1)).await;
        live.acquire(claim("+1", 3, 100, 100)).await.unwrap()
    });
    // A node dies holding two reservations: its runtime stops, nothing is given back.
    let doomed = tokio::runtime::Runtime::new().unwrap();
    let dead_leases: Vec<Lease> = doomed.block_on(async {
        let dead = node(&redis, "dead", Duration::from_secs(1)).await;
        vec![
            dead.acquire(claim("+1", 3, 100, 100)).await.unwrap(),
            dead.acquire(claim("+1", 3, 100, 100)).await.unwrap(),
        ]
    });
    doomed.shutdown_background();
    std::mem::forget(dead_leases); // a dead process runs no destructor
    runtime.block_on(async {
        let other = node(&redis, "other", Duration::from_secs(1)).await;
        assert_eq!(
            other.acquire(claim("+1", 3, 100, 100)).await.unwrap_err(),
            SharedRefusal::NumberBusy,
            "the dead node's reservations count until its lease runs out"
        );
        // Within the lease (and a heartbeat or two), only the live node's one counts.
        let taken = wait_for_grant(&other, || claim("+1", 3, 100, 100)).await;
        let second = other.acquire(claim("+1", 3, 100, 100)).await.unwrap();
        assert_eq!(
            other.acquire(claim("+1", 3, 100, 100)).await.unwrap_err(),
            SharedRefusal::NumberBusy,
            "the live node kept its reservation past the dead one's lease"
        );
        drop((taken, second, live));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_refuses_new_claims_and_what_is_held_is_restated_when_it_returns() {
    let mut redis = Redis::start();
    let a = node(&redis, "a", Duration::from_secs(3)).await;
    let held = a.acquire(claim("+1", 2, 100, 100)).await.unwrap();
    redis.stop();
    assert_eq!(
        a.acquire(claim("+1", 2, 100, 100)).await.unwrap_err(),
        SharedRefusal::Unavailable
    );
    // A call ending during the outage: given back once Redis is there again.
    let ended = held;
    drop(ended);
    let kept = {
        // (taken before the outage on a second number, still held after it)
        redis.resume();
        let kept = wait_for_grant(&a, || claim("+2", 1, 100, 100)).await;
        redis.stop();
        redis.resume(); // lost everything again: the node must restate what it holds
        kept
    };
    let b = node(&redis, "b", Duration::from_secs(3)).await;
    // Once a's heartbeat restated it, "+2" is full on every node, and "+1" is free.
    let mut busy = false;
    for _ in 0..200 {
        if b.acquire(claim("+2", 1, 100, 100)).await.is_err()
            && stored(&redis, "number:+2").await == 1
        {
            busy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        busy,
        "the held reservation was not restated after Redis lost it"
    );
    let first = b.acquire(claim("+1", 2, 100, 100)).await.unwrap();
    let second = b.acquire(claim("+1", 2, 100, 100)).await.unwrap();
    drop((first, second, kept));
    wait_until_stored(&redis, "number:+1", 0).await;
    wait_until_stored(&redis, "number:+2", 0).await;
}

/// 100,000 call lifecycles over three nodes, one claim at a time so that a model can
/// say what each must get: numbers, bridges and trunks with small limits, calls ending
/// in random order, and Redis's counters equal to the model's every 1,000 lifecycles
/// and empty at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_lifecycles_against_redis_match_the_model() {
    const LIFECYCLES: usize = 100_000;
    let redis = Redis::start();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(node(&redis, &format!("n{i}"), Duration::from_secs(15)).await);
    }
    let mut rng = StdRng::seed_from_u64(15);
    // (counter key, limit) for numbers 0..8, bridges 0..3, trunks 0..3.
    let number_limit = |n: usize| 1 + (n % 4) as u32;
    let bridge_limit = |b: usize| 4 + 2 * b as u32;
    let trunk_limit = |t: usize| 5 + t as u32;
    let mut model: HashMap<String, u32> = HashMap::new();
    let mut held: Vec<(Lease, [String; 3])> = Vec::new();
    let (mut granted, mut refused) = (0u64, 0u64);
    for lifecycle in 0..LIFECYCLES {
        // End some calls first (random order), then place one.
        while !held.is_empty() && (held.len() > 12 || rng.random_bool(0.45)) {
            let (lease, keys) = held.swap_remove(rng.random_range(0..held.len()));
            drop(lease);
            for key in keys {
                *model.get_mut(&key).unwrap() -= 1;
            }
        }
        // Releases are sent as the lease drops; the model counts them once done.
        for node in &nodes {
            node.flush().await;
        }
        let (n, b, t) = (
            rng.random_range(0..8usize),
            rng.random_range(0..3usize),
            rng.random_range(0..3usize),
        );
        let keys = [
            format!("number:+{n}"),
            format!("bridge:b{b}"),
            format!("trunk:t{t}"),
        ];
        let limits = [number_limit(n), bridge_limit(b), trunk_limit(t)];
        let expected = keys
            .iter()
            .zip(limits)
            .position(|(k, limit)| model.get(k).copied().unwrap_or(0) >= limit);
        let call = Claim::call(
            &format!("+{n}"),
            &format!("b{b}"),
            &format!("t{t}"),
            Limits {
                number: Some(limits[0]),
                bridge: limits[1],
                trunk: limits[2],
            },
        );
        let outcome = nodes[rng.random_range(0..3)].acquire(call).await;
        match (outcome, expected) {
            (Ok(lease), None) => {
                for key in &keys {
                    *model.entry(key.clone()).or_default() += 1;
                }
                held.push((lease, keys));
                granted += 1;
            }
            (Err(refusal), Some(i)) => {
                let want = [
                    SharedRefusal::NumberBusy,
                    SharedRefusal::BridgeOverloaded,
                    SharedRefusal::TrunkOverloaded,
                ][i];
                assert_eq!(refusal, want, "lifecycle {lifecycle}");
                refused += 1;
            }
            (outcome, expected) => {
                panic!("lifecycle {lifecycle}: got {outcome:?}, the model says {expected:?}")
            }
        }
        if lifecycle % 1000 == 999 {
            for (key, count) in &model {
                assert_eq!(
                    stored(&redis, key).await,
                    i64::from(*count),
                    "{key} at {lifecycle}"
                );
            }
        }
    }
    assert!(
        granted > 30_000 && refused > 10_000,
        "{granted} granted, {refused} refused"
    );
    held.clear();
    for key in model.keys() {
        wait_until_stored(&redis, key, 0).await;
    }
}

async fn futures_join<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.unwrap());
    }
    out
}

/// Claims until one is granted (bounded).
async fn wait_for_grant(node: &SharedCapacity, claim: impl Fn() -> Claim) -> Lease {
    for _ in 0..400 {
        if let Ok(lease) = node.acquire(claim()).await {
            return lease;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no claim granted within 20 s");
}

async fn wait_until_stored(redis: &Redis, key: &str, want: i64) {
    for _ in 0..200 {
        if stored(redis, key).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{key} never came to {want}: {}", stored(redis, key).await);
}
