//! The admin HTTP API over a real socket: every route with good requests, refused
//! tokens and bad input, and the OpenAPI document against the router's routes; tokens
//! with roles, and route by route what a tenant admin, an operator and a read-only token
//! may see of what is not theirs; signing in with a session cookie.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use dialbridge_conference::directory::{Directory, Provider};
use dialbridge_conference::ivr::{ConferenceId, ConferenceKey, Pin, Role, TenantId};
use dialbridge_conference::room::MemberId;
use dialbridge_ledger::Ledger;
use dialbridge_router::{Charge, RejectReason, Router};
use dialbridge_server::Gauges;
use dialbridge_server::admin::{
    self, AdminState, ConferenceView, LiveCalls, LiveError, LiveFuture, ParticipantView,
};
use dialbridge_server::cdr::{Cdr, CdrStore, Direction, EndedBy, Timestamp};
use dialbridge_server::config::Config;
use dialbridge_server::metrics::MetricsSources;
use dialbridge_server::trunk_health::{Finding, HealthBoard, HealthState, TrunkHealthView};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const TOKEN: &str = "demo-admin-token";

/// A stand-in for the live conferences: one conference, and a log of what was asked.
#[derive(Default)]
struct FakeLive {
    actions: Mutex<Vec<String>>,
}

impl LiveCalls for FakeLive {
    fn list_conferences(&self) -> LiveFuture<'_, Vec<ConferenceView>> {
        Box::pin(async {
            vec![
                ConferenceView {
                    tenant: "contoso".into(),
                    conference_id: "123456789".into(),
                    organiser: Some("adele@contoso.com".into()),
                    locked: false,
                    recording: false,
                    participants: vec![ParticipantView {
                        id: 7,
                        role: Role::Leader,
                        calling: "+14255551234".into(),
                        dialled: "+14255550100".into(),
                        joined: Timestamp::from_unix_millis(1_795_229_117_123),
                        muted: false,
                        talking: true,
                        in_lobby: false,
                        quality: None,
                    }],
                },
                // Another tenant's meeting, for the scoped tokens not to see.
                ConferenceView {
                    tenant: "fabrikam".into(),
                    conference_id: "555000111".into(),
                    organiser: Some("ravi@fabrikam.com".into()),
                    locked: false,
                    recording: false,
                    participants: vec![ParticipantView {
                        id: 80,
                        role: Role::Leader,
                        calling: "+4930123456".into(),
                        dialled: "+493070000100".into(),
                        joined: Timestamp::from_unix_millis(1_795_229_117_123),
                        muted: false,
                        talking: false,
                        in_lobby: false,
                        quality: None,
                    }],
                },
            ]
        })
    }

    fn mute(&self, participant: MemberId, muted: bool) -> LiveFuture<'_, Result<(), LiveError>> {
        Box::pin(async move {
            if participant.0 != 7 && participant.0 != 80 {
                return Err(LiveError::NoSuchParticipant(participant.0));
            }
            self.actions
                .lock()
                .unwrap()
                .push(format!("mute {} {muted}", participant.0));
            Ok(())
        })
    }

    fn kick(&self, participant: MemberId) -> LiveFuture<'_, Result<(), LiveError>> {
        Box::pin(async move {
            if participant.0 != 7 && participant.0 != 80 {
                return Err(LiveError::NoSuchParticipant(participant.0));
            }
            self.actions
                .lock()
                .unwrap()
                .push(format!("kick {}", participant.0));
            Ok(())
        })
    }

    fn lock(
        &self,
        conference: ConferenceKey,
        locked: bool,
    ) -> LiveFuture<'_, Result<(), LiveError>> {
        Box::pin(async move {
            let key = (conference.tenant.as_str(), conference.id.as_str());
            if key != ("contoso", "123456789") && key != ("fabrikam", "555000111") {
                return Err(LiveError::NoSuchConference {
                    tenant: conference.tenant.as_str().into(),
                    id: conference.id.as_str().into(),
                });
            }
            self.actions.lock().unwrap().push(format!(
                "lock {} {} {locked}",
                conference.tenant, conference.id
            ));
            Ok(())
        })
    }
}

