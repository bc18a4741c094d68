//! Dial-out end to end with real sockets: a leader keys `*9` and a number in a meeting
//! of the demo bridge, the bridge places it on the trunk its tenant's route allows, and
//! sbc-sim's answerer — standing at that trunk's outbound target, 127.0.0.x:5080 as the
//! demo names them — answers, keys 1 after the invitation, and talks. The two hear each
//! other through the meeting's mix. The tests share the demo's outbound addresses, so
//! each runs its scenarios one after another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::answerer::Answerer;
use dialbridge_testkit::audio::goertzel_power;
use dialbridge_testkit::caller::{assert_hears, caller, place, tone};
use dialbridge_testkit::sipp::Sipp;
use sbc_sim::CallOutcome;
use serde_json::Value;

const MICROSOFT_PSTN: &str = "127.0.0.10";
const TELCO_A: &str = "127.0.0.20";

/// The tests stand at the demo's fixed outbound targets: one at a time.
static TARGETS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A GET of the admin API, as JSON.
async fn get(bridge: &TestBridge, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{}{path}", bridge.admin_addr()))
        .bearer_auth(bridge.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits (bounded) until `what` holds of the admin API's answer at `path`.
async fn until(
    bridge: &TestBridge,
    path: &str,
    what: &str,
    holds: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = get(bridge, path).await;
        if holds(&body) {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// adele's meeting's dial-outs, as the admin API lists them.
async fn dial_outs(bridge: &TestBridge) -> Value {
    reqwest::Client::new()
        .get(format!(
            "http://{}/api/v1/conferences/contoso/123456789/dial-outs",
            bridge.admin_addr()
        ))
        .bearer_auth(bridge.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A participant of adele's meeting (through Telco A) talking 440 Hz for `hold`, once
/// the bridge has it in the mix.
async fn adele_participant(
    bridge: &TestBridge,
    hold: Duration,
) -> tokio::task::JoinHandle<CallOutcome> {
    let script = "wait 500ms, keys 123456789#, wait 1500ms, keys #";
    let participant = tokio::spawn(place(
        bridge.sip_addr(),
        TELCO_A,
        caller("+33170000100", tone(440.0), script, hold),
    ));
    dialbridge_testkit::wait_until(
        "the participant in the mix",
        || bridge.participants() == 1,
        Duration::from_secs(15),
    )
    .await;
    participant
}

/// An admin's dial-out from adele's meeting to `number`: its id (202).
async fn api_dial_out(bridge: &TestBridge, number: &str) -> u64 {
    let placed = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/conferences/contoso/123456789/dial-out",
            bridge.admin_addr()
        ))
        .bearer_auth(bridge.admin_token())
        .json(&serde_json::json!({ "number": number }))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 202);
    placed.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_dials_out_and_the_called_party_joins_and_they_hear_each_other() {
    let _one_at_a_time = TARGETS.lock().await;
    let bridge = TestBridge::start(demo_config()).await;
    // The US number goes out on contoso's first trunk, the Microsoft PSTN's target.
    let far = Answerer::start(&[
        "--listen",
        "127.0.0.10:5080",
        "--calls",
        "1",
        "--timeout",
        "40s",
        "--ring-ms",
        "300",
        "--tone-hz",
        "1000",
        "--key",
        "1",
        "--expect-tone",
        "440",
        "--hold-ms",
        "12000",
    ])
    .await;
    // adele's meeting as its leader, then *9 and the number: the leader talks 440 Hz.
    let pool_left = |b: &Value| b["pools"][0]["minutes_left"].as_u64().unwrap();
    let before = pool_left(&get(&bridge, "/api/v1/tenants/contoso/balance").await);
    let script = "wait 500ms, keys 123456789#, wait 1500ms, keys 13579#, wait 3s, \
                  keys *914255557000#";
    let leader = place(
        bridge.sip_addr(),
        MICROSOFT_PSTN,
        caller("+14255550100", tone(440.0), script, Duration::from_secs(14)),
    )
    .await;
    // The leader heard the far end's 1000 Hz through the meeting.
    assert_hears("leader", &leader, 1000.0, "");
    let answered = far.finish().await;
    assert!(
        answered.passed(),
        "{:?}\n{}",
        answered.summary,
        answered.log
    );
    let report = answered.the_call();
    assert_eq!(report.to, "+14255557000", "{report:?}");
    assert_eq!(report.keyed.as_deref(), Some("1"), "{report:?}");
    let listed = dial_outs(&bridge).await;
    let views = listed["dial_outs"].as_array().unwrap();
    assert_eq!(views.len(), 1, "{listed}");
    assert_eq!(views[0]["trunk"], "microsoft-pstn", "{listed}");
    assert_eq!(views[0]["requested_by"], "leader", "{listed}");
    // The dial-out (under a minute, answered) took one minute of contoso's US pool.
    let after = until(
        &bridge,
        "/api/v1/tenants/contoso/balance",
        "the minute settled",
        |b| b["reserved"] == "0.00" && pool_left(b) < before,
    )
    .await;
    assert_eq!(before - pool_left(&after), 1, "{after}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_first_trunk_down_an_api_dial_out_leaves_through_the_next() {
    let _one_at_a_time = TARGETS.lock().await;
    let mut config = demo_config();
    config.trunk_health.interval = Duration::from_millis(200);
    config.trunk_health.timeout = Duration::from_millis(300);
    let bridge = TestBridge::start(config).await;
    // The Microsoft PSTN's target is out of service (OPTIONS 503) and takes no call;
    // Telco A's answers, keys 1 and talks 1000 Hz.
    let microsoft = Answerer::start(&[
        "--listen",
        "127.0.0.10:5080",
        "--calls",
        "0",
        "--options",
        "503",
        "--timeout",
        "60s",
    ])
    .await;
    let telco_a = Answerer::start(&[
        "--listen",
        "127.0.0.20:5080",
        "--calls",
        "1",
        "--timeout",
        "40s",
        "--ring-ms",
        "200",
        "--tone-hz",
        "1000",
        "--key",
        "1",
        "--expect-tone",
        "440",
        "--hold-ms",
        "6000",
    ])
    .await;
    until(&bridge, "/api/v1/trunks", "microsoft-pstn down", |b| {
        b["trunks"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["name"] == "microsoft-pstn" && t["health"] == "down")
        })
    })
    .await;
    // A participant of adele's meeting talks 440 Hz; the admin dials out for it.
    let participant = adele_participant(&bridge, Duration::from_secs(20)).await;
    let id = api_dial_out(&bridge, "+14255557000").await;
    let http = reqwest::Client::new();
    let url = format!(
        "http://{}/api/v1/conferences/contoso/123456789/dial-out",
        bridge.admin_addr()
    );

    let answered = telco_a.finish().await;
    assert!(
        answered.passed(),
        "{:?}\n{}",
        answered.summary,
        answered.log
    );
    assert_eq!(answered.the_call().to, "+14255557000");
    let view = get(&bridge, &format!("/api/v1/dial-outs/{id}")).await;
    assert_eq!(view["trunk"], "telco-a", "{view}");
    assert_eq!(
        view["tried"],
        serde_json::json!(["telco-a"]),
        "the down trunk is skipped: {view}"
    );
    assert_eq!(view["requested_by"], "api");
    let skipped = microsoft.stop().await;
    assert_eq!(
        skipped.summary.calls, 0,
        "nothing left through a trunk that is down"
    );
    let _ = participant.await;

    // A refusal names its reason: not a number, and no such meeting.
    let bad = http
        .post(&url)
        .bearer_auth(bridge.admin_token())
        .json(&serde_json::json!({"number": "14255557000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let gone = http
        .post(format!(
            "http://{}/api/v1/conferences/contoso/987654321/dial-out",
            bridge.admin_addr()
        ))
        .bearer_auth(bridge.admin_token())
        .json(&serde_json::json!({"number": "+14255557000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    bridge.stop().await;
}

/// sipp, a peer we did not write, as the called party: it answers the bridge's INVITE,
/// talks 440 Hz, presses 1 (RFC 4733) in the middle of the invitation, and talks on.
/// The leader hears it through the meeting; the bridge's BYE (its drain) ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_answers_a_dial_out_presses_1_and_is_heard_in_the_meeting() {
    let _one_at_a_time = TARGETS.lock().await;
    let bridge = TestBridge::start(demo_config()).await;
    let target: std::net::SocketAddr = "127.0.0.10:5080".parse().unwrap();
    let uas = Sipp::new(
        "uas-dialout-key1.xml",
        bridge.sip_addr(),
        target.ip(),
        "dialout",
    )
    .args(&["-p", "5080"])
    .timeout(Duration::from_secs(60));
    let uas = tokio::spawn(async move { uas.run().await });
    dialbridge_testkit::wait_until(
        "sipp bound at the trunk's target",
        || std::net::UdpSocket::bind(target).is_err(),
        Duration::from_secs(10),
    )
    .await;
    let script = "wait 500ms, keys 123456789#, wait 1500ms, keys 13579#, wait 3s, \
                  keys *914255557000#";
    let leader = place(
        bridge.sip_addr(),
        MICROSOFT_PSTN,
        caller(
            "+14255550100",
            tone(1000.0),
            script,
            Duration::from_secs(12),
        ),
    )
    .await;
    assert!(leader.answered(), "{:?}", leader.failures);
    // sipp's 440 Hz, in some second of what the leader heard after keying.
    let loudest = leader
        .heard
        .chunks(8000)
        .map(|second| goertzel_power(second, 8000.0, 440.0))
        .fold(0.0, f64::max);
    assert!(loudest > 100.0, "the leader never heard sipp: {loudest:.1}");
    let listed = dial_outs(&bridge).await;
    let view = &listed["dial_outs"][0];
    assert_eq!(view["state"], "joined", "{listed}");
    // The drain ends the dial-out with BYE, which ends sipp's scenario.
    bridge.stop().await;
    let sipp = uas.await.unwrap();
    assert!(sipp.passed(), "sipp:\n{}", sipp.log);
}

/// fabrikam (Operator Connect Conferencing: operator trunks only) has no credits and no
/// pool: its dial-out is refused; topped up through the API, it leaves through Telco B,
/// never through the Microsoft PSTN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrikam_dials_out_through_telco_b_once_topped_up() {
    let _one_at_a_time = TARGETS.lock().await;
    let bridge = TestBridge::start(demo_config()).await;
    let microsoft = Answerer::start(&[
        "--listen",
        "127.0.0.10:5080",
        "--calls",
        "0",
        "--timeout",
        "60s",
    ])
    .await;
    let telco_b = Answerer::start(&[
        "--listen",
        "127.0.0.30:5080",
        "--calls",
        "1",
        "--timeout",
        "40s",
        "--ring-ms",
        "200",
        "--key",
        "1",
        "--hold-ms",
        "3000",
    ])
    .await;
    // ravi's meeting, through Telco B's number.
    let script = "wait 500ms, keys 555000111#, wait 1500ms, keys #";
    let participant = tokio::spawn(place(
        bridge.sip_addr(),
        "127.0.0.30",
        caller(
            "+493070000100",
            tone(440.0),
            script,
            Duration::from_secs(20),
        ),
    ));
    dialbridge_testkit::wait_until(
        "the participant in the mix",
        || bridge.participants() == 1,
        Duration::from_secs(15),
    )
    .await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", bridge.admin_addr());
    let dial = || async {
        http.post(format!(
            "{base}/api/v1/conferences/fabrikam/555000111/dial-out"
        ))
        .bearer_auth(bridge.admin_token())
        .json(&serde_json::json!({"number": "+4930123456"}))
        .send()
        .await
        .unwrap()
    };
    let refused = dial().await;
    assert_eq!(refused.status(), 402, "no credits, no pool");
    let why: Value = refused.json().await.unwrap();
    assert!(
        why["error"].as_str().unwrap().contains("no_credits"),
        "{why}"
    );
    let topped = http
        .post(format!("{base}/api/v1/tenants/fabrikam/credits"))
        .bearer_auth(bridge.admin_token())
        .json(&serde_json::json!({"amount": "5.00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(topped.status(), 200);
    let placed = dial().await;
    assert_eq!(placed.status(), 202);
    let answered = telco_b.finish().await;
    assert!(
        answered.passed(),
        "{:?}\n{}",
        answered.summary,
        answered.log
    );
    assert_eq!(answered.the_call().to, "+4930123456");
    assert_eq!(
        microsoft.stop().await.summary.calls,
        0,
        "never through Microsoft"
    );
    // A started minute at +49's rate, 0.05 USD.
    let balance = until(
        &bridge,
        "/api/v1/tenants/fabrikam/balance",
        "the minute settled",
        |b| b["reserved"] == "0.00" && b["credits"] != "5.00",
    )
    .await;
    assert_eq!(balance["credits"], "4.95", "{balance}");
    let _ = participant.await;
    bridge.stop().await;
}

/// Two nodes share their trunks' capacity through a real Redis: the Microsoft trunk
/// (its sessions cut to 1) is held by a call on node A, so node B's dial-out, which
/// contoso's route sends to Microsoft first, finds it full on every node and leaves
/// through Telco A — though B itself carries nothing on Microsoft.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_out_whose_first_trunk_is_full_on_another_node_leaves_through_the_next() {
    let _one_at_a_time = TARGETS.lock().await;
    let redis = dialbridge_testkit::servers::Redis::start();
    let node = |name: &str| {
        let mut config = dialbridge_server::testing::demo_config_edited(|text| {
            text.replacen("max_sessions = 2000", "max_sessions = 1", 1)
        });
        config.shared.redis = Some(redis.url());
        config.shared.node = name.to_string();
        config
    };
    let (a, b) = (
        TestBridge::start(node("a")).await,
        TestBridge::start(node("b")).await,
    );
    // Node A's caller holds the Microsoft trunk's one session (once Redis takes claims).
    let mut held = None;
    for _ in 0..100 {
        let call = dialbridge_testkit::uac::call(
            a.sip_addr(),
            MICROSOFT_PSTN.parse().unwrap(),
            "+14255550100",
        )
        .await;
        if call.status == 200 {
            held = Some(call);
            break;
        }
        assert_eq!(call.status, 503, "{}", call.response);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let held = held.expect("a call on node A");
    let microsoft = Answerer::start(&[
        "--listen",
        "127.0.0.10:5080",
        "--calls",
        "0",
        "--timeout",
        "60s",
    ])
    .await;
    let telco_a = Answerer::start(&[
        "--listen",
        "127.0.0.20:5080",
        "--calls",
        "1",
        "--timeout",
        "40s",
        "--ring-ms",
        "200",
        "--tone-hz",
        "1000",
        "--key",
        "1",
        "--hold-ms",
        "3000",
    ])
    .await;
    // A participant of adele's meeting on node B; the admin dials out from there.
    let participant = adele_participant(&b, Duration::from_secs(15)).await;
    let id = api_dial_out(&b, "+14255557000").await;
    let answered = telco_a.finish().await;
    assert!(
        answered.passed(),
        "{:?}\n{}",
        answered.summary,
        answered.log
    );
    let view = get(&b, &format!("/api/v1/dial-outs/{id}")).await;
    assert_eq!(view["tried"], serde_json::json!(["telco-a"]), "{view}");
    assert_eq!(
        microsoft.stop().await.summary.calls,
        0,
        "nothing left through a trunk full on another node"
    );
    let _ = participant.await;
    assert_eq!(held.hang_up().await, 200);
    a.stop().await;
    b.stop().await;
}
