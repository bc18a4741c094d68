//! Failure limits across nodes against a real Redis: failures reported by two nodes add
//! up to one limit, and every node hears the block with its end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dialbridge_shared::{LimitPolicy, SharedLimiter};
use dialbridge_testkit::servers::Redis;

type Heard = Arc<Mutex<Vec<(String, SystemTime)>>>;

fn node(redis: &Redis) -> (SharedLimiter, Heard) {
    let heard: Heard = Arc::default();
    let sink = heard.clone();
    let limiter = SharedLimiter::start(
        &redis.url(),
        "dialbridge",
        Duration::from_secs(2),
        move |key, until| {
            sink.lock().unwrap().push((key.to_string(), until));
        },
    )
    .unwrap();
    (limiter, heard)
}

async fn wait_heard(heard: &Heard, want: usize) {
    for _ in 0..200 {
        if heard.lock().unwrap().len() >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("heard {:?}", heard.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_two_nodes_add_up_to_one_block_that_both_hear() {
    let redis = Redis::start();
    let (a, heard_a) = node(&redis);
    let (b, heard_b) = node(&redis);
    // Both subscribed before anything is blocked.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let policy = LimitPolicy {
        max_failures: 5,
        window: Duration::from_secs(60),
        block: Duration::from_secs(900),
    };
    let before = SystemTime::now();
    for _ in 0..3 {
        a.failure("auth:user:bob".into(), policy);
    }
    for _ in 0..2 {
        b.failure("auth:user:bob".into(), policy);
    }
    // Other keys count apart.
    a.failure("auth:user:alice".into(), policy);
    wait_heard(&heard_a, 1).await;
    wait_heard(&heard_b, 1).await;
    for heard in [&heard_a, &heard_b] {
        let heard = heard.lock().unwrap();
        assert_eq!(heard.len(), 1, "{heard:?}");
        assert_eq!(heard[0].0, "auth:user:bob");
        let until = heard[0].1;
        assert!(until >= before + Duration::from_secs(899), "{until:?}");
    }
    // While blocked, more failures publish nothing more.
    for _ in 0..10 {
        b.failure("auth:user:bob".into(), policy);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(heard_a.lock().unwrap().len(), 1);
}
