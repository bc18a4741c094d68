//! Meeting homes against a real Redis (started by the test): the first node to claim a
//! meeting is its home and every other node is told so, with the address of its legs;
//! a home whose node is dead (its heartbeat gone), or that a node names as unreachable,
//! is taken over by exactly one claimant; a home gives its meeting up only if it is
//! still the home; only recorded leg addresses count as nodes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use dialbridge_shared::{CapacitySettings, MeetingHomes, SharedCapacity};
use dialbridge_testkit::servers::Redis;

/// A node: its keeper (whose heartbeat says it lives) and its homes, legs at `link`.
async fn node(redis: &Redis, name: &str, link: &str) -> (SharedCapacity, MeetingHomes) {
    let settings = CapacitySettings {
        namespace: "homes".to_string(),
        node: name.to_string(),
        lease: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
    };
    let keeper = SharedCapacity::start(&redis.url(), &settings).unwrap();
    for _ in 0..400 {
        if keeper.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(keeper.is_ready(), "Redis took no heartbeat");
    let homes = MeetingHomes::start(
        &redis.url(),
        "homes",
        keeper.instance(),
        link.parse().unwrap(),
        Duration::from_secs(2),
    )
    .unwrap();
    (keeper, homes)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_home_per_meeting_taken_over_once_when_it_dies() {
    let redis = Redis::start();
    let (_k1, one) = node(&redis, "node1", "127.0.1.1:40001").await;
    let (_k2, two) = node(&redis, "node2", "127.0.1.2:40002").await;
    let (k3, three) = node(&redis, "node3", "127.0.1.3:40003").await;

    let first = three.claim("contoso:123456789", None).await.unwrap();
    assert_eq!(first.instance, three.instance());
    assert_eq!(first.link, addr("127.0.1.3:40003"));
    for other in [&one, &two] {
        let seen = other.claim("contoso:123456789", None).await.unwrap();
        assert_eq!(seen, first, "the home stays the first claimant's");
    }
    // Another meeting has a home of its own.
    let other = one.claim("contoso:987654321", None).await.unwrap();
    assert_eq!(other.instance, one.instance());

    // Legs are taken only from recorded addresses.
    assert!(one.is_node(addr("127.0.1.3:40003")).await.unwrap());
    assert!(!one.is_node(addr("127.0.1.3:40004")).await.unwrap());
    assert!(!one.is_node(addr("127.0.0.99:40003")).await.unwrap());

    // Named unreachable: taken over at once, by the first of two claimants only.
    let dead = first.instance.clone();
    let took = two.claim("contoso:123456789", Some(&dead)).await.unwrap();
    assert_eq!(took.instance, two.instance());
    let then = one.claim("contoso:123456789", Some(&dead)).await.unwrap();
    assert_eq!(then.instance, two.instance(), "one new home, not two");

    // The old home cannot give up a meeting it no longer holds.
    three.release("contoso:123456789").await;
    assert_eq!(
        one.claim("contoso:123456789", None).await.unwrap().instance,
        two.instance()
    );
    two.release("contoso:123456789").await;
    let after = one.claim("contoso:123456789", None).await.unwrap();
    assert_eq!(
        after.instance,
        one.instance(),
        "released: the next claimant is home"
    );

    // A node whose heartbeat stops loses its meetings to the next claimant.
    let homed = three.claim("fabrikam:555555555", None).await.unwrap();
    assert_eq!(homed.instance, three.instance());
    drop(k3);
    let mut moved = None;
    for _ in 0..100 {
        let seen = one.claim("fabrikam:555555555", None).await.unwrap();
        if seen.instance != homed.instance {
            moved = Some(seen);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        moved.expect("taken over within the lease").instance,
        one.instance()
    );

    // Node numbers are never handed out twice.
    let a = one.node_number().await.unwrap();
    let b = two.node_number().await.unwrap();
    assert_ne!(a, b);
}
