//! Bridge processes sharing their capacity through a real Redis (`[shared] redis`),
//! called over real SIP: the demo's user number +14255550123 (capacity 2) admits exactly
//! two of twenty simultaneous calls spread over three nodes; a SIGKILLed node's calls
//! come back to the others within the lease; with Redis stopped new calls get 503 while
//! the call in progress goes on, and once it is back calls are admitted again, the
//! surviving call still counted. With `[shared] postgres` too, two nodes spend one
//! tenant's credits in one ledger and never more than it holds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use dialbridge_testkit::serve::{DemoToml, Serve, toml_string};
use dialbridge_testkit::servers::{Postgres, Redis};
use dialbridge_testkit::uac::{self, header};
use dialbridge_testkit::{ip, scratch_dir};

/// Capacity 2, reached over the Microsoft trunk (127.0.0.10).
const USER_NUMBER: &str = "+14255550123";

struct Node {
    serve: Serve,
    sip: SocketAddr,
}

async fn start_node(dir: &Path, redis: &Redis, name: &str, lease_s: u64) -> Node {
    start_node_with(dir, redis, None, name, lease_s, |c| c).await
}

async fn start_node_with(
    dir: &Path,
    redis: &Redis,
    postgres: Option<&Postgres>,
    name: &str,
    lease_s: u64,
    edit: impl FnOnce(DemoToml) -> DemoToml,
) -> Node {
    let mut shared = vec![
        format!("redis = {}", toml_string(&redis.url())),
        format!("node = {}", toml_string(name)),
        format!("lease_s = {lease_s}"),
    ];
    if let Some(postgres) = postgres {
        shared.push(format!("postgres = {}", toml_string(&postgres.url())));
    }
    let bin = env!("CARGO_BIN_EXE_dialbridge").as_ref();
    let (serve, sip) = Serve::start_demo(bin, dir, |c| edit(c).add_table("shared", &shared)).await;
    serve.wait_shared_ready().await;
    Node { serve, sip }
}

async fn nodes(redis: &Redis, what: &str, count: usize, lease_s: u64) -> Vec<Node> {
    let mut nodes = Vec::new();
    for i in 0..count {
        let dir = scratch_dir(&format!("{what}-{i}"));
        nodes.push(start_node(&dir, redis, &format!("node-{i}"), lease_s).await);
    }
    nodes
}

