//! Per-conference settings: join and leave tones turned on or off for one organiser's
//! conference through the admin API (`GET`/`PATCH /api/v1/organisers/{tenant}/{organiser}`),
//! the directory lookup the IVR uses reflecting it, and end to end, a caller joining a
//! meeting whose tones are off hearing no join chime where one joining with tones on
//! hears it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialbridge_conference::directory::{Directory, Provider};
use dialbridge_conference::ivr::{ConferenceId, ConferenceKey, TenantId};
use dialbridge_conference::room::MemberId;
use dialbridge_router::Router;
use dialbridge_server::Gauges;
use dialbridge_server::admin::{
    self, AdminState, ConferenceView, LiveCalls, LiveError, LiveFuture,
};
use dialbridge_server::cdr::CdrStore;
use dialbridge_server::config::Config;
use dialbridge_server::metrics::MetricsSources;
use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::audio::goertzel_power;
use dialbridge_testkit::caller::{JOIN_ADELE, caller, place};
use dialbridge_testkit::wait_until;
use reqwest::{Method, StatusCode};
use sbc_sim::rtp::Source;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const TOKEN: &str = "demo-admin-token";
const ADELE: &str = "/api/v1/organisers/contoso/adele@contoso.com";
const TELCO_A: &str = "127.0.0.20";
/// Telco A's number on contoso's bridge (shared/DEMO.md).
const TELCO_A_NUMBER: &str = "+33170000100";

/// No meetings: these tests do not use the live routes.
struct NoLive;

impl LiveCalls for NoLive {
    fn list_conferences(&self) -> LiveFuture<'_, Vec<ConferenceView>> {
        Box::pin(async { Vec::new() })
    }

    fn mute(&self, participant: MemberId, _muted: bool) -> LiveFuture<'_, Result<(), LiveError>> {
        Box::pin(async move { Err(LiveError::NoSuchParticipant(participant.0)) })
    }

    fn kick(&self, participant: MemberId) -> LiveFuture<'_, Result<(), LiveError>> {
        Box::pin(async move { Err(LiveError::NoSuchParticipant(participant.0)) })
    }

    fn lock(
        &self,
        conference: ConferenceKey,
        _locked: bool,
    ) -> LiveFuture<'_, Result<(), LiveError>> {
        Box::pin(async move {
            Err(LiveError::NoSuchConference {
                tenant: conference.tenant.as_str().to_owned(),
                id: conference.id.as_str().to_owned(),
            })
        })
    }
}

