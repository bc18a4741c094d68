//! Money end to end with the real `dialbridge serve` on a config file, a raw caller on
//! the Microsoft trunk's address (127.0.0.10) dialling the toll-free +18885550100, and
//! the admin API: a toll-free call is refused with 403 once contoso's credits are spent
//! and goes through again after a top-up; a SIGKILL while a call holds its minute, and
//! the restart settles that minute (the ledger is in the bridge's directory, on disk).
//! The minute boundary itself is tested on the signaling task's virtual clock
//! (`signaling/billing_tests.rs`), not by waiting 60 s here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use dialbridge_testkit::ports::free_udp_tcp_port;
use dialbridge_testkit::serve::{DemoToml, Serve};
use dialbridge_testkit::uac::{self, header};
use dialbridge_testkit::{ip, scratch_dir, wait_until};
use serde_json::Value;

const TOLL_FREE: &str = "+18885550100";

/// The demo with contoso's opening credits `credits`, on free loopback ports.
fn config(dir: &Path, credits: &str) -> (DemoToml, SocketAddr, SocketAddr) {
    let loopback = ip("127.0.0.1");
    let (sip, tls, admin) = (
        free_udp_tcp_port(loopback),
        free_udp_tcp_port(loopback),
        free_udp_tcp_port(loopback),
    );
    let config = DemoToml::new(dir)
        .on_loopback_ports(sip, tls, admin)
        .replace("credits = \"20.00\"", &format!("credits = \"{credits}\""));
    let sip: SocketAddr = format!("127.0.0.1:{sip}").parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    (config, sip, admin)
}

async fn start(config: &DemoToml, admin: SocketAddr, dir: &Path) -> Serve {
    Serve::start(
        env!("CARGO_BIN_EXE_dialbridge").as_ref(),
        config,
        admin,
        dir,
    )
    .await
}

async fn balance(serve: &Serve) -> Value {
    let (status, body) = serve.get("/api/v1/tenants/contoso/balance").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn cdrs(serve: &Serve) -> Vec<Value> {
    let (status, body) = serve.get("/api/v1/cdrs").await;
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    list["cdrs"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toll_free_call_is_refused_once_the_credits_are_spent_and_let_in_after_a_top_up() {
    let dir = scratch_dir("money-refused");
    // 0.05 pays one minute at 0.03; a second call's first minute cannot be held.
    let (config, sip, admin) = config(&dir, "0.05");
    let serve = start(&config, admin, &dir).await;
    let microsoft = ip("127.0.0.10");

    let first = uac::call(sip, microsoft, TOLL_FREE).await;
    assert_eq!(first.status, 200, "{}", first.response);
    let b = balance(&serve).await;
    assert_eq!(
        (&b["credits"], &b["reserved"]),
        (&"0.05".into(), &"0.03".into()),
        "{b}"
    );

    let second = uac::call(sip, microsoft, TOLL_FREE).await;
    assert_eq!(second.status, 403, "{}", second.response);
    assert_eq!(
        header(&second.response, "Reason"),
        Some("SIP;cause=403;text=\"no communications credits\""),
        "{}",
        second.response
    );
    // The first call's started minute is paid when it hangs up; nothing else moved.
    assert_eq!(first.hang_up().await, 200);
    let b = balance(&serve).await;
    assert_eq!(
        (&b["credits"], &b["reserved"]),
        (&"0.02".into(), &"0.00".into()),
        "{b}"
    );
    let records = cdrs(&serve).await;
    assert_eq!(
        records.len(),
        1,
        "a refused call has no record: {records:?}"
    );
    assert_eq!(
        records[0]["billing"],
        serde_json::json!({"funding": "credits", "seconds": 60, "cost": "0.03", "currency": "USD"})
    );
    assert_eq!(records[0]["provider"], "Microsoft");
    let (_, metrics) = serve.get("/metrics").await;
    assert!(
        metrics.contains("dialbridge_money_refusals_total{reason=\"no_credits\"} 1\n"),
        "{metrics}"
    );

    // A top-up through the API lets the next call in.
    let (status, body) = serve
        .post_json("/api/v1/tenants/contoso/credits", r#"{"amount": "5.00"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    let third = uac::call(sip, microsoft, TOLL_FREE).await;
    assert_eq!(third.status, 200, "{}", third.response);
    assert_eq!(third.hang_up().await, 200);
    let b = balance(&serve).await;
    assert_eq!(b["credits"], "4.99", "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_while_a_call_holds_its_minute_and_the_restart_settles_it() {
    let dir = scratch_dir("money-sigkill");
    let (config, sip, admin) = config(&dir, "20.00");
    let serve = start(&config, admin, &dir).await;
    let call = uac::call(sip, ip("127.0.0.10"), TOLL_FREE).await;
    assert_eq!(call.status, 200, "{}", call.response);
    let b = balance(&serve).await;
    assert_eq!(
        (&b["credits"], &b["reserved"]),
        (&"20.00".into(), &"0.03".into()),
        "{b}"
    );
    let (_, metrics) = serve.get("/metrics").await;
    assert!(
        metrics.contains("dialbridge_ledger_open_reservations 1\n"),
        "{metrics}"
    );

    // The process dies with the minute in flight; the bridge starts again on its files.
    serve.kill_keeping_files();
    let serve = start(&config, admin, &dir).await;
    wait_until(
        "the restarted bridge says what it settled",
        || serve.log().contains("ledger open"),
        Duration::from_secs(10),
    )
    .await;
    assert!(
        serve
            .log()
            .contains("reservations left open by a crash settled"),
        "{}",
        serve.log()
    );
    // The minute in flight is paid, once; the opening balance was not written again.
    let b = balance(&serve).await;
    assert_eq!(
        (&b["credits"], &b["reserved"]),
        (&"19.97".into(), &"0.00".into()),
        "{b}"
    );
    assert_eq!(b["pools"][0]["minutes_left"], 3000, "{b}");
    drop(call);
    // A third start finds nothing more to settle.
    serve.kill_keeping_files();
    let serve = start(&config, admin, &dir).await;
    let b = balance(&serve).await;
    assert_eq!(b["credits"], "19.97", "{b}");
}