/// Calls the user number at `sip` until one is answered (bounded); the refusals on the
/// way must all be "busy".
async fn call_until_answered(sip: SocketAddr) -> uac::Call {
    for _ in 0..200 {
        let call = uac::call(sip, ip("127.0.0.10"), USER_NUMBER).await;
        if call.status == 200 {
            return call;
        }
        assert_eq!(call.status, 486, "{}", call.response);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no call to {USER_NUMBER} was answered within 40 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_admit_exactly_two_of_twenty_simultaneous_calls_to_a_number_of_capacity_two() {
    let redis = Redis::start();
    let nodes = nodes(&redis, "shared-race", 3, 15).await;
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let sip = nodes[i % 3].sip;
            tokio::spawn(async move { uac::call(sip, ip("127.0.0.10"), USER_NUMBER).await })
        })
        .collect();
    let mut answered = Vec::new();
    for call in calls {
        let call = call.await.unwrap();
        match call.status {
            200 => answered.push(call),
            486 => assert_eq!(
                header(&call.response, "Reason"),
                Some("Q.850;cause=17;text=\"number at its concurrent-call capacity\""),
                "{}",
                call.response
            ),
            other => panic!("{other}: {}", call.response),
        }
    }
    assert_eq!(
        answered.len(),
        2,
        "exactly the number's capacity is admitted"
    );
    // Both hang up: their capacity comes back on every node.
    for call in answered {
        assert_eq!(call.hang_up().await, 200);
    }
    let again = call_until_answered(nodes[2].sip).await;
    let and_again = call_until_answered(nodes[1].sip).await;
    let third = uac::call(nodes[0].sip, ip("127.0.0.10"), USER_NUMBER).await;
    assert_eq!(third.status, 486, "{}", third.response);
    let (_, metrics) = nodes[0].serve.get("/metrics").await;
    assert!(
        metrics.contains("dialbridge_shared_capacity_refusals_total{limit=\"number\"}"),
        "{metrics}"
    );
    assert_eq!(again.hang_up().await, 200);
    assert_eq!(and_again.hang_up().await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_nodes_calls_come_back_to_the_others_within_the_lease() {
    let redis = Redis::start();
    let mut nodes = nodes(&redis, "shared-kill", 2, 3).await;
    let doomed = nodes.remove(0);
    let first = uac::call(doomed.sip, ip("127.0.0.10"), USER_NUMBER).await;
    let second = uac::call(doomed.sip, ip("127.0.0.10"), USER_NUMBER).await;
    assert_eq!((first.status, second.status), (200, 200));
    let survivor = &nodes[0];
    let busy = uac::call(survivor.sip, ip("127.0.0.10"), USER_NUMBER).await;
    assert_eq!(busy.status, 486, "{}", busy.response);
    drop(doomed.serve); // SIGKILL: nothing given back
    std::mem::forget((first, second));
    // Within the lease (3 s) and a heartbeat, the survivor takes the number's calls.
    let a = call_until_answered(survivor.sip).await;
    let b = call_until_answered(survivor.sip).await;
    assert_eq!(a.hang_up().await, 200);
    assert_eq!(b.hang_up().await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_new_calls_get_503_the_call_in_progress_goes_on_and_all_recovers() {
    let mut redis = Redis::start();
    let nodes = nodes(&redis, "shared-outage", 2, 3).await;
    let (holder, other) = (&nodes[0], &nodes[1]);
    let up = uac::call(holder.sip, ip("127.0.0.10"), USER_NUMBER).await;
    assert_eq!(up.status, 200, "{}", up.response);

    redis.stop();
    for node in [holder, other] {
        let refused = uac::call(node.sip, ip("127.0.0.10"), USER_NUMBER).await;
        assert_eq!(refused.status, 503, "{}", refused.response);
        assert_eq!(
            header(&refused.response, "Reason"),
            Some("SIP;cause=503;text=\"shared state unavailable\""),
            "{}",
            refused.response
        );
        assert_eq!(header(&refused.response, "Retry-After"), Some("5"));
        assert!(
            node.serve
                .log()
                .contains("shared capacity: Redis unavailable")
        );
        // ... and a load balancer's OPTIONS probe hears it too.
        let probe =
            dialbridge_testkit::options::ping(node.sip, ip("127.0.0.1"), Duration::from_secs(2));
        assert_eq!(probe.await, Some(503));
    }
    // The call in progress still has its media.
    assert!(
        up.receive_raw(Duration::from_secs(5)).await.is_some(),
        "the call in progress lost its media during the outage"
    );

    // Redis comes back empty: the holder must restate the call it still has, so the
    // other node admits one more call to the number of capacity 2, not two.
    redis.resume();
    other.serve.wait_shared_ready().await;
    let second = call_until_answered_or_unavailable(other.sip).await;
    let third = uac::call(other.sip, ip("127.0.0.10"), USER_NUMBER).await;
    assert_eq!(third.status, 486, "{}", third.response);
    assert_eq!(up.hang_up().await, 200);
    assert_eq!(second.hang_up().await, 200);
}

/// Calls until one is answered while Redis comes back: refusals on the way are 503.
async fn call_until_answered_or_unavailable(sip: SocketAddr) -> uac::Call {
    for _ in 0..200 {
        let call = uac::call(sip, ip("127.0.0.10"), USER_NUMBER).await;
        if call.status == 200 {
            return call;
        }
        assert_eq!(call.status, 503, "{}", call.response);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("calls were not admitted again within 40 s of Redis coming back");
}

/// contoso's toll-free number: each call's minute is paid from its credits (0.03).
const TOLL_FREE: &str = "+18885550100";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_spend_one_balance_in_postgres_and_never_more_than_it_holds() {
    let (redis, postgres) = (Redis::start(), Postgres::start());
    // 0.05 pays one minute at 0.03, not two.
    let credits = |c: DemoToml| c.replace("credits = \"20.00\"", "credits = \"0.05\"");
    let mut nodes = Vec::new();
    for i in 0..2 {
        let dir = scratch_dir(&format!("shared-money-{i}"));
        nodes.push(
            start_node_with(
                &dir,
                &redis,
                Some(&postgres),
                &format!("node-{i}"),
                15,
                credits,
            )
            .await,
        );
    }
    let first = uac::call(nodes[0].sip, ip("127.0.0.10"), TOLL_FREE).await;
    assert_eq!(first.status, 200, "{}", first.response);
    // The other node's ledger is told by the database that the minute is taken.
    let second = uac::call(nodes[1].sip, ip("127.0.0.10"), TOLL_FREE).await;
    assert_eq!(second.status, 403, "{}", second.response);
    assert_eq!(
        header(&second.response, "Reason"),
        Some("SIP;cause=403;text=\"no communications credits\""),
        "{}",
        second.response
    );
    assert_eq!(first.hang_up().await, 200);
    // One minute spent, seen from either node once it has touched the balance.
    let (status, body) = nodes[0].serve.get("/api/v1/tenants/contoso/balance").await;
    assert_eq!(status, 200, "{body}");
    let balance: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&balance["credits"], &balance["reserved"]),
        (&"0.02".into(), &"0.00".into()),
        "{balance}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_stopped_new_calls_get_503_the_call_in_progress_goes_on_and_all_recovers() {
    let (redis, mut postgres) = (Redis::start(), Postgres::start());
    let dir = scratch_dir("shared-pg-outage");
    let node = start_node_with(&dir, &redis, Some(&postgres), "node-0", 15, |c| c).await;
    let up = uac::call(node.sip, ip("127.0.0.10"), USER_NUMBER).await;
    assert_eq!(up.status, 200, "{}", up.response);

    postgres.stop();
    // Within a probe (a second), new calls are refused, never admitted unchecked.
    let mut refused = None;
    for _ in 0..100 {
        let call = uac::call(node.sip, ip("127.0.0.10"), "+14255550100").await;
        if call.status == 503 {
            refused = Some(call);
            break;
        }
        assert_eq!(call.status, 200, "{}", call.response); // before the probe saw it
        let _ = call.hang_up().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = refused.expect("a 503 while PostgreSQL is away");
    assert_eq!(
        header(&refused.response, "Reason"),
        Some("SIP;cause=503;text=\"shared state unavailable\""),
        "{}",
        refused.response
    );
    assert!(node.serve.log().contains("shared PostgreSQL unavailable"));
    assert!(
        up.receive_raw(Duration::from_secs(5)).await.is_some(),
        "the call in progress lost its media during the outage"
    );

    postgres.resume();
    let second = call_until_answered_or_unavailable(node.sip).await;
    assert!(node.serve.log().contains("shared PostgreSQL answers again"));
    assert_eq!(up.hang_up().await, 200);
    assert_eq!(second.hang_up().await, 200);
}

/// A node that stops (SIGTERM: it drains, ends its calls, and exits) gives its calls'
/// leases back on its way out, not a lease time later: the other node takes the number's
/// calls at once though the lease is a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_gives_its_leases_back_on_its_way_out() {
    let redis = Redis::start();
    let short_drain = |c: DemoToml| c.set("sip", "drain_timeout_ms", "200");
    let dir = scratch_dir("shared-stop-0");
    let stopping = start_node_with(&dir, &redis, None, "stopping", 60, short_drain).await;
    let dir = scratch_dir("shared-stop-1");
    let staying = start_node_with(&dir, &redis, None, "staying", 60, short_drain).await;
    let first = uac::call(stopping.sip, ip("127.0.0.10"), USER_NUMBER).await;
    let second = uac::call(stopping.sip, ip("127.0.0.10"), USER_NUMBER).await;
    assert_eq!((first.status, second.status), (200, 200));
    let busy = uac::call(staying.sip, ip("127.0.0.10"), USER_NUMBER).await;
    assert_eq!(busy.status, 486, "{}", busy.response);
    let pid = stopping.serve.pid().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    // Gone (bounded), then both calls' capacity is back well inside the minute's lease.
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stopping.serve.log().contains("shutting down") || stopping.serve.log().contains("drain"),
        "{}",
        stopping.serve.log()
    );
    let a = uac::call(staying.sip, ip("127.0.0.10"), USER_NUMBER).await;
    let b = uac::call(staying.sip, ip("127.0.0.10"), USER_NUMBER).await;
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "{}\n{}",
        a.response,
        b.response
    );
    assert_eq!(a.hang_up().await, 200);
    assert_eq!(b.hang_up().await, 200);
    std::mem::forget((first, second));
}
