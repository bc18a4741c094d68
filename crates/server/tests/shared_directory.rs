//! Two bridge processes sharing the organiser directory through a real PostgreSQL
//! (`[shared] postgres`): an organiser an administrator imports through node A's admin
//! API is shown by node B's, and a caller dialling node B keys the new conference ID and
//! its leader PIN and is in the meeting there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use dialbridge_testkit::caller::{CALLING, caller, place, tone};
use dialbridge_testkit::scratch_dir;
use dialbridge_testkit::serve::{Serve, toml_string};
use dialbridge_testkit::servers::PostgresDb;

/// Lee, a new organiser of contoso with a conference ID no demo organiser has.
const LEE: &str =
    "tenant,organiser,display_name,toll_number,toll_free_number,conference_id,pin,wait_for_leader
contoso,lee@contoso.com,Lee Gu,+14255550100,,246813579,4321,no
";

struct Node {
    serve: Serve,
    sip: SocketAddr,
}

/// A bridge process with the demo's config, its directory (and ledger) in `postgres`.
async fn start_node(dir: &Path, postgres: &PostgresDb, name: &str) -> Node {
    let shared = [
        format!("postgres = {}", toml_string(postgres.url())),
        format!("node = {}", toml_string(name)),
    ];
    let bin = env!("CARGO_BIN_EXE_dialbridge").as_ref();
    let (serve, sip) = Serve::start_demo(bin, dir, |c| c.add_table("shared", &shared)).await;
    Node { serve, sip }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organiser_imported_through_one_node_is_found_by_a_call_to_another() {
    let postgres = PostgresDb::create();
    let a = start_node(&scratch_dir("shared-directory-a"), &postgres, "node-a").await;
    let b = start_node(&scratch_dir("shared-directory-b"), &postgres, "node-b").await;
    let (status, body) = b
        .serve
        .get("/api/v1/organisers/contoso/lee@contoso.com")
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = a.serve.post_json("/api/v1/organisers/import", LEE).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"added\":1"), "{body}");
    let (status, body) = b
        .serve
        .get("/api/v1/organisers/contoso/lee@contoso.com")
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"conference_id\":\"246813579\""), "{body}");

    // Lee calls node B and keys the conference ID, then the leader PIN.
    let script = "wait 500ms, keys 246813579#, wait 1500ms, keys 4321#";
    let call = tokio::spawn(place(
        b.sip,
        "127.0.0.20",
        caller("+33170000100", tone(440.0), script, Duration::from_secs(4)),
    ));
    let mut joined = false;
    for _ in 0..150 {
        if b.serve
            .in_meeting("246813579")
            .await
            .iter()
            .any(|u| u == CALLING)
        {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(joined, "the caller never joined:\n{}", b.serve.log());
    let outcome = call.await.unwrap();
    assert!(outcome.answered(), "{:?}", outcome.status);

    for node in [&a, &b] {
        let log = node.serve.log();
        let open = log
            .lines()
            .find(|l| l.contains("directory open"))
            .unwrap_or_else(|| panic!("no \"directory open\" line:\n{log}"));
        assert!(open.contains("backend=\"postgres\""), "{open}");
        // The target without a password: user@host:port/database.
        let target = postgres.url().trim_start_matches("postgres://");
        assert!(open.contains(&format!("database={target}")), "{open}");
        assert!(!log.contains("4321"), "a PIN in the log:\n{log}");
    }
}
