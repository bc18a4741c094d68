//! What an administrator changes through the API outlives a SIGHUP and a restart: the
//! real `dialbridge serve` on a config file, its edits kept in its durable file (the
//! CDR database). A reload whose file makes an edit impossible lists the conflict and
//! keeps the edit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dialbridge_testkit::ports::free_udp_tcp_port;
use dialbridge_testkit::serve::{DemoToml, Serve};
use dialbridge_testkit::{ip, scratch_dir};
use serde_json::Value;

const USER_NUMBER: &str = "+14255550123";
/// Assigned to nothing in the demo; the edit assigns it, a later file renames it away.
const SPARE: &str = "+14255550999";

async fn start(config: &DemoToml, admin: SocketAddr, dir: &Path) -> Serve {
    Serve::start(
        env!("CARGO_BIN_EXE_dialbridge").as_ref(),
        config,
        admin,
        dir,
    )
    .await
}

async fn json(serve: &Serve, path: &str) -> Value {
    let (status, body) = serve.get(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The number's view in `GET /api/v1/numbers`.
async fn number(serve: &Serve, e164: &str) -> Option<Value> {
    let list = json(serve, "/api/v1/numbers").await;
    list["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["number"] == e164)
        .cloned()
}

async fn bridge_enabled(serve: &Serve, name: &str) -> bool {
    let list = json(serve, "/api/v1/bridges").await;
    list["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .and_then(|b| b["enabled"].as_bool())
        .unwrap()
}

async fn sighup_and_wait(serve: &Serve) {
    // The file's plan goes in, then the kept edits go back on top and say so.
    let reapplied = |log: &str| log.matches("admin edits re-applied").count();
    let before = reapplied(&serve.log());
    let pid = serve.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let end = Instant::now() + Duration::from_secs(10);
    while reapplied(&serve.log()) == before {
        assert!(Instant::now() < end, "no reload:\n{}", serve.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_edits_survive_sighup_and_restart_and_conflicts_are_listed() {
    let dir = scratch_dir("edits");
    let loopback = ip("127.0.0.1");
    let (sip, tls, admin) = (
        free_udp_tcp_port(loopback),
        free_udp_tcp_port(loopback),
        free_udp_tcp_port(loopback),
    );
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let config = DemoToml::new(&dir).on_loopback_ports(sip, tls, admin);
    let serve = start(&config, admin_addr, &dir).await;

    for (path, body) in [
        (
            format!("/api/v1/numbers/{USER_NUMBER}/capacity"),
            r#"{"capacity": 5}"#,
        ),
        (
            "/api/v1/bridges/fabrikam-bridge/enabled".to_string(),
            r#"{"enabled": false}"#,
        ),
        (
            format!("/api/v1/numbers/{SPARE}/assignment"),
            r#"{"bridge": "contoso-bridge"}"#,
        ),
    ] {
        let (status, body) = serve.put_json(&path, body).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // A refused edit is not kept.
    let (status, _) = serve
        .put_json(
            "/api/v1/bridges/no-such-bridge/capacity",
            r#"{"capacity": 3}"#,
        )
        .await;
    assert_eq!(status, 404);

    // SIGHUP re-reads the file (which says capacity 2): the edits stay.
    sighup_and_wait(&serve).await;
    let n = number(&serve, USER_NUMBER).await.unwrap();
    assert_eq!(n["capacity"], 5, "{n}");
    assert!(!bridge_enabled(&serve, "fabrikam-bridge").await);
    assert_eq!(
        number(&serve, SPARE).await.unwrap()["bridge"],
        "contoso-bridge"
    );
    let edits = json(&serve, "/api/v1/plan/edits").await;
    assert_eq!(edits["edits"].as_array().unwrap().len(), 3, "{edits}");
    assert!(
        edits["edits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["conflict"].is_null()),
        "{edits}"
    );

    // A new file without the spare number: its assignment conflicts, is listed, kept.
    let renamed = config
        .clone()
        .replace(&format!("e164 = \"{SPARE}\""), "e164 = \"+14255550998\"");
    std::fs::write(dir.join("bridge.toml"), renamed.text()).unwrap();
    sighup_and_wait(&serve).await;
    assert!(number(&serve, SPARE).await.is_none());
    let edits = json(&serve, "/api/v1/plan/edits").await;
    let conflicted: Vec<&Value> = edits["edits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["conflict"].is_null())
        .collect();
    assert_eq!(conflicted.len(), 1, "{edits}");
    assert_eq!(conflicted[0]["target"], SPARE);
    assert!(
        serve
            .log()
            .contains("admin edit conflicts with the configuration")
    );
    assert_eq!(number(&serve, USER_NUMBER).await.unwrap()["capacity"], 5);

    // A crash and a restart on the same files: every edit is back, the conflict too.
    serve.kill_keeping_files();
    let serve = start(&renamed, admin_addr, &dir).await;
    assert_eq!(number(&serve, USER_NUMBER).await.unwrap()["capacity"], 5);
    assert!(!bridge_enabled(&serve, "fabrikam-bridge").await);
    let edits = json(&serve, "/api/v1/plan/edits").await;
    assert_eq!(edits["edits"].as_array().unwrap().len(), 3, "{edits}");
    assert_eq!(
        edits["edits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| !e["conflict"].is_null())
            .count(),
        1
    );
}