/// A running admin API over the demo deployment.
struct Api {
    addr: SocketAddr,
    client: reqwest::Client,
    router: Router,
    directory: Directory,
    cdrs: CdrStore,
    ledger: Ledger,
    live: Arc<FakeLive>,
    /// What the signaling task would publish of the trunks' health.
    health: HealthBoard,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Api {
    async fn start() -> Api {
        Api::start_with_token(TOKEN).await
    }

    /// The demo API with `token` as the configured admin token.
    async fn start_with_token(token: &str) -> Api {
        let mut config = Config::demo().unwrap();
        config.admin.token = token.to_owned();
        let router = Router::new(dialbridge_server::plan_from(&config).unwrap());
        let directory = Directory::open(":memory:").unwrap();
        let organisers = std::fs::File::open(config.directory.import.as_ref().unwrap()).unwrap();
        directory
            .import_csv(organisers, &Provider::dialbridge())
            .unwrap();
        let cdrs = CdrStore::open(":memory:").unwrap();
        let money = config.money.clone().unwrap();
        let ledger = Ledger::open(":memory:", money, std::time::SystemTime::now()).unwrap();
        let live = Arc::new(FakeLive::default());
        let gauges = Arc::new(Gauges::default());
        let mut state = AdminState::new(
            &config,
            router.clone(),
            directory.clone(),
            cdrs.clone(),
            live.clone(),
            MetricsSources::new(router.clone(), gauges),
        )
        .unwrap()
        .with_ledger(Some(ledger.clone()));
        let health = HealthBoard::default();
        state.trunk_health = health.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(admin::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Api {
            addr,
            client: reqwest::Client::new(),
            router,
            directory,
            cdrs,
            ledger,
            live,
            health,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An authorised request.
    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.req(Method::GET, path)).await
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.req(method, path).json(&body)).await
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Sends and reads a JSON answer (every answer but CSV and metrics is JSON).
async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ct = content_type(&resp);
    assert!(
        ct.starts_with("application/json"),
        "{status}: content type {ct:?}"
    );
    (status, resp.json().await.unwrap())
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
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

/// A concrete path for a route template, with plausible values.
fn concrete(path: &str) -> String {
    path.replace("{name}", "contoso-bridge")
        .replace("{e164}", "+14255550100")
        .replace("{tenant}", "contoso")
        .replace("{organiser}", "adele@contoso.com")
        .replace("{id}", "7")
}

fn routes() -> Vec<(Method, &'static str)> {
    admin::route_list()
        .into_iter()
        .map(|(m, p)| (Method::from_bytes(m.as_str().as_bytes()).unwrap(), p))
        .collect()
}

#[tokio::test]
async fn every_route_is_documented_and_every_document_path_is_served() {
    let api = Api::start().await;
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        doc,
        serde_json::to_value(admin::openapi_document()).unwrap()
    );
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|(m, p)| (m.to_string(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, routed);
    assert_eq!(routed.len(), 36);

    // Every listed route really is routed: none falls to the no-such-route or
    // method-not-allowed answers.
    for (method, path) in routes() {
        let resp = api
            .req(method.clone(), &concrete(path))
            .body("")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if status == StatusCode::NOT_FOUND {
            let body: Value = resp.json().await.unwrap();
            assert!(
                !body["error"].as_str().unwrap().starts_with("no such route"),
                "{method} {path}: {body}"
            );
        }
    }
    refused(
        api.get("/api/v1/nothing").await,
        StatusCode::NOT_FOUND,
        "no such route: GET /api/v1/nothing",
    );
    refused(
        send(api.req(Method::POST, "/api/v1/numbers")).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "POST is not allowed on /api/v1/numbers",
    );
    api.stop().await;
}

#[tokio::test]
async fn missing_wrong_and_malformed_tokens_are_refused_on_every_route() {
    let api = Api::start().await;
    let mut paths = routes();
    // Signing in carries its token in the body (tested with the sessions below).
    paths.retain(|(m, p)| !(*m == Method::POST && *p == "/api/v1/session"));
    paths.push((Method::GET, "/api/v1/nothing"));
    for (method, path) in paths {
        let url = api.url(&concrete(path));
        let attempts = [
            (
                api.client.request(method.clone(), &url),
                "missing bearer token",
            ),
            (
                api.client
                    .request(method.clone(), &url)
                    .bearer_auth("demo-admin-tokem"),
                "wrong bearer token",
            ),
            (
                api.client.request(method.clone(), &url).bearer_auth("demo"),
                "wrong bearer token",
            ),
            (
                api.client
                    .request(method.clone(), &url)
                    .basic_auth("admin", Some(TOKEN)),
                "missing bearer token",
            ),
        ];
        for (req, needle) in attempts {
            let resp = req.send().await.unwrap();
            assert_eq!(
                resp.headers()["www-authenticate"],
                "Bearer realm=\"dialbridge\""
            );
            let (status, body) = (resp.status(), resp.json::<Value>().await.unwrap());
            refused((status, body), StatusCode::UNAUTHORIZED, needle);
        }
    }
    // Nothing changed behind the refusals.
    assert_eq!(
        api.router
            .number("+14255550100".parse().unwrap())
            .unwrap()
            .capacity,
        500
    );
    api.stop().await;
}

#[tokio::test]
async fn an_empty_configured_token_refuses_everyone() {
    let api = Api::start_with_token("").await;
    for req in [
        api.client.get(api.url("/api/v1/numbers")),
        api.client
            .get(api.url("/api/v1/numbers"))
            .header("authorization", "Bearer "),
        api.client.get(api.url("/api/v1/numbers")).bearer_auth("x"),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    api.stop().await;
}

#[tokio::test]
async fn numbers_are_listed_and_changed_live() {
    let api = Api::start().await;
    let (status, body) = api.get("/api/v1/numbers").await;
    assert_eq!(status, StatusCode::OK);
    let numbers = body["numbers"].as_array().unwrap();
    assert_eq!(numbers.len(), 6);
    let user = numbers
        .iter()
        .find(|n| n["number"] == "+14255550123")
        .unwrap();
    assert_eq!(
        *user,
        json!({"number": "+14255550123", "kind": "user", "charge": "toll",
               "provider": "Microsoft", "bridge": "contoso-bridge",
               "capacity": 2, "in_progress": 0})
    );
    let spare = numbers
        .iter()
        .find(|n| n["number"] == "+14255550999")
        .unwrap();
    assert_eq!(spare["bridge"], Value::Null);

    // Assign, move back to nothing, set capacity.
    let (status, n) = api
        .json(
            Method::PUT,
            "/api/v1/numbers/+14255550999/assignment",
            json!({"bridge": "contoso-bridge"}),
        )
        .await;
    assert_eq!(
        (status, &n["bridge"]),
        (StatusCode::OK, &json!("contoso-bridge"))
    );
    let e164 = "+14255550999".parse().unwrap();
    assert_eq!(
        api.router.number(e164).unwrap().bridge.as_deref(),
        Some("contoso-bridge")
    );
    let (status, n) =
        send(api.req(Method::DELETE, "/api/v1/numbers/%2B14255550999/assignment")).await;
    assert_eq!((status, &n["bridge"]), (StatusCode::OK, &Value::Null));
    assert_eq!(api.router.number(e164).unwrap().bridge, None);
    let (status, n) = api
        .json(
            Method::PUT,
            "/api/v1/numbers/+14255550123/capacity",
            json!({"capacity": 300}),
        )
        .await;
    assert_eq!((status, &n["capacity"]), (StatusCode::OK, &json!(300)));

    // Bad input.
    let assign = "/api/v1/numbers/+14255550100/assignment";
    refused(
        api.json(Method::PUT, assign, json!({"bridge": "nowhere"}))
            .await,
        StatusCode::NOT_FOUND,
        "bridge \"nowhere\" is not in the plan",
    );
    refused(
        api.json(Method::PUT, assign, json!({"bridge": "fabrikam-bridge"}))
            .await,
        StatusCode::CONFLICT,
        "Operator Connect Conferencing",
    );
    refused(
        api.json(
            Method::PUT,
            "/api/v1/numbers/+14255550000/assignment",
            json!({"bridge": "contoso-bridge"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "number +14255550000 is not in the plan",
    );
    refused(
        api.json(
            Method::PUT,
            "/api/v1/numbers/4255550100/capacity",
            json!({"capacity": 3}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "not an E.164 number",
    );
    refused(
        api.json(
            Method::PUT,
            "/api/v1/numbers/+14255550100/capacity",
            json!({"capacity": 0}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "capacity of number +14255550100 must be at least 1",
    );
    refused(
        api.json(
            Method::PUT,
            "/api/v1/numbers/+14255550100/capacity",
            json!({"capacity": -1}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "capacity",
    );
    refused(
        api.json(Method::PUT, assign, json!({"bridg": "contoso-bridge"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown field `bridg`",
    );
    refused(
        send(
            api.req(Method::PUT, assign)
                .header("content-type", "application/json")
                .body("{\"bridge\": "),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "EOF",
    );
    refused(
        send(
            api.req(Method::PUT, assign)
                .body("{\"bridge\": \"contoso-bridge\"}"),
        )
        .await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Content-Type",
    );
    // The refusals changed nothing.
    let n = api.router.number("+14255550100".parse().unwrap()).unwrap();
    assert_eq!(
        (n.bridge.as_deref(), n.capacity),
        (Some("contoso-bridge"), 500)
    );
    api.stop().await;
}

#[tokio::test]
async fn bridges_are_listed_resized_and_disabled_live() {
    let api = Api::start().await;
    let (status, body) = api.get("/api/v1/bridges").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["bridges"][0],
        json!({"name": "contoso-bridge", "tenant": "contoso", "enabled": true,
               "capacity": 1000, "in_progress": 0, "admitted": 0, "refused": {}})
    );
    assert_eq!(body["bridges"][1]["name"], "fabrikam-bridge");

    let (status, b) = api
        .json(
            Method::PUT,
            "/api/v1/bridges/contoso-bridge/capacity",
            json!({"capacity": 5}),
        )
        .await;
    assert_eq!((status, &b["capacity"]), (StatusCode::OK, &json!(5)));
    let (status, b) = api
        .json(
            Method::PUT,
            "/api/v1/bridges/contoso-bridge/enabled",
            json!({"enabled": false}),
        )
        .await;
    assert_eq!((status, &b["enabled"]), (StatusCode::OK, &json!(false)));
    // The router now refuses calls to the bridge with 480.
    let pstn = api.router.trunk_by_name("microsoft-pstn").unwrap();
    let refusal = api
        .router
        .decide(pstn, "+14255550100".parse().unwrap())
        .unwrap_err();
    assert_eq!(refusal.reason, RejectReason::BridgeDisabled);
    let (_, body) = api.get("/api/v1/bridges").await;
    assert_eq!(body["bridges"][0]["refused"], json!({"bridge_disabled": 1}));

    refused(
        api.json(
            Method::PUT,
            "/api/v1/bridges/nowhere/capacity",
            json!({"capacity": 5}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "bridge \"nowhere\" is not in the plan",
    );
    refused(
        api.json(
            Method::PUT,
            "/api/v1/bridges/contoso-bridge/capacity",
            json!({"capacity": 0}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "must be at least 1",
    );
    refused(
        api.json(
            Method::PUT,
            "/api/v1/bridges/contoso-bridge/enabled",
            json!({"enabled": "no"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "enabled",
    );
    api.stop().await;
}

#[tokio::test]
async fn organisers_are_listed_without_pins_exported_imported_and_reset() {
    let api = Api::start().await;
    let (status, body) = api.get("/api/v1/organisers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["organisers"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["organisers"][0],
        json!({"tenant": "contoso", "organiser": "adele@contoso.com",
               "display_name": "Adele Vance", "toll_number": "+14255550100",
               "toll_free_number": "+18885550100", "conference_id": "123456789",
               "wait_for_leader": false, "provider": "dialbridge"})
    );
    let text = body.to_string();
    assert!(!text.contains("pin") && !text.contains("13579"), "{text}");
    let (_, body) = api.get("/api/v1/organisers?tenant=fabrikam").await;
    assert_eq!(body["organisers"].as_array().unwrap().len(), 1);
    refused(
        api.get("/api/v1/organisers?tennant=fabrikam").await,
        StatusCode::BAD_REQUEST,
        "tennant",
    );

    // Export: the provider file, PIN column empty.
    let resp = api
        .req(Method::GET, "/api/v1/organisers/export.csv?tenant=contoso")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(content_type(&resp).starts_with("text/csv"));
    let csv = resp.text().await.unwrap();
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "tenant,organiser,display_name,toll_number,toll_free_number,conference_id,pin,wait_for_leader",
            "contoso,adele@contoso.com,Adele Vance,+14255550100,+18885550100,123456789,,no",
            "contoso,megan@contoso.com,Megan Bowen,+14255550100,+18885550100,987654321,,yes",
        ]
    );

    // A bad file: every bad line reported, nothing applied.
    let bad = "tenant,organiser,display_name,toll_number,toll_free_number,conference_id,pin,wait_for_leader\n\
               contoso,lee@contoso.com,Lee Gu,+14255550100,,111222333,2468,no\n\
               contoso,x@contoso.com,X,+14255550100,,12345,1234,no\n\
               contoso,y@contoso.com,Y,not-a-number,,222333444,1234,maybe\n";
    let (status, body) = send(
        api.req(Method::POST, "/api/v1/organisers/import?provider=telco-a")
            .header("content-type", "text/csv")
            .body(bad),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"].as_str().unwrap().contains("nothing applied"));
    let problems: Vec<(u64, String)> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap(),
                p["problem"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        [
            (3, "conference_id must be 6 to 12 digits".to_owned()),
            (
                4,
                "toll_number must be + and 1 to 15 digits (E.164)".to_owned()
            ),
            (
                4,
                "wait_for_leader must be yes, no, true or false".to_owned()
            ),
        ]
    );
    assert_eq!(api.directory.list(None).unwrap().len(), 3);

    // A good file from a provider.
    let good = "tenant,organiser,display_name,toll_number,toll_free_number,conference_id,pin,wait_for_leader\n\
                contoso,lee@contoso.com,Lee Gu,+14255550100,,111222333,2468,no\n\
                contoso,adele@contoso.com,Adele Vance,+14255550100,+18885550100,123456789,,yes\n";
    let (status, body) = send(
        api.req(Method::POST, "/api/v1/organisers/import?provider=telco-a")
            .header("content-type", "text/csv")
            .body(good),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"added": 1, "updated": 1}));
    let (_, body) = api.get("/api/v1/organisers?tenant=contoso").await;
    assert_eq!(body["organisers"][0]["provider"], "telco-a");
    assert_eq!(body["organisers"][0]["wait_for_leader"], true);
    refused(
        send(api.req(Method::POST, "/api/v1/organisers/import").body("")).await,
        StatusCode::BAD_REQUEST,
        "empty body",
    );
    refused(
        send(
            api.req(Method::POST, "/api/v1/organisers/import?provider=")
                .body(good),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "provider name",
    );

    // PIN reset: shown once, never stored in clear, the old one no longer works.
    let resp = api
        .req(
            Method::POST,
            "/api/v1/organisers/contoso/megan@contoso.com/pin/reset",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    let pin = body["pin"].as_str().unwrap();
    assert_eq!(pin.len(), 6);
    assert!(pin.bytes().all(|b| b.is_ascii_digit()));
    let tenant = TenantId::new("contoso");
    let id = ConferenceId::parse("987654321").unwrap();
    assert!(
        api.directory
            .verify_pin(&tenant, &id, &Pin::parse(pin).unwrap())
            .unwrap()
    );
    if pin != "24680" {
        assert!(
            !api.directory
                .verify_pin(&tenant, &id, &Pin::parse("24680").unwrap())
                .unwrap()
        );
    }
    refused(
        send(api.req(
            Method::POST,
            "/api/v1/organisers/contoso/nobody@contoso.com/pin/reset",
        ))
        .await,
        StatusCode::NOT_FOUND,
        "no organiser nobody@contoso.com in tenant contoso",
    );
    refused(
        send(api.req(
            Method::POST,
            "/api/v1/organisers/fabrikam/adele@contoso.com/pin/reset",
        ))
        .await,
        StatusCode::NOT_FOUND,
        "no organiser",
    );
    api.stop().await;
}

fn cdr(n: i64) -> Cdr {
    Cdr {
        call_id: format!("c{n}"),
        trunk: "microsoft-pstn".into(),
        calling: "+14255551234".into(),
        dialled: "+18885550100".parse().unwrap(),
        tenant: "contoso".into(),
        bridge: "contoso-bridge".into(),
        conference_id: None,
        role: None,
        arrived: Timestamp::from_unix_millis(1_795_229_100_000 + n * 60_000),
        answered: None,
        joined: None,
        ended: Timestamp::from_unix_millis(1_795_229_110_000 + n * 60_000),
        ended_by: EndedBy::Cancel,
        sip_status: 487,
        charge: Charge::TollFree,
        provider: Some("Microsoft".into()),
        direction: Direction::Inbound,
        billing: None,
    }
}

#[tokio::test]
async fn cdrs_are_listed_filtered_and_exported() {
    let api = Api::start().await;
    for n in 0..3 {
        api.cdrs.record(&cdr(n)).unwrap();
    }
    let (status, body) = api.get("/api/v1/cdrs").await;
    assert_eq!(status, StatusCode::OK);
    let calls: Vec<&str> = body["cdrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["c0", "c1", "c2"]);
    assert_eq!(body["cdrs"][0]["ended"], "2026-11-21T02:45:10.000Z");
    assert_eq!(body["cdrs"][0]["ended_by"], "cancel");
    assert_eq!(body["cdrs"][0]["answered"], Value::Null);

    let (_, body) = api
        .get("/api/v1/cdrs?since=2026-11-21T02:46:10.000Z&limit=1")
        .await;
    assert_eq!(body["cdrs"].as_array().unwrap().len(), 1);
    assert_eq!(body["cdrs"][0]["call_id"], "c1");
    let (_, body) = api.get("/api/v1/cdrs?until=1795229170000").await;
    assert_eq!(body["cdrs"].as_array().unwrap().len(), 1);

    refused(
        api.get("/api/v1/cdrs?since=yesterday").await,
        StatusCode::BAD_REQUEST,
        "since: \"yesterday\" is not a time",
    );
    refused(
        api.get("/api/v1/cdrs?limit=0").await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    refused(
        api.get("/api/v1/cdrs?limit=10001").await,
        StatusCode::BAD_REQUEST,
        "from 1 to 10000",
    );
    refused(
        api.get("/api/v1/cdrs?sinse=0").await,
        StatusCode::BAD_REQUEST,
        "sinse",
    );

    let resp = api
        .req(Method::GET, "/api/v1/cdrs.csv?since=2026-11-21T02:46:10Z")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(content_type(&resp).starts_with("text/csv"));
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("call_id,trunk,calling,dialled,"));
    assert!(lines[1].starts_with("c1,microsoft-pstn,+14255551234,+18885550100,contoso,"));
    // A big export streams in many chunks and arrives whole.
    for n in 3..5003 {
        api.cdrs.record(&cdr(n)).unwrap();
    }
    let csv = api
        .req(Method::GET, "/api/v1/cdrs.csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.len() > 8 * 64 * 1024, "{} bytes", csv.len());
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5004);
    assert!(lines[5003].starts_with("c5002,"));
    refused(
        api.get("/api/v1/cdrs.csv?until=soon").await,
        StatusCode::BAD_REQUEST,
        "until",
    );
    api.stop().await;
}

#[tokio::test]
async fn trunks_are_listed_with_their_load_and_dial_out_health() {
    let api = Api::start().await;
    let (status, body) = api.get("/api/v1/trunks").await;
    assert_eq!(status, StatusCode::OK);
    let trunks = body["trunks"].as_array().unwrap();
    let names: Vec<&str> = trunks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["microsoft-pstn", "telco-a", "telco-b", "softphones"]
    );
    // Before any probe: up, not probed.
    let pstn = &trunks[0];
    assert_eq!(pstn["provider"], "Microsoft");
    assert_eq!(pstn["outbound"], "127.0.0.10:5080");
    assert_eq!(
        (&pstn["health"], &pstn["probed"]),
        (&json!("up"), &json!(false))
    );
    assert_eq!(pstn["last_answer"], Value::Null);
    let softphones = &trunks[3];
    assert_eq!(
        (
            &softphones["outbound"],
            &softphones["health"],
            &softphones["provider"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );

    // A dial-out holds a session of its trunk; telco-a answered 503.
    let telco_a = api.router.trunk_by_name("telco-a").unwrap();
    let _dial_out = api
        .router
        .reserve_dial_out("contoso-bridge", telco_a)
        .unwrap();
    let at =
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_800_000_000_123);
    api.health.publish(vec![TrunkHealthView {
        trunk: telco_a,
        name: "telco-a".into(),
        target: "127.0.0.20:5080".parse().unwrap(),
        state: HealthState::Down,
        consecutive_failures: 1,
        last_finding: Some(Finding::Answered(503)),
        last_finding_at: Some(at),
        last_change_at: Some(at),
        options_sent: 4,
        options_failed: 1,
    }]);
    let (_, body) = api.get("/api/v1/trunks").await;
    let t = &body["trunks"][1];
    assert_eq!(
        (&t["in_progress"], &t["max_sessions"]),
        (&json!(1), &json!(500))
    );
    assert_eq!((&t["health"], &t["probed"]), (&json!("down"), &json!(true)));
    assert_eq!(t["last_answer"], "503");
    assert_eq!(t["last_answer_at"], "2027-01-15T08:00:00.123Z");
    assert_eq!(t["last_change_at"], "2027-01-15T08:00:00.123Z");
    assert_eq!(
        (
            &t["options_sent"],
            &t["options_failed"],
            &t["consecutive_failures"]
        ),
        (&json!(4), &json!(1), &json!(1))
    );
    api.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let api = Api::start().await;
    let pstn = api.router.trunk_by_name("microsoft-pstn").unwrap();
    let _grant = api
        .router
        .decide(pstn, "+14255550123".parse().unwrap())
        .unwrap();
    let resp = api.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        content_type(&resp),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    for line in [
        "# TYPE dialbridge_calls_in_progress gauge\n",
        "dialbridge_router_admitted_total 1\n",
        "dialbridge_number_calls_in_progress{number=\"+14255550123\"} 1\n",
        "dialbridge_bridge_calls_in_progress{bridge=\"contoso-bridge\"} 1\n",
        "dialbridge_trunk_calls_in_progress{trunk=\"microsoft-pstn\"} 1\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    api.stop().await;
}

#[tokio::test]
async fn live_conferences_go_through_the_live_calls_seam() {
    let api = Api::start().await;
    let (status, body) = api.get("/api/v1/conferences").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["conferences"][0]["participants"][0],
        json!({"id": 7, "role": "leader", "calling": "+14255551234",
               "dialled": "+14255550100", "joined": "2026-11-21T02:45:17.123Z",
               "muted": false, "talking": true, "in_lobby": false,
               "quality": null})
    );

    let (status, body) = api
        .json(
            Method::POST,
            "/api/v1/participants/7/mute",
            json!({"muted": true}),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"id": 7, "muted": true}))
    );
    let (status, _) = send(api.req(Method::POST, "/api/v1/participants/7/kick")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .json(
            Method::POST,
            "/api/v1/conferences/contoso/123456789/lock",
            json!({"locked": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        *api.live.actions.lock().unwrap(),
        ["mute 7 true", "kick 7", "lock contoso 123456789 true"]
    );

    refused(
        api.json(
            Method::POST,
            "/api/v1/participants/8/mute",
            json!({"muted": true}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "no participant 8",
    );
    refused(
        api.json(
            Method::POST,
            "/api/v1/participants/seven/mute",
            json!({"muted": true}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "not a participant id",
    );
    refused(
        api.json(Method::POST, "/api/v1/participants/7/mute", json!({}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "muted",
    );
    refused(
        send(api.req(Method::POST, "/api/v1/participants/-1/kick")).await,
        StatusCode::BAD_REQUEST,
        "not a participant id",
    );
    refused(
        api.json(
            Method::POST,
            "/api/v1/conferences/contoso/123/lock",
            json!({"locked": true}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "not a conference ID",
    );
    refused(
        api.json(
            Method::POST,
            "/api/v1/conferences/fabrikam/123456789/lock",
            json!({"locked": true}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "no conference 123456789 is in progress in tenant fabrikam",
    );
    assert_eq!(api.live.actions.lock().unwrap().len(), 3);
    api.stop().await;
}

// ---- tokens with roles -------------------------------------------------------------

impl Api {
    /// A new token of `role` bound to `provider` or `tenant`, made by the admin.
    async fn token(&self, role: &str, provider: Option<&str>, tenant: Option<&str>) -> String {
        let (status, body) = self
            .json(
                Method::POST,
                "/api/v1/tokens",
                json!({"name": format!("{role} test"), "role": role,
                       "provider": provider, "tenant": tenant}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["secret"].as_str().unwrap().to_owned()
    }

    /// A request with `token`.
    fn with(&self, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }
}

#[tokio::test]
async fn tokens_are_made_listed_without_secrets_and_revoked() {
    let api = Api::start().await;
    let (status, body) = api
        .json(
            Method::POST,
            "/api/v1/tokens",
            json!({"name": "contoso helpdesk", "role": "tenant-admin", "tenant": "contoso"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("dbt_") && secret.len() == 68, "{secret}");
    assert_eq!(body["role"], "tenant-admin");
    assert_eq!(body["scope"], "contoso");
    assert_eq!(body["revoked"], false);
    let id = body["id"].as_i64().unwrap();

    // Listed, never with its secret; the store keeps only a hash.
    let resp = api.req(Method::GET, "/api/v1/tokens").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&secret[4..]), "{text}");
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed["tokens"][0]["name"], "contoso helpdesk");
    assert_eq!(listed["tokens"][0].get("secret"), None);
    let stored = api.cdrs.tokens().unwrap();
    assert_eq!(stored.len(), 1);

    // It works, within its tenant; only an admin manages tokens.
    let (status, body) = send(api.with(&secret, Method::GET, "/api/v1/bridges")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["bridges"].as_array().unwrap().len(), 1, "{body}");
    refused(
        send(api.with(&secret, Method::GET, "/api/v1/tokens")).await,
        StatusCode::FORBIDDEN,
        "a tenant-admin token may not use GET /api/v1/tokens",
    );

    // Bad requests say what is wrong, and make nothing.
    for (request, needle) in [
        (json!({"name": "x", "role": "root"}), "unknown role"),
        (
            json!({"name": "x", "role": "operator"}),
            "bound to a provider",
        ),
        (
            json!({"name": "x", "role": "admin", "tenant": "contoso"}),
            "bound to no provider or tenant",
        ),
        (
            json!({"name": "x", "role": "tenant-admin", "tenant": "northwind"}),
            "no bridge of tenant",
        ),
        (
            json!({"name": "x", "role": "operator", "provider": "Telco C"}),
            "no trunk or number of provider",
        ),
        (json!({"name": "", "role": "read-only"}), "name must be"),
    ] {
        refused(
            api.json(Method::POST, "/api/v1/tokens", request).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needle,
        );
    }
    refused(
        api.json(Method::POST, "/api/v1/tokens", json!({"role": "admin"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "name",
    );
    assert_eq!(api.cdrs.tokens().unwrap().len(), 1);

    // Revoked: refused from the next request on; the bootstrap token keeps working.
    let (status, body) = send(api.req(Method::DELETE, &format!("/api/v1/tokens/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["revoked"], true);
    refused(
        send(api.with(&secret, Method::GET, "/api/v1/bridges")).await,
        StatusCode::UNAUTHORIZED,
        "wrong bearer token",
    );
    refused(
        send(api.req(Method::DELETE, "/api/v1/tokens/99")).await,
        StatusCode::NOT_FOUND,
        "no token 99",
    );
    refused(
        send(api.req(Method::DELETE, "/api/v1/tokens/x")).await,
        StatusCode::BAD_REQUEST,
        "not a token id",
    );
    let (status, _) = api.get("/api/v1/tokens").await;
    assert_eq!(status, StatusCode::OK);
    api.stop().await;
}

/// What a scoped token should get from one request.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Refused with this status.
    Refused(u16),
    /// Answered (200), holding something of its own and nothing of the others'.
    Own,
    /// Answered (200): the route holds nothing of anyone's.
    Answered,
}

/// One request against what is not the caller's, and what each scoped token gets.
struct Probe {
    path: String,
    body: Option<Value>,
    csv: Option<&'static str>,
    /// A contoso tenant admin's answer.
    tenant: Want,
    /// A Telco A operator's answer.
    operator: Want,
    read_only: Want,
}

fn probe(path: &str, tenant: Want, operator: Want, read_only: Want) -> Probe {
    Probe {
        path: path.to_owned(),
        body: None,
        csv: None,
        tenant,
        operator,
        read_only,
    }
}

impl Probe {
    fn json(mut self, body: Value) -> Probe {
        self.body = Some(body);
        self
    }
}

/// What every route is asked with, against fabrikam's (and Telco B's) things, and what
/// each scoped token must get. No default arm: a new route without a decision fails.
fn probes(method: &Method, path: &str) -> Vec<Probe> {
    use Want::{Answered, Own, Refused};
    const NOT_FOUND: Want = Refused(404);
    const FORBIDDEN: Want = Refused(403);
    let fabrikam_number = "/api/v1/numbers/+493070000100";
    let ravi = "/api/v1/organisers/fabrikam/ravi@fabrikam.com";
    let ravis_meeting = "/api/v1/conferences/fabrikam/555000111";
    match (method.as_str(), path) {
        ("GET", "/api/v1/bridges") => vec![probe(path, Own, FORBIDDEN, FORBIDDEN)],
        ("PUT", "/api/v1/bridges/{name}/capacity") => vec![
            probe(
                "/api/v1/bridges/fabrikam-bridge/capacity",
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
            )
            .json(json!({"capacity": 1})),
        ],
        ("PUT", "/api/v1/bridges/{name}/enabled") => vec![
            probe(
                "/api/v1/bridges/fabrikam-bridge/enabled",
                NOT_FOUND,
                FORBIDDEN,
                FORBIDDEN,
            )
            .json(json!({"enabled": false})),
            // One that does not exist answers the same.
            probe(
                "/api/v1/bridges/northwind-bridge/enabled",
                NOT_FOUND,
                FORBIDDEN,
                FORBIDDEN,
            )
            .json(json!({"enabled": false})),
        ],
        ("GET", "/api/v1/numbers") => vec![probe(path, Own, Own, FORBIDDEN)],
        // Everybody's traffic: an operator sees its own trunks, read-only all of them.
        ("GET", "/api/v1/trunks") => vec![probe(path, FORBIDDEN, Own, Answered)],
        ("GET", "/api/v1/plan/edits") => vec![probe(path, FORBIDDEN, FORBIDDEN, FORBIDDEN)],
        ("PUT", "/api/v1/numbers/{e164}/assignment") => vec![
            probe(
                &format!("{fabrikam_number}/assignment"),
                FORBIDDEN,
                NOT_FOUND,
                FORBIDDEN,
            )
            .json(json!({"bridge": "contoso-bridge"})),
        ],
        ("DELETE", "/api/v1/numbers/{e164}/assignment") => vec![probe(
            &format!("{fabrikam_number}/assignment"),
            FORBIDDEN,
            NOT_FOUND,
            FORBIDDEN,
        )],
        ("PUT", "/api/v1/numbers/{e164}/capacity") => vec![
            probe(
                &format!("{fabrikam_number}/capacity"),
                FORBIDDEN,
                NOT_FOUND,
                FORBIDDEN,
            )
            .json(json!({"capacity": 1})),
            // Microsoft's number, unassigned: an operator's only if it provides it.
            probe(
                "/api/v1/numbers/+14255550999/capacity",
                FORBIDDEN,
                NOT_FOUND,
                FORBIDDEN,
            )
            .json(json!({"capacity": 1})),
        ],
        ("GET", "/api/v1/organisers") => vec![
            probe(path, Own, FORBIDDEN, FORBIDDEN),
            probe(
                "/api/v1/organisers?tenant=fabrikam",
                NOT_FOUND,
                FORBIDDEN,
                FORBIDDEN,
            ),
        ],
        ("GET", "/api/v1/organisers/export.csv") => vec![
            probe(path, Own, FORBIDDEN, FORBIDDEN),
            probe(
                "/api/v1/organisers/export.csv?tenant=fabrikam",
                NOT_FOUND,
                FORBIDDEN,
                FORBIDDEN,
            ),
        ],
        ("POST", "/api/v1/organisers/import") => vec![Probe {
            csv: Some(
                "tenant,organiser,display_name,toll_number,toll_free_number,conference_id,pin,wait_for_leader\n\
                 fabrikam,eve@fabrikam.com,Eve,+493070000100,,555000222,4321,no\n",
            ),
            ..probe(path, Refused(422), FORBIDDEN, FORBIDDEN)
        }],
        ("POST", "/api/v1/organisers/{tenant}/{organiser}/pin/reset") => vec![probe(
            &format!("{ravi}/pin/reset"),
            NOT_FOUND,
            FORBIDDEN,
            FORBIDDEN,
        )],
        ("GET", "/api/v1/organisers/{tenant}/{organiser}") => {
            vec![probe(ravi, NOT_FOUND, FORBIDDEN, FORBIDDEN)]
        }
        ("PATCH", "/api/v1/organisers/{tenant}/{organiser}") => {
            vec![
                probe(ravi, NOT_FOUND, FORBIDDEN, FORBIDDEN)
                    .json(json!({"join_leave_tones": true})),
            ]
        }
        ("GET", "/api/v1/cdrs") | ("GET", "/api/v1/cdrs.csv") | ("GET", "/api/v1/conferences") => {
            vec![probe(path, Own, FORBIDDEN, FORBIDDEN)]
        }
        // Read-only watches the whole bridge; a tenant its own part.
        ("GET", "/api/v1/events") => vec![probe(path, Own, FORBIDDEN, Answered)],
        ("POST", "/api/v1/participants/{id}/mute") => vec![
            probe(
                "/api/v1/participants/80/mute",
                NOT_FOUND,
                FORBIDDEN,
                FORBIDDEN,
            )
            .json(json!({"muted": true})),
        ],
        ("POST", "/api/v1/participants/{id}/kick") => vec![probe(
            "/api/v1/participants/80/kick",
            NOT_FOUND,
            FORBIDDEN,
            FORBIDDEN,
        )],
        ("POST", "/api/v1/conferences/{tenant}/{id}/lock") => vec![
            probe(
                &format!("{ravis_meeting}/lock"),
                NOT_FOUND,
                FORBIDDEN,
                FORBIDDEN,
            )
            .json(json!({"locked": true})),
        ],
        ("POST", "/api/v1/conferences/{tenant}/{id}/recording") => vec![
            probe(
                &format!("{ravis_meeting}/recording"),
                NOT_FOUND,
                FORBIDDEN,
                FORBIDDEN,
            )
            .json(json!({"recording": true})),
        ],
        ("POST", "/api/v1/conferences/{tenant}/{id}/dial-out") => vec![
            probe(
                &format!("{ravis_meeting}/dial-out"),
                NOT_FOUND,
                FORBIDDEN,
                FORBIDDEN,
            )
            .json(json!({"number": "+14255557000"})),
        ],
        ("GET", "/api/v1/conferences/{tenant}/{id}/dial-outs") => vec![probe(
            &format!("{ravis_meeting}/dial-outs"),
            NOT_FOUND,
            FORBIDDEN,
            FORBIDDEN,
        )],
        ("GET", "/api/v1/dial-outs/{id}") => vec![probe(
            "/api/v1/dial-outs/1",
            NOT_FOUND,
            FORBIDDEN,
            FORBIDDEN,
        )],
        ("GET", "/api/v1/tenants/{tenant}/balance") => vec![
            probe("/api/v1/tenants/contoso/balance", Own, FORBIDDEN, FORBIDDEN),
            probe(
                "/api/v1/tenants/fabrikam/balance",
                NOT_FOUND,
                FORBIDDEN,
                FORBIDDEN,
            ),
        ],
        // Credits are money: admins only, even a tenant's own.
        ("POST", "/api/v1/tenants/{tenant}/credits") => vec![
            probe(
                "/api/v1/tenants/contoso/credits",
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
            )
            .json(json!({"amount": "5.00"})),
        ],
        // Scoped to the tenant or the provider (the rows are checked in `money_*`).
        ("GET", "/api/v1/usage") => vec![probe(path, Answered, Answered, FORBIDDEN)],
        // Bridge-wide figures: everybody's traffic.
        ("GET", "/metrics") => vec![probe(path, FORBIDDEN, FORBIDDEN, Answered)],
        ("GET", "/api/v1/openapi.json") => vec![probe(path, Answered, Answered, Answered)],
        ("POST", "/api/v1/tokens") => vec![
            probe(path, FORBIDDEN, FORBIDDEN, FORBIDDEN)
                .json(json!({"name": "mine now", "role": "admin"})),
        ],
        ("GET", "/api/v1/tokens") => vec![probe(path, FORBIDDEN, FORBIDDEN, FORBIDDEN)],
        ("DELETE", "/api/v1/tokens/{id}") => {
            vec![probe("/api/v1/tokens/1", FORBIDDEN, FORBIDDEN, FORBIDDEN)]
        }
        // A scoped token's session is as scoped as the token (tested with the sessions).
        ("POST", "/api/v1/session") | ("DELETE", "/api/v1/session") => {
            vec![probe(path, Answered, Answered, Answered)]
        }
        (m, p) => panic!("{m} {p}: no decision on who may use it; add one to `probes`"),
    }
}

/// The parts of an answer a token may or may not see: `(its own, the others')`.
fn markers(who: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match who {
        "tenant" => (
            &["contoso"],
            &[
                "fabrikam",
                "+493070000100",
                "ravi@",
                "555000111",
                "+14255550999",
            ],
        ),
        "operator" => (&["Telco A"], &["Telco B", "Microsoft", "+493070000100"]),
        _ => (&[], &[]),
    }
}

#[tokio::test]
async fn scoped_tokens_see_nothing_of_others_route_by_route() {
    let api = Api::start().await;
    let mut fabrikam_cdr = cdr(2);
    fabrikam_cdr.tenant = "fabrikam".into();
    fabrikam_cdr.bridge = "fabrikam-bridge".into();
    fabrikam_cdr.dialled = "+493070000100".parse().unwrap();
    api.cdrs.record(&cdr(1)).unwrap();
    api.cdrs.record(&fabrikam_cdr).unwrap();
    let tenant = api.token("tenant-admin", None, Some("contoso")).await;
    let operator = api.token("operator", Some("Telco A"), None).await;
    let read_only = api.token("read-only", None, None).await;
    let tokens_before = api.cdrs.tokens().unwrap();

    let mut asked = 0;
    for (method, route) in routes() {
        for probe in probes(&method, route) {
            for (who, token, want) in [
                ("tenant", &tenant, probe.tenant),
                ("operator", &operator, probe.operator),
                ("read-only", &read_only, probe.read_only),
            ] {
                let mut req = api.with(token, method.clone(), &probe.path);
                if let Some(body) = &probe.body {
                    req = req.json(body);
                }
                if let Some(csv) = probe.csv {
                    req = req.header("content-type", "text/csv").body(csv);
                }
                let what = format!("{who}: {method} {}", probe.path);
                let mut resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let text = if route == "/api/v1/events" && status == 200 {
                    first_event(&mut resp).await
                } else {
                    resp.text().await.unwrap()
                };
                match want {
                    Want::Refused(code) => {
                        assert_eq!(status, code, "{what}: {text}");
                        let body: Value = serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
                        assert!(body["error"].is_string(), "{what}: {text}");
                    }
                    Want::Answered => assert_eq!(status, 200, "{what}: {text}"),
                    Want::Own => {
                        assert_eq!(status, 200, "{what}: {text}");
                        let (own, others) = markers(who);
                        for m in others {
                            assert!(!text.contains(m), "{what} shows {m:?}: {text}");
                        }
                        for m in own {
                            assert!(text.contains(m), "{what} lacks its own {m:?}: {text}");
                        }
                    }
                }
                asked += 1;
            }
        }
    }
    assert!(asked >= routes().len() * 3, "{asked}");

    // Nothing of fabrikam's changed behind the refusals, and no token was made or revoked.
    let number = api.router.number("+493070000100".parse().unwrap()).unwrap();
    assert_eq!(number.bridge.as_deref(), Some("fabrikam-bridge"));
    assert_eq!(number.capacity, 500);
    let bridge = api.router.bridge("fabrikam-bridge").unwrap();
    assert!(bridge.enabled);
    assert_eq!(bridge.capacity, 1000);
    assert_eq!(
        api.router
            .number("+14255550999".parse().unwrap())
            .unwrap()
            .capacity,
        500
    );
    assert_eq!(api.directory.list(None).unwrap().len(), 3);
    assert!(
        api.live.actions.lock().unwrap().is_empty(),
        "{:?}",
        api.live.actions
    );
    assert_eq!(api.cdrs.tokens().unwrap(), tokens_before);
    api.stop().await;
}

/// The data of the first `snapshot` event of an event stream.
async fn first_event(resp: &mut reqwest::Response) -> String {
    let read = async {
        let mut text = String::new();
        loop {
            if let Some(end) = text.find("\n\n") {
                let block = &text[..end];
                if block.lines().any(|l| l == "event: snapshot") {
                    return block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect::<Vec<_>>()
                        .join("\n");
                }
                text.drain(..end + 2);
                continue;
            }
            let chunk = resp.chunk().await.unwrap().expect("the stream ended");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .expect("a snapshot within 5 s")
}

#[tokio::test]
async fn a_tenant_admin_and_an_operator_manage_what_is_theirs() {
    let api = Api::start().await;
    let contoso = api.token("tenant-admin", None, Some("contoso")).await;
    let telco_a = api.token("operator", Some("Telco A"), None).await;

    // The tenant admin: its organisers, their PINs and settings, its meetings, its bridge.
    let (status, body) = send(api.with(&contoso, Method::GET, "/api/v1/organisers")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["organisers"].as_array().unwrap().len(), 2, "{body}");
    let (status, body) = send(api.with(
        &contoso,
        Method::POST,
        "/api/v1/organisers/contoso/adele@contoso.com/pin/reset",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send(
        api.with(&contoso, Method::POST, "/api/v1/participants/7/mute")
            .json(&json!({"muted": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        api.with(
            &contoso,
            Method::PUT,
            "/api/v1/bridges/contoso-bridge/enabled",
        )
        .json(&json!({"enabled": false})),
    )
    .await;
    assert_eq!((status, &body["enabled"]), (StatusCode::OK, &json!(false)));
    let import = "tenant,organiser,display_name,toll_number,toll_free_number,conference_id,pin,wait_for_leader\n\
                  contoso,lee@contoso.com,Lee Gu,+14255550100,,123123123,1357,no\n";
    let (status, body) = send(
        api.with(&contoso, Method::POST, "/api/v1/organisers/import")
            .header("content-type", "text/csv")
            .body(import),
    )
    .await;
    assert_eq!(
        (status, &body["added"]),
        (StatusCode::OK, &json!(1)),
        "{body}"
    );
    // A file with another tenant's row is refused whole, the row named.
    let mixed = format!("{import}fabrikam,eve@fabrikam.com,Eve,+493070000100,,555000222,4321,no\n");
    let (status, body) = send(
        api.with(&contoso, Method::POST, "/api/v1/organisers/import")
            .header("content-type", "text/csv")
            .body(mixed),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["problems"][0]["line"], 3, "{body}");
    // However the file spells its header (the directory reads it without regard to
    // case), or a row it cannot read, the check holds.
    for file in [
        "TENANT,organiser,display_name,toll_number,toll_free_number,conference_id,pin,wait_for_leader\n\
         fabrikam,eve@fabrikam.com,Eve,+493070000100,,555000222,4321,no\n",
        "organiser,display_name\nlee@contoso.com,Lee\n",
        "tenant,organiser\n\"contoso,lee@contoso.com\n",
    ] {
        let (status, body) = send(
            api.with(&contoso, Method::POST, "/api/v1/organisers/import")
                .header("content-type", "text/csv")
                .body(file),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{file}: {body}");
    }
    assert_eq!(api.directory.list(None).unwrap().len(), 4);

    // The operator: its numbers' capacity and assignment, even to another tenant's bridge.
    let (status, body) = send(api.with(&telco_a, Method::GET, "/api/v1/numbers")).await;
    assert_eq!(status, StatusCode::OK);
    let numbers: Vec<&str> = body["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["+33170000100"]);
    let (status, body) = send(
        api.with(
            &telco_a,
            Method::PUT,
            "/api/v1/numbers/+33170000100/capacity",
        )
        .json(&json!({"capacity": 300})),
    )
    .await;
    assert_eq!((status, &body["capacity"]), (StatusCode::OK, &json!(300)));
    let (status, body) = send(
        api.with(
            &telco_a,
            Method::PUT,
            "/api/v1/numbers/+33170000100/assignment",
        )
        .json(&json!({"bridge": "fabrikam-bridge"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // ...which takes it out of contoso's sight.
    let (_, body) = send(api.with(&contoso, Method::GET, "/api/v1/numbers")).await;
    assert!(!body.to_string().contains("+33170000100"), "{body}");
    api.stop().await;
}

#[tokio::test]
async fn a_session_cookie_stands_for_the_token_it_was_signed_in_with() {
    let api = Api::start().await;
    let contoso = api.token("tenant-admin", None, Some("contoso")).await;
    let session = api.url("/api/v1/session");

    // A browser still holding a cookie the bridge forgot (it restarted) signs in anew.
    let r = api
        .client
        .post(&session)
        .header("cookie", format!("dialbridge_session={}", "0".repeat(64)))
        .json(&json!({"token": contoso}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Wrong token, or a sign-in posted by another origin's page: no cookie.
    let r = api
        .client
        .post(&session)
        .json(&json!({"token": "dbt_nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    let r = api
        .client
        .post(&session)
        .header("origin", "http://127.0.0.1:9")
        .json(&json!({"token": contoso}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());

    let r = api
        .client
        .post(&session)
        .json(&json!({"token": contoso}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"role": "tenant-admin", "scope": "contoso", "expires_in": 28800})
    );
    let (pair, attributes) = set.split_once(';').unwrap();
    assert!(
        pair.starts_with("dialbridge_session=") && pair.len() == 19 + 64,
        "{set}"
    );
    assert_eq!(
        attributes,
        " HttpOnly; SameSite=Strict; Path=/; Max-Age=28800"
    );
    assert!(!set.contains(&contoso));

    // The cookie reads as the token does: contoso's only.
    let (status, body) = send(
        api.client
            .get(api.url("/api/v1/bridges"))
            .header("cookie", pair),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["bridges"].as_array().unwrap().len(), 1, "{body}");
    refused(
        send(
            api.client
                .get(api.url("/api/v1/plan/edits"))
                .header("cookie", pair),
        )
        .await,
        StatusCode::FORBIDDEN,
        "tenant-admin",
    );
    // A change with the cookie must come from our own origin.
    let mute = api.url("/api/v1/participants/7/mute");
    for origin in [None, Some("http://127.0.0.1:9")] {
        let mut req = api
            .client
            .post(&mute)
            .header("cookie", pair)
            .json(&json!({"muted": true}));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        refused(send(req).await, StatusCode::FORBIDDEN, "own page");
    }
    let (status, _) = send(
        api.client
            .post(&mute)
            .header("cookie", pair)
            .header("origin", format!("http://{}", api.addr))
            .json(&json!({"muted": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.live.actions.lock().unwrap().len(), 1);

    // Signing out ends it.
    let r = api
        .client
        .delete(&session)
        .header("cookie", pair)
        .header("origin", format!("http://{}", api.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    refused(
        send(
            api.client
                .get(api.url("/api/v1/bridges"))
                .header("cookie", pair),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "no such session",
    );

    // Revoking the token ends the sessions made with it.
    let r = api
        .client
        .post(&session)
        .bearer_auth(&contoso)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = set.split_once(';').unwrap().0.to_owned();
    let (status, _) = send(
        api.client
            .get(api.url("/api/v1/bridges"))
            .header("cookie", &pair),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, tokens) = api.get("/api/v1/tokens").await;
    let id = tokens["tokens"][0]["id"].as_i64().unwrap();
    let (status, _) = send(api.req(Method::DELETE, &format!("/api/v1/tokens/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    refused(
        send(
            api.client
                .get(api.url("/api/v1/bridges"))
                .header("cookie", &pair),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "sign in again",
    );
    api.stop().await;
}

#[tokio::test]
async fn an_open_event_stream_ends_when_its_token_is_revoked_or_its_session_ends() {
    let api = Api::start().await;
    let watcher = api.token("read-only", None, None).await;
    let mut by_token = api
        .with(&watcher, Method::GET, "/api/v1/events")
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), StatusCode::OK);
    first_event(&mut by_token).await;
    let r = api
        .client
        .post(api.url("/api/v1/session"))
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set.split_once(';').unwrap().0.to_owned();
    let mut by_cookie = api
        .client
        .get(api.url("/api/v1/events"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    first_event(&mut by_cookie).await;

    let (_, tokens) = api.get("/api/v1/tokens").await;
    let id = tokens["tokens"][0]["id"].as_i64().unwrap();
    let (status, _) = send(api.req(Method::DELETE, &format!("/api/v1/tokens/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        api.client
            .delete(api.url("/api/v1/session"))
            .header("cookie", &cookie)
            .header("origin", format!("http://{}", api.addr)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for (what, stream) in [("token", &mut by_token), ("session", &mut by_cookie)] {
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Ok(Some(_)) = stream.chunk().await {}
        })
        .await;
        assert!(ended.is_ok(), "the stream outlived its {what}");
    }
    api.stop().await;
}

#[tokio::test]
async fn money_balances_top_ups_and_adjustments() {
    let api = Api::start().await;
    let (status, body) = api.get("/api/v1/tenants/contoso/balance").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["currency"], "USD");
    assert_eq!(body["credits"], "20.00");
    assert_eq!(body["available"], "20.00");
    assert_eq!(
        body["pools"],
        json!([{"country": "+1", "minutes": 3000, "minutes_used": 0, "minutes_left": 3000}])
    );
    let (_, body) = api.get("/api/v1/tenants/fabrikam/balance").await;
    assert_eq!(
        (&body["credits"], &body["pools"]),
        (&json!("0.00"), &json!([]))
    );

    let credits = "/api/v1/tenants/fabrikam/credits";
    let (status, body) = api
        .json(Method::POST, credits, json!({"amount": "5.00"}))
        .await;
    assert_eq!(
        (status, &body["credits"]),
        (StatusCode::OK, &json!("5.00")),
        "{body}"
    );
    // What answered is committed: the ledger holds it.
    let held = api
        .ledger
        .balance("fabrikam", std::time::SystemTime::now())
        .unwrap();
    assert_eq!(held.credits.to_string(), "5.00");
    // Bad amounts, and adjustments below 0.00, change nothing.
    for (body, want, needle) in [
        (
            json!({"amount": "-6.00"}),
            StatusCode::CONFLICT,
            "at most 5.00",
        ),
        (
            json!({"amount": "five"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount: \"five\"",
        ),
        (
            json!({"amount": "1.00001"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "four decimals",
        ),
        (
            json!({"amount": "0.00"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "0.00",
        ),
        (
            json!({"amount": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount",
        ),
        (
            json!({"amount": "1", "to": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field",
        ),
    ] {
        refused(api.json(Method::POST, credits, body).await, want, needle);
    }
    refused(
        api.json(
            Method::POST,
            "/api/v1/tenants/northwind/credits",
            json!({"amount": "1.00"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "northwind",
    );
    refused(
        api.get("/api/v1/tenants/northwind/balance").await,
        StatusCode::NOT_FOUND,
        "has no money account",
    );
    let (_, body) = api.get("/api/v1/tenants/fabrikam/balance").await;
    assert_eq!(body["credits"], "5.00");
    // An adjustment may bring it to 0.00 exactly.
    let (status, body) = api
        .json(Method::POST, credits, json!({"amount": "-5.00"}))
        .await;
    assert_eq!(
        (status, &body["available"]),
        (StatusCode::OK, &json!("0.00")),
        "{body}"
    );
    api.stop().await;
}

#[tokio::test]
async fn money_usage_is_summed_per_provider_and_number_for_each_scope() {
    let api = Api::start().await;
    let billed = |n: i64, number: &str, provider: &str, tenant: &str, cost: &str| {
        let mut c = cdr(n);
        c.dialled = number.parse().unwrap();
        c.provider = Some(provider.into());
        c.tenant = tenant.into();
        c.answered = Some(c.arrived);
        c.ended_by = EndedBy::Caller;
        c.sip_status = 200;
        c.billing = (!cost.is_empty()).then(|| dialbridge_server::cdr::Billed {
            funding: "credits".into(),
            seconds: 60,
            cost: cost.parse().unwrap(),
            currency: "USD".parse().unwrap(),
        });
        c
    };
    for record in [
        billed(1, "+18885550100", "Microsoft", "contoso", "0.03"),
        billed(2, "+18885550100", "Microsoft", "contoso", "0.03"),
        billed(3, "+33170000100", "Telco A", "contoso", ""),
        billed(4, "+493070000100", "Telco B", "fabrikam", ""),
    ] {
        api.cdrs.record(&record).unwrap();
    }
    let month = "2026-11";
    let csv = |token: &str| {
        let req = api.with(token, Method::GET, &format!("/api/v1/usage?month={month}"));
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert!(content_type(&resp).starts_with("text/csv"));
            resp.text().await.unwrap()
        }
    };
    let all = csv(TOKEN).await;
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        [
            "provider,number,direction,funding,calls,minutes,cost,currency",
            "Microsoft,+18885550100,inbound,credits,2,2,0.06,USD",
            "Telco A,+33170000100,inbound,none,1,1,0.00,",
            "Telco B,+493070000100,inbound,none,1,1,0.00,",
        ]
    );
    let tenant = api.token("tenant-admin", None, Some("contoso")).await;
    let mine = csv(&tenant).await;
    assert!(
        mine.contains("+18885550100") && mine.contains("Telco A"),
        "{mine}"
    );
    assert!(!mine.contains("Telco B"), "{mine}");
    let operator = api.token("operator", Some("Telco A"), None).await;
    let theirs = csv(&operator).await;
    assert_eq!(theirs.lines().count(), 2, "{theirs}");
    assert!(theirs.contains("Telco A,+33170000100"), "{theirs}");
    // Another month is empty; a month that is not one is refused.
    let (status, text) = {
        let resp = api
            .req(Method::GET, "/api/v1/usage?month=2026-10")
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    };
    assert_eq!((status, text.lines().count()), (StatusCode::OK, 1));
    refused(
        api.get("/api/v1/usage?month=2026-13").await,
        StatusCode::BAD_REQUEST,
        "month",
    );
    refused(
        api.get("/api/v1/usage?year=2026").await,
        StatusCode::BAD_REQUEST,
        "year",
    );
    api.stop().await;
}