/// The admin API over the demo organisers, with the directory at hand.
struct Api {
    addr: SocketAddr,
    client: reqwest::Client,
    directory: Directory,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Api {
    async fn start() -> Api {
        let config = Config::demo().unwrap();
        let router = Router::new(dialbridge_server::plan_from(&config).unwrap());
        let directory = Directory::open(":memory:").unwrap();
        let organisers = std::fs::File::open(config.directory.import.as_ref().unwrap()).unwrap();
        directory
            .import_csv(organisers, &Provider::dialbridge())
            .unwrap();
        let state = AdminState::new(
            &config,
            router.clone(),
            directory.clone(),
            CdrStore::open(":memory:").unwrap(),
            Arc::new(NoLive),
            MetricsSources::new(router, Arc::new(Gauges::default())),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(admin::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Api {
            addr,
            client: reqwest::Client::new(),
            directory,
            stop,
            task,
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        request(&self.client, self.addr, TOKEN, method, path)
    }

    /// What the IVR's lookup of adele's conference says about the tones.
    fn adele_tones(&self) -> Option<bool> {
        let id = ConferenceId::parse("123456789").unwrap();
        self.directory
            .lookup(&TenantId::new("contoso"), &id)
            .unwrap()
            .unwrap()
            .join_leave_tones
    }

    async fn export(&self) -> String {
        let resp = self
            .req(Method::GET, "/api/v1/organisers/export.csv")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

fn request(
    client: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
    method: Method,
    path: &str,
) -> reqwest::RequestBuilder {
    client
        .request(method, format!("http://{addr}{path}"))
        .bearer_auth(token)
}

/// Sends and reads the JSON answer.
async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{status}: {ct:?}");
    (status, resp.json().await.unwrap())
}

/// A refusal: the status, and an `error` message containing `needle`.
#[track_caller]
fn refused((status, body): (StatusCode, Value), want: StatusCode, needle: &str) {
    assert_eq!(status, want, "{body}");
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"));
    assert!(error.contains(needle), "{error:?} lacks {needle:?}");
}

fn adele_with(tones: Value) -> Value {
    json!({"tenant": "contoso", "organiser": "adele@contoso.com",
           "display_name": "Adele Vance", "toll_number": "+14255550100",
           "toll_free_number": "+18885550100", "conference_id": "123456789",
           "wait_for_leader": false, "provider": "dialbridge",
           "join_leave_tones": tones})
}

#[tokio::test]
async fn tones_are_set_per_conference_and_the_lookup_follows() {
    let api = Api::start().await;
    let exported = api.export().await;
    let (status, body) = send(api.req(Method::GET, ADELE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        adele_with(Value::Null),
        "the bridge's default at first"
    );
    assert_eq!(api.adele_tones(), None);

    let patch = |body: Value| send(api.req(Method::PATCH, ADELE).json(&body));
    let (status, body) = patch(json!({"join_leave_tones": false})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, adele_with(json!(false)));
    assert_eq!(api.adele_tones(), Some(false));
    assert_eq!(
        send(api.req(Method::GET, ADELE)).await.1,
        adele_with(json!(false))
    );
    // Only adele's conference changed.
    let megan = api
        .directory
        .lookup(
            &TenantId::new("contoso"),
            &ConferenceId::parse("987654321").unwrap(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(megan.join_leave_tones, None);
    // The provider's file is as it was, and importing it again keeps the setting.
    assert_eq!(api.export().await, exported);
    let (status, body) = send(
        api.req(Method::POST, "/api/v1/organisers/import")
            .header("content-type", "text/csv")
            .body(exported.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.adele_tones(), Some(false));

    // Bad requests change nothing.
    refused(
        patch(json!({})).await,
        StatusCode::BAD_REQUEST,
        "nothing to change",
    );
    refused(
        patch(json!({"join_leave_tones": "off"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "join_leave_tones",
    );
    refused(
        patch(json!({"join_leave_tones": true, "beep": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "beep",
    );
    refused(
        patch(json!([true])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "",
    );
    refused(
        send(
            api.req(Method::PATCH, ADELE)
                .header("content-type", "application/json")
                .body("{\"join_leave_tones\": tru"),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "",
    );
    refused(
        send(
            api.req(Method::PATCH, ADELE)
                .body("{\"join_leave_tones\": true}"),
        )
        .await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "",
    );
    refused(
        send(
            api.req(
                Method::PATCH,
                "/api/v1/organisers/fabrikam/adele@contoso.com",
            )
            .json(&json!({"join_leave_tones": true})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "adele@contoso.com",
    );
    refused(
        send(api.req(Method::GET, "/api/v1/organisers/contoso/nobody@contoso.com")).await,
        StatusCode::NOT_FOUND,
        "nobody@contoso.com",
    );
    refused(
        send(
            api.req(Method::PATCH, "/api/v1/organisers/contoso/adele%20vance")
                .json(&json!({"join_leave_tones": true})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "organiser",
    );
    assert_eq!(api.adele_tones(), Some(false));

    let (status, body) = patch(json!({"join_leave_tones": true})).await;
    assert_eq!((status, body), (StatusCode::OK, adele_with(json!(true))));
    assert_eq!(api.adele_tones(), Some(true));
    let (status, body) = patch(json!({"join_leave_tones": null})).await;
    assert_eq!((status, body), (StatusCode::OK, adele_with(Value::Null)));
    assert_eq!(api.adele_tones(), None);
    // Without the token, nothing.
    let resp = api
        .client
        .patch(format!("http://{}{ADELE}", api.addr))
        .json(&json!({"join_leave_tones": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.adele_tones(), None);
    api.stop().await;
}

/// Samples per analysis block: 20 ms at 8 kHz.
const BLOCK: usize = 160;

/// Which of `freqs` holds over 40% of a 20 ms block's energy, if any (the chime may
/// overlap the start of a prompt).
fn dominant(block: &[i16], freqs: &[f64]) -> Option<f64> {
    let energy: f64 = block.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    if energy < 1e5 * block.len() as f64 {
        // Quieter than about -50 dBFS: no note here.
        return None;
    }
    // `goertzel_power` is normalised by N²; a pure sine's is its energy / (2N).
    let full = energy / (2.0 * block.len() as f64);
    freqs
        .iter()
        .copied()
        .find(|&f| goertzel_power(block, 8000.0, f) > 0.4 * full)
}

/// Where each chime of `first` then `second` Hz starts in `heard`, in 20 ms blocks: at
/// least 3 blocks of the first note followed at once (one transition block allowed) by
/// at least 3 of the second. The join chime is 600 Hz for 120 ms then 900 Hz for
/// 160 ms, the leave chime the other way round.
fn find_chimes(heard: &[i16], first: f64, second: f64) -> Vec<usize> {
    let notes: Vec<Option<f64>> = heard
        .chunks_exact(BLOCK)
        .map(|b| dominant(b, &[600.0, 900.0]))
        .collect();
    let run = |from: usize, hz: f64| {
        notes
            .iter()
            .skip(from)
            .take_while(|n| **n == Some(hz))
            .count()
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < notes.len() {
        let low = run(i, first);
        if low >= 3 && (0..=1).any(|skip| run(i + low + skip, second) >= 3) {
            found.push(i);
        }
        i += low.max(1);
    }
    found
}

fn find_join_chime(heard: &[i16]) -> Option<usize> {
    find_chimes(heard, 600.0, 900.0).first().copied()
}

#[test]
fn the_chime_finder_finds_the_join_beep_and_nothing_else() {
    let beep = dialbridge_media::Tone::join_beep();
    let leave = dialbridge_media::Tone::leave_beep();
    let samples = |p: &dialbridge_media::Prompt| p.samples().to_vec();
    let silence = vec![0i16; 800];
    let heard = [silence.clone(), samples(&beep), silence.clone()].concat();
    assert_eq!(find_join_chime(&heard), Some(5));
    assert_eq!(
        find_join_chime(&[silence.clone(), samples(&leave)].concat()),
        None
    );
    assert_eq!(find_join_chime(&silence), None);
    let twice = [heard.clone(), samples(&leave), heard, samples(&leave)].concat();
    assert_eq!(find_chimes(&twice, 600.0, 900.0), [5, 43]);
    assert_eq!(find_chimes(&twice, 900.0, 600.0), [24, 62]);
}

/// Adele's meeting joined by one caller keying through Telco A; what it heard, once
/// the bridge has admitted it to the mix.
async fn join_adele_alone(bridge: &TestBridge) -> Vec<i16> {
    let call = caller(
        TELCO_A_NUMBER,
        Source::Silence,
        &format!("{JOIN_ADELE}, wait 3s"),
        Duration::from_millis(500),
    );
    let outcome = tokio::spawn(place(bridge.sip_addr(), TELCO_A, call));
    wait_until(
        "the caller in the mix",
        || bridge.participants() == 1,
        Duration::from_secs(15),
    )
    .await;
    let outcome = outcome.await.unwrap();
    assert!(outcome.answered(), "{:?}", outcome.failures);
    // 0.5 s + 10 keys + 1.5 s + 1 key + 3 s.
    assert!(
        outcome.heard.len() > 8000 * 6,
        "heard {}",
        outcome.heard.len()
    );
    wait_until(
        "the meeting over",
        || bridge.meetings() == 0,
        Duration::from_secs(5),
    )
    .await;
    outcome.heard
}

async fn set_adele_tones(bridge: &TestBridge, tones: Value) {
    let req = request(
        &reqwest::Client::new(),
        bridge.admin_addr(),
        bridge.admin_token(),
        Method::PATCH,
        ADELE,
    );
    let (status, body) = send(req.json(&json!({ "join_leave_tones": tones }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["join_leave_tones"], tones);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_joining_a_meeting_with_tones_off_hears_no_join_chime() {
    // The demo bridge beeps by default; adele's meeting is set not to.
    let bridge = TestBridge::start(demo_config()).await;
    set_adele_tones(&bridge, json!(false)).await;
    let heard = join_adele_alone(&bridge).await;
    assert_eq!(find_join_chime(&heard), None, "a join chime with tones off");

    // Back to the bridge's default: the next caller hears it.
    set_adele_tones(&bridge, Value::Null).await;
    let heard = join_adele_alone(&bridge).await;
    let at = find_join_chime(&heard).expect("the join chime with the default");
    // After the final `#`, sent 0.5 + 1.6 + 1.5 s in.
    assert!(at as f64 * 0.02 > 3.5, "join chime at {} blocks", at);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_set_to_beep_beeps_on_a_bridge_that_does_not() {
    let mut config = demo_config();
    config.conference.join_leave_tones = false;
    let bridge = TestBridge::start(config).await;
    let heard = join_adele_alone(&bridge).await;
    assert_eq!(find_join_chime(&heard), None, "the bridge's default is off");

    set_adele_tones(&bridge, json!(true)).await;
    let heard = join_adele_alone(&bridge).await;
    assert!(
        find_join_chime(&heard).is_some(),
        "no join chime with tones on"
    );
    bridge.stop().await;
}

/// A caller who joins adele's meeting and leaves a second later; returns once the
/// meeting has seen both.
async fn join_and_leave(bridge: &TestBridge, present: usize) {
    let call = caller(
        TELCO_A_NUMBER,
        Source::Silence,
        &format!("{JOIN_ADELE}, wait 1s"),
        Duration::from_millis(200),
    );
    let outcome = tokio::spawn(place(bridge.sip_addr(), TELCO_A, call));
    wait_until(
        "the caller in the mix",
        || bridge.participants() == present + 1,
        Duration::from_secs(15),
    )
    .await;
    let outcome = outcome.await.unwrap();
    assert!(outcome.answered(), "{:?}", outcome.failures);
    wait_until(
        "the caller gone",
        || bridge.participants() == present,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tones_off_nobody_hears_others_come_and_go_until_they_are_back_on() {
    let bridge = TestBridge::start(demo_config()).await;
    set_adele_tones(&bridge, json!(false)).await;
    let start = Instant::now();
    // A stays throughout, hearing B come and go with tones off, then C with tones on.
    let a = tokio::spawn(place(
        bridge.sip_addr(),
        TELCO_A,
        caller(
            TELCO_A_NUMBER,
            Source::Silence,
            &format!("{JOIN_ADELE}, wait 16s"),
            Duration::from_millis(200),
        ),
    ));
    wait_until(
        "A in the mix",
        || bridge.participants() == 1,
        Duration::from_secs(15),
    )
    .await;
    join_and_leave(&bridge, 1).await;
    // The meeting in progress takes the new setting with the next joiner.
    set_adele_tones(&bridge, json!(true)).await;
    let switched = start.elapsed().as_secs_f64();
    join_and_leave(&bridge, 1).await;
    let a = a.await.unwrap();
    assert!(a.answered(), "{:?}", a.failures);
    assert!(
        a.heard.len() as f64 > 8000.0 * (start.elapsed().as_secs_f64() - 1.0),
        "A hung up early: heard {} samples",
        a.heard.len()
    );
    // A's recording starts a little after `start`, so a chime at block n was heard
    // at most n × 20 ms after `start` plus the call set-up.
    let joins = find_chimes(&a.heard, 600.0, 900.0);
    let leaves = find_chimes(&a.heard, 900.0, 600.0);
    assert_eq!(joins.len(), 1, "only C's join chime: {joins:?}");
    assert_eq!(leaves.len(), 1, "only C's leave chime: {leaves:?}");
    let at = |block: usize| block as f64 * 0.02;
    assert!(
        at(joins[0]) > switched - 0.5 && at(leaves[0]) > at(joins[0]),
        "tones on at {switched:.2} s, join chime at {:.2} s, leave chime at {:.2} s",
        at(joins[0]),
        at(leaves[0])
    );
    bridge.stop().await;
}
