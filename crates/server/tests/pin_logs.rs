//! No PIN reaches a log: the real binary, logging everything it can (`RUST_LOG=trace`,
//! JSON lines), takes a leader who keys a wrong PIN and then adele's right one. Its
//! whole output (stdout and stderr, up to its exit) then shows the leader's join, and
//! neither PIN. Likewise no admin token and no session id: made, used, signed in with,
//! refused and revoked, none of them is ever logged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dialbridge_testkit::caller::{caller, place, tone};
use dialbridge_testkit::ports::free_udp_tcp_port;

/// Adele's leader PIN (fixtures/organisers.csv, /work/shared/DEMO.md).
const LEADER_PIN: &str = "13579";
/// A PIN that is nobody's.
const WRONG_PIN: &str = "97531";

/// `dialbridge serve --json-logs` on the demo deployment moved to free ports, its
/// stdout and stderr going to files.
struct Serve {
    child: Child,
    sip: SocketAddr,
    admin: SocketAddr,
    dir: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Serve {
    fn start() -> Serve {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let sip_port = free_udp_tcp_port(lo);
        let tls_port = free_udp_tcp_port(lo);
        let admin_port = free_udp_tcp_port(lo);
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let text = dialbridge_server::config::DEMO_CONFIG
            .replace(":5060\"", &format!(":{sip_port}\""))
            .replace(":5061\"", &format!(":{tls_port}\""))
            .replace("127.0.0.1:8088", &format!("127.0.0.1:{admin_port}"))
            .replace("../target/dialbridge-demo-cdr.sqlite", "cdr.sqlite");
        let dir = std::env::temp_dir().join(format!(
            "dialbridge-pin-logs-{}-{sip_port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // Relative paths resolve against the config's directory: point them at fixtures/.
        for entry in ["tls", "prompts", "organisers.csv"] {
            std::os::unix::fs::symlink(fixtures.join(entry), dir.join(entry)).unwrap();
        }
        let config = dir.join("demo.toml");
        std::fs::write(&config, text).unwrap();
        let stdout = std::fs::File::create(dir.join("stdout")).unwrap();
        let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dialbridge"))
            .args(["--json-logs", "serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        Serve {
            child,
            sip: SocketAddr::new(lo, sip_port),
            admin: SocketAddr::new(lo, admin_port),
            dir,
        }
    }

    /// Everything the bridge wrote so far, stdout then stderr.
    fn output(&self) -> String {
        let read = |name| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        read("stdout") + &read("stderr")
    }

    /// Waits until the output holds `text`.
    async fn until_logged(&self, text: &str, within: Duration) {
        let end = Instant::now() + within;
        while !self.output().contains(text) {
            assert!(
                Instant::now() < end,
                "never logged {text:?}:\n{}",
                tail(&self.output())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, and waits for the exit (the logs are then complete).
    async fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let end = Instant::now() + Duration::from_secs(40);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "dialbridge did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The end of a long output, for failure messages.
fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    &text[start..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_a_wrong_nor_the_right_leader_pin_is_ever_logged() {
    let mut serve = Serve::start();
    serve
        .until_logged("dialbridge listening", Duration::from_secs(20))
        .await;
    // Adele's meeting, a wrong PIN, then hers (keyed over the wrong-PIN prompt).
    let script = format!(
        "wait 500ms, keys 123456789#, wait 2000ms, keys {WRONG_PIN}#, wait 2500ms, \
         keys {LEADER_PIN}#"
    );
    let outcome = place(
        serve.sip,
        "127.0.0.20",
        caller("+33170000100", tone(440.0), &script, Duration::from_secs(2)),
    )
    .await;
    assert!(outcome.passed(), "{:?}", outcome.failures);
    serve.stop().await;

    let output = serve.output();
    let lines: Vec<&str> = output.lines().collect();
    // The logs are on and verbose: the leader's join is there, and debug lines too
    // (nothing in a call's path logs below debug today; trace would show here).
    assert!(
        lines
            .iter()
            .any(|l| l.contains("caller joins the meeting") && l.contains("Leader")),
        "the leader's join is not logged:\n{}",
        tail(&output)
    );
    assert!(
        lines.iter().any(|l| l.contains(r#""level":"DEBUG""#)),
        "no debug line: is RUST_LOG=trace honoured?\n{}",
        tail(&output)
    );
    for pin in [LEADER_PIN, WRONG_PIN] {
        let leaks: Vec<&&str> = lines.iter().filter(|l| l.contains(pin)).collect();
        assert!(leaks.is_empty(), "PIN {pin} logged: {leaks:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_session_id_is_ever_logged() {
    let mut serve = Serve::start();
    serve
        .until_logged("dialbridge listening", Duration::from_secs(20))
        .await;
    let base = format!("http://{}", serve.admin);
    let http = reqwest::Client::new();
    let admin = "demo-admin-token";
    let made: serde_json::Value = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "logs", "role": "tenant-admin", "tenant": "contoso"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = made["secret"].as_str().unwrap().to_owned();
    let id = made["id"].as_i64().unwrap();
    let get = |path: &str| http.get(format!("{base}{path}"));
    assert_eq!(
        status(get("/api/v1/bridges").bearer_auth(&secret)).await,
        200
    );
    assert_eq!(
        status(get("/api/v1/tokens").bearer_auth(&secret)).await,
        403
    );
    let wrong = format!("{}0", &secret[..secret.len() - 1]);
    let wrong = if wrong == secret {
        format!("{}1", &secret[..secret.len() - 1])
    } else {
        wrong
    };
    assert_eq!(
        status(get("/api/v1/bridges").bearer_auth(&wrong)).await,
        401
    );
    let signed_in = http
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"token": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 200);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let session = cookie.split_once('=').unwrap().1.to_owned();
    let by_cookie = || get("/api/v1/conferences").header("cookie", &cookie);
    assert_eq!(status(by_cookie()).await, 200);
    let revoke = http
        .delete(format!("{base}/api/v1/tokens/{id}"))
        .bearer_auth(admin);
    assert_eq!(status(revoke).await, 200);
    assert_eq!(status(by_cookie()).await, 401);
    serve
        .until_logged("admin: token revoked", Duration::from_secs(5))
        .await;
    serve.stop().await;

    let output = serve.output();
    assert!(output.contains("admin: signed in"), "{}", tail(&output));
    for secret in [admin, secret.as_str(), wrong.as_str(), session.as_str()] {
        let leaks: Vec<&str> = output.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "a secret logged: {leaks:#?}");
    }
}

/// The status of the answer to `request`.
async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}
