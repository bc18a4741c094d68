//! The live dashboard end to end: headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` by fantoccini) opens the page the bridge serves, signs in with the
//! token once (a session cookie the page's script cannot read), sees the caller sbc-sim
//! placed into adele's meeting with its audio figures, and mutes it with a click, which
//! the admin API confirms (the poor-audio badge is shown for a lossy caller in
//! `tests/metrics.rs`, from the same snapshot).
//! Also the event stream's rules without a browser: the credential, the first snapshot,
//! the bound on open streams, and a bridge that stops with a dashboard open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dialbridge_server::admin::MAX_DASHBOARD_STREAMS;
use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::caller::{CALLING, JOIN_ADELE, caller, place, tone};
use dialbridge_testkit::wait_until;
use fantoccini::{Client, ClientBuilder, Locator};
use sbc_sim::CallOutcome;
use serde_json::{Value, json};

const DIALLED: &str = "+33170000100";
const INSTALL: &str = "install Debian's chromium and chromium-driver \
    (apt-get install -y chromium chromium-driver; scripts/test.sh does it)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_on_the_dashboard_mutes_a_caller_sbc_sim_placed() {
    // fantoccini's rustls comes with two crypto providers enabled: pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let driver = ChromeDriver::start().await;
    let bridge = TestBridge::start(demo_config()).await;
    let call = tokio::spawn(participant(bridge.sip_addr(), Duration::from_secs(25)));
    wait_until(
        "the caller in adele's meeting",
        || bridge.participants() == 1,
        Duration::from_secs(15),
    )
    .await;
    let browser = driver.browser().await;
    let base = format!("http://{}", bridge.admin_addr());

    // Without a token the page asks for one and shows no data.
    browser.goto(&format!("{base}/dashboard")).await.unwrap();
    let login = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("form#login:not([hidden])"))
        .await
        .unwrap();
    assert!(login.is_displayed().await.unwrap());
    let live = browser.find(Locator::Css("main#live")).await.unwrap();
    assert!(!live.is_displayed().await.unwrap());
    let rows = browser
        .find_all(Locator::Css("tr[data-participant]"))
        .await
        .unwrap();
    assert!(rows.is_empty());

    // Signed in once with the token in the form, the caller appears from the event stream.
    let field = browser.find(Locator::Css("input#token")).await.unwrap();
    field.send_keys(bridge.admin_token()).await.unwrap();
    browser
        .find(Locator::Css("form#login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let row_css = format!("#conferences tr[data-calling=\"{CALLING}\"]");
    let row = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&row_css))
        .await
        .unwrap_or_else(|e| panic!("the page never showed {CALLING}: {e}"));
    assert_eq!(
        row.attr("data-dialled").await.unwrap().as_deref(),
        Some(DIALLED)
    );
    let state = row.find(Locator::Css("td.state")).await.unwrap();
    assert_eq!(state.text().await.unwrap(), "live");
    // Its reception figures show once its call has published them: a clean line over
    // loopback, so no poor-audio badge.
    let figures = browser
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(&format!("{row_css} td.audio .figure")))
        .await
        .unwrap_or_else(|e| panic!("the page never showed {CALLING}'s audio figures: {e}"));
    let figures = figures.text().await.unwrap();
    assert!(figures.starts_with("loss 0.0% · jitter "), "{figures}");
    assert_eq!(
        row.attr("data-quality-warning").await.unwrap().as_deref(),
        Some("")
    );
    let login = browser.find(Locator::Css("form#login")).await.unwrap();
    assert!(!login.is_displayed().await.unwrap());
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.query(), None, "something in the address bar: {url}");
    // The session is in an HttpOnly cookie: nothing the page's script (or an injected
    // one) could read or keep holds a credential.
    let kept = browser
        .execute(
            "return [document.cookie, sessionStorage.length, localStorage.length, \
             document.getElementById('token').value];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, json!(["", 0, 0, ""]));
    // A reload keeps the session: no second sign-in.
    browser.refresh().await.unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&row_css))
        .await
        .unwrap_or_else(|e| panic!("the session did not survive a reload: {e}"));
    let login = browser.find(Locator::Css("form#login")).await.unwrap();
    assert!(!login.is_displayed().await.unwrap());
    let row = browser.find(Locator::Css(&row_css)).await.unwrap();

    row.find(Locator::Css("button.mute"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The bridge has the caller muted...
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed: Value = http
            .get(format!("{base}/api/v1/conferences"))
            .bearer_auth(bridge.admin_token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let caller = listed["conferences"][0]["participants"]
            .as_array()
            .and_then(|people| people.iter().find(|p| p["calling"] == CALLING))
            .cloned()
            .unwrap_or_else(|| panic!("{CALLING} is not listed: {listed}"));
        if caller["muted"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the click did not mute: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and the page shows it, as the stream reported it.
    let row = browser
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(&format!("{row_css}[data-muted=\"true\"]")))
        .await
        .unwrap_or_else(|e| panic!("the page never showed {CALLING} muted: {e}"));
    let state = row.find(Locator::Css("td.state")).await.unwrap();
    assert_eq!(state.text().await.unwrap(), "muted");
    let button = row.find(Locator::Css("button.mute")).await.unwrap();
    assert_eq!(button.text().await.unwrap(), "Unmute");

    // A call refused while the page is open shows in the refusals, as recent.
    let refused = call_from(
        "127.0.0.10",
        bridge.sip_addr(),
        "+14255550999",
        Duration::ZERO,
        404,
    )
    .await;
    assert!(refused.passed(), "{:?}", refused.failures);
    let recent = browser
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("#refusals tr.recent"))
        .await
        .unwrap_or_else(|e| panic!("the page never showed the refusal: {e}"));
    assert_eq!(recent.text().await.unwrap(), "unassigned 1 1");

    let png = browser.screenshot().await.unwrap();
    let _ = std::fs::write(std::env::temp_dir().join("dashboard.png"), png);
    browser.close().await.unwrap();
    drop(driver);
    call.abort();
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_wants_the_token_is_bounded_and_ends_with_the_bridge() {
    let bridge = TestBridge::start(demo_config()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", bridge.admin_addr());
    let events = format!("{base}/api/v1/events");
    let token = bridge.admin_token().to_owned();

    // The page and its assets need no token; the page may only run its own script.
    let page = http.get(format!("{base}/dashboard")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("/dashboard/dashboard.js")
    );
    for (asset, kind) in [
        ("dashboard.js", "text/javascript"),
        ("dashboard.css", "text/css"),
    ] {
        let r = http
            .get(format!("{base}/dashboard/{asset}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{asset}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }

    // The stream is an API route: the bearer header or the session cookie, never a
    // query parameter; and the page's script knows no other way in.
    let r = http.get(&events).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .get(format!("{events}?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let script = http
        .get(format!("{base}/dashboard/dashboard.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for absent in [
        "token=",
        "searchParams",
        "sessionStorage",
        "localStorage",
        "Authorization",
    ] {
        assert!(!script.contains(absent), "the page's script uses {absent}");
    }
    let signed_in = http
        .post(format!("{base}/api/v1/session"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 200);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let mut by_cookie = http
        .get(&events)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status().as_u16(), 200);
    next_snapshot(&mut by_cookie).await;

    let mut first = http.get(&events).bearer_auth(&token).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(
        first.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let snapshot = next_snapshot(&mut first).await;
    let contoso = snapshot["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "contoso-bridge")
        .unwrap_or_else(|| panic!("{snapshot}"));
    assert_eq!(contoso["capacity"], 1000);
    assert_eq!(contoso["tenant"], "contoso");
    let user = contoso["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["number"] == "+14255550123")
        .unwrap_or_else(|| panic!("{snapshot}"));
    assert_eq!(user["kind"], "user");
    assert_eq!(user["capacity"], 2);
    assert_eq!(user["in_progress"], 0);
    assert_eq!(snapshot["unassigned"][0]["number"], "+14255550999");
    assert_eq!(snapshot["conferences"], json!([]));

    // At most MAX_DASHBOARD_STREAMS at once; a closed one frees its place.
    let mut open = vec![first, by_cookie];
    while open.len() < MAX_DASHBOARD_STREAMS {
        let r = http.get(&events).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "stream {}", open.len() + 1);
        open.push(r);
    }
    let refused = http.get(&events).bearer_auth(&token).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = http.get(&events).bearer_auth(&token).send().await.unwrap();
        if r.status().as_u16() == 200 {
            open.push(r);
            break;
        }
        assert!(Instant::now() < deadline, "a closed stream kept its place");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A bridge stops with dashboards open (a graceful shutdown waits for responses to
    // end, and these would never end by themselves).
    tokio::time::timeout(Duration::from_secs(10), bridge.stop())
        .await
        .expect("the bridge stops with dashboards open");
    let mut stream = open.swap_remove(0);
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream outlived the bridge");
}

/// The next `event: snapshot` of `stream`, within 5 s.
async fn next_snapshot(stream: &mut reqwest::Response) -> Value {
    let mut text = String::new();
    let read = async {
        loop {
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                if block.lines().any(|l| l == "event: snapshot") {
                    let data: Vec<&str> = block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect();
                    return serde_json::from_str::<Value>(&data.join("\n")).unwrap();
                }
            }
            let chunk = stream.chunk().await.unwrap().expect("the stream ended");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a snapshot within 5 s")
}

/// One caller from Telco A into adele's meeting (conference ID, then `#` as a
/// participant), holding for `hold`.
async fn participant(bridge: SocketAddr, hold: Duration) -> CallOutcome {
    call_from("127.0.0.20", bridge, DIALLED, hold, 200).await
}

/// A call from the trunk at `trunk` to `to`, expecting `status`.
async fn call_from(
    trunk: &str,
    bridge: SocketAddr,
    to: &str,
    hold: Duration,
    status: u16,
) -> CallOutcome {
    let mut config = caller(to, tone(440.0), JOIN_ADELE, hold);
    config.record_limit = 0;
    config.expect.status = status;
    place(bridge, trunk, config).await
}

/// A chromedriver on a free port, in its own process group so that dropping it ends
/// the Chromium it started too, and a fresh Chromium profile directory.
struct ChromeDriver {
    child: std::process::Child,
    port: u16,
    chromium: PathBuf,
    profile: PathBuf,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        let chromedriver =
            executable("chromedriver").unwrap_or_else(|| panic!("no chromedriver: {INSTALL}"));
        let chromium = executable("chromium").unwrap_or_else(|| panic!("no chromium: {INSTALL}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let profile = std::env::temp_dir().join(format!(
            "dialbridge-dashboard-{}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let child = {
            use std::os::unix::process::CommandExt;
            std::process::Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", chromedriver.display()))
        };
        let driver = ChromeDriver {
            child,
            port,
            chromium,
            profile,
        };
        let status = format!("http://127.0.0.1:{port}/status");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = match reqwest::get(&status).await {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver never got ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium session.
    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            }),
        );
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e}"))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any Chromium it left behind.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `name` on the PATH.
fn executable(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
