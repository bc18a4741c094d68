//! Two bridge processes keeping their durable records in one real PostgreSQL
//! (`[shared] postgres`), over real SIP and HTTP: a token made through node A's admin
//! API is good on node B, the record of a call made to node A is listed through node B's
//! `/api/v1/cdrs`, and an edit of the number plan made on A is re-applied by B when it
//! starts, and reaches it while it runs. (The ledger shares the same database, so its tables and the CDR store's
//! live side by side.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use dialbridge_testkit::serve::{Serve, toml_string};
use dialbridge_testkit::servers::PostgresDb;
use dialbridge_testkit::{ip, scratch_dir, uac};
use serde_json::Value;

/// The demo's user number, reached over the Microsoft trunk (127.0.0.10).
const NUMBER: &str = "+14255550123";

struct Node {
    serve: Serve,
    sip: SocketAddr,
    admin: SocketAddr,
}

async fn start_node(postgres: &PostgresDb, name: &str) -> Node {
    let dir = scratch_dir(&format!("shared-cdr-{name}"));
    let shared = [
        format!("postgres = {}", toml_string(postgres.url())),
        format!("node = {}", toml_string(name)),
    ];
    let bin = env!("CARGO_BIN_EXE_dialbridge").as_ref();
    let (serve, sip) = Serve::start_demo(bin, &dir, |c| c.add_table("shared", &shared)).await;
    let admin = serve.admin_addr();
    Node { serve, sip, admin }
}

/// `GET path` on `node`'s admin API with `token`: the status and the JSON body.
async fn get_with(node: &Node, token: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("http://{}{path}", node.admin))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Sets the capacity of [`NUMBER`] through `node`'s API: a plan edit.
async fn set_capacity(node: &Node, capacity: u32) {
    let path = format!("/api/v1/numbers/{NUMBER}/capacity");
    let body = format!(r#"{{"capacity": {capacity}}}"#);
    let (status, body) = node.serve.put_json(&path, &body).await;
    assert_eq!(status, 200, "{body}");
}

/// The capacity of [`NUMBER`] as `node`'s API shows it.
async fn capacity(node: &Node, token: &str) -> u64 {
    let (status, numbers) = get_with(node, token, "/api/v1/numbers").await;
    assert_eq!(status, 200, "{numbers}");
    numbers["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["number"] == NUMBER)
        .and_then(|n| n["capacity"].as_u64())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_a_call_record_and_a_plan_edit_made_on_one_node_reach_the_other() {
    let postgres = PostgresDb::create();
    let a = start_node(&postgres, "node-a").await;

    // On A: a token, an edit of the plan and a call, answered and hung up (the bridge
    // answers the BYE once the call's record is committed).
    let (status, body) = a
        .serve
        .post_json("/api/v1/tokens", r#"{"name": "ops", "role": "admin"}"#)
        .await;
    assert_eq!(status, 201, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    set_capacity(&a, 7).await;
    let call = uac::call(a.sip, ip("127.0.0.10"), NUMBER).await;
    assert_eq!(call.status, 200, "{}", call.response);
    assert_eq!(call.hang_up().await, 200);

    // B starts after: A's token speaks for it, A's call is in its list, A's edit is on
    // its plan.
    let b = start_node(&postgres, "node-b").await;
    let (status, listed) = get_with(&b, &secret, "/api/v1/cdrs").await;
    assert_eq!(status, 200, "{listed}");
    let records = listed["cdrs"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{listed}");
    assert_eq!(records[0]["dialled"], NUMBER);
    assert_eq!(records[0]["trunk"], "microsoft-pstn");
    assert_eq!(records[0]["sip_status"], 200);
    assert_eq!(capacity(&b, &secret).await, 7);
    // An edit made on A while B runs reaches B's plan too (B looks every 2 s).
    set_capacity(&a, 9).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while capacity(&b, &secret).await != 9 {
        assert!(std::time::Instant::now() < deadline, "{}", b.serve.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And a wrong token is refused there as anywhere.
    let (status, _) = get_with(&b, "dbt_0000", "/api/v1/cdrs").await;
    assert_eq!(status, 401);
    // The store says where it is, never the database's URL (it may carry a password).
    for node in [&a, &b] {
        let log = node.serve.log();
        assert!(log.contains("CDR store open backend=\"postgres\""), "{log}");
        assert!(!log.contains(postgres.url()), "{log}");
    }
}
