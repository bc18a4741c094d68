//! The admin API on live meetings: two callers in adele's meeting are listed with their
//! roles and numbers; an administrator mutes one and removes the other, whose call the
//! bridge then ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::caller::{JOIN_ADELE, caller, place, tone};
use dialbridge_testkit::wait_until;
use sbc_sim::{CallOutcome, EndedBy};
use serde_json::Value;

async fn participant(bridge: std::net::SocketAddr, hold: Duration, kicked: bool) -> CallOutcome {
    let mut config = caller("+33170000100", tone(440.0), JOIN_ADELE, hold);
    config.expect.bridge_hangs_up = kicked;
    place(bridge, "127.0.0.20", config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_lists_mutes_and_removes_participants() {
    let bridge = TestBridge::start(demo_config()).await;
    let sip = bridge.sip_addr();
    let stays = tokio::spawn(participant(sip, Duration::from_secs(12), false));
    let leaves = tokio::spawn(participant(sip, Duration::from_secs(20), true));
    wait_until(
        "two in the mix",
        || bridge.participants() == 2,
        Duration::from_secs(15),
    )
    .await;

    let http = reqwest::Client::new();
    let base = format!("http://{}", bridge.admin_addr());
    let auth = format!("Bearer {}", bridge.admin_token());
    let list = || async {
        http.get(format!("{base}/api/v1/conferences"))
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let listed = list().await;
    let meeting = &listed["conferences"][0];
    assert_eq!(meeting["tenant"], "contoso", "{listed}");
    assert_eq!(meeting["conference_id"], "123456789");
    let people = meeting["participants"].as_array().unwrap();
    assert_eq!(people.len(), 2, "{listed}");
    assert!(
        people
            .iter()
            .all(|p| p["dialled"] == "+33170000100" && p["role"] == "participant")
    );
    // Both send a steady tone: once their audio reaches the mix, they are talking.
    let mut talking = false;
    for _ in 0..50 {
        let now = list().await;
        let people = now["conferences"][0]["participants"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if people.len() == 2 && people.iter().all(|p| p["talking"] == true) {
            talking = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(talking, "both callers shown talking: {}", list().await);
    let first = people[0]["id"].as_u64().unwrap();
    let second = people[1]["id"].as_u64().unwrap();

    let muted = http
        .post(format!("{base}/api/v1/participants/{first}/mute"))
        .header("Authorization", &auth)
        .json(&serde_json::json!({ "muted": true }))
        .send()
        .await
        .unwrap();
    assert!(
        muted.status().is_success(),
        "{}",
        muted.text().await.unwrap()
    );
    let listed = list().await;
    let p = listed["conferences"][0]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == first)
        .cloned()
        .unwrap();
    assert_eq!(p["muted"], true, "{listed}");

    let kicked = http
        .post(format!("{base}/api/v1/participants/{second}/kick"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert!(
        kicked.status().is_success(),
        "{}",
        kicked.text().await.unwrap()
    );
    wait_until(
        "the kicked call ended",
        || bridge.calls_in_progress() == 1,
        Duration::from_secs(5),
    )
    .await;
    let unknown = http
        .post(format!("{base}/api/v1/participants/999999/kick"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    // Which sbc-sim call was kicked depends on join order: one was ended by the bridge.
    let (stays, leaves) = (stays.await.unwrap(), leaves.await.unwrap());
    let ended: Vec<EndedBy> = vec![stays.ended_by, leaves.ended_by];
    assert!(ended.contains(&EndedBy::Bridge), "{ended:?}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ended_call_has_its_detail_record() {
    let bridge = TestBridge::start(demo_config()).await;
    dialbridge_testkit::sipp::Sipp::new(
        "uac-call.xml",
        bridge.sip_addr(),
        dialbridge_testkit::ip("127.0.0.10"),
        "+18885550100",
    )
    .hold(Duration::from_millis(500))
    .passes()
    .await;
    let http = reqwest::Client::new();
    let records: Value = http
        .get(format!("http://{}/api/v1/cdrs", bridge.admin_addr()))
        .header("Authorization", format!("Bearer {}", bridge.admin_token()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = records["cdrs"]
        .as_array()
        .unwrap_or_else(|| panic!("{records}"));
    assert_eq!(list.len(), 1, "{records}");
    let cdr = &list[0];
    assert_eq!(cdr["dialled"], "+18885550100");
    assert_eq!(cdr["trunk"], "microsoft-pstn");
    assert_eq!(cdr["tenant"], "contoso");
    assert_eq!(cdr["charge"], "toll-free");
    assert_eq!(cdr["ended_by"], "caller");
    assert_eq!(cdr["sip_status"], 200);
    let metrics = http
        .get(format!("http://{}/metrics", bridge.admin_addr()))
        .header("Authorization", format!("Bearer {}", bridge.admin_token()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dialbridge_call_setup_seconds_count 1"),
        "the call's setup latency is measured:\n{metrics}"
    );
    assert!(
        metrics.contains("dialbridge_router_admitted_total 1"),
        "{metrics}"
    );
    bridge.stop().await;
}
