//! `dialbridge serve` as people run it: the real binary, the demo deployment (moved to
//! free ports so tests run in parallel and next to a running demo), dialled by sipp, and
//! stopped with SIGTERM; and `dialbridge token` making and revoking tokens for a running
//! bridge through its durable file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dialbridge_testkit::ports::free_udp_tcp_port;
use dialbridge_testkit::sipp::Sipp;

struct Serve {
    child: Child,
    sip: SocketAddr,
    admin: SocketAddr,
    config: std::path::PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Serve {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let sip_port = free_udp_tcp_port(lo);
    let tls_port = free_udp_tcp_port(lo);
    let admin_port = free_udp_tcp_port(lo);
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let text = dialbridge_server::config::DEMO_CONFIG
        .replace(":5060\"", &format!(":{sip_port}\""))
        .replace(":5061\"", &format!(":{tls_port}\""))
        .replace("127.0.0.1:8088", &format!("127.0.0.1:{admin_port}"))
        .replace("../target/dialbridge-demo-cdr.sqlite", "cdr.sqlite")
        .replace("[sip]\n", "[sip]\ndrain_timeout_ms = 8000\n");
    let dir = std::env::temp_dir().join(format!(
        "dialbridge-serve-{}-{sip_port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    // Relative paths resolve against the config's directory: point them at fixtures/.
    for entry in ["tls", "prompts", "organisers.csv"] {
        let link = dir.join(entry);
        if !link.exists() {
            std::os::unix::fs::symlink(fixtures.join(entry), link).unwrap();
        }
    }
    let path = dir.join("demo.toml");
    std::fs::write(&path, text).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_dialbridge"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Serve {
        child,
        sip: SocketAddr::new(lo, sip_port),
        admin: SocketAddr::new(lo, admin_port),
        config: path,
    }
}

async fn until_it_answers(sip: SocketAddr) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let ping = Sipp::new(
            "uac-options.xml",
            sip,
            "127.0.0.10".parse().unwrap(),
            "ping",
        )
        .timeout(Duration::from_secs(2))
        .run()
        .await;
        if ping.passed() {
            return;
        }
        assert!(
            Instant::now() < end,
            "dialbridge serve never answered:\n{}",
            ping.log
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialbridge_serve_answers_a_sipp_call_and_stops_on_sigterm() {
    let mut serve = serve();
    until_it_answers(serve.sip).await;
    let call = Sipp::new(
        "uac-call.xml",
        serve.sip,
        "127.0.0.10".parse().unwrap(),
        "+14255550100",
    )
    .run()
    .await;
    assert!(call.passed(), "{}", call.log);
    let pid = serve.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < end, "dialbridge did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_refuses_new_calls_with_503_while_existing_calls_finish() {
    let mut serve = serve();
    until_it_answers(serve.sip).await;
    let pstn: IpAddr = "127.0.0.10".parse().unwrap();
    let sip = serve.sip;
    let existing = tokio::spawn(async move {
        Sipp::new("uac-call.xml", sip, pstn, "+14255550100")
            .hold(Duration::from_secs(4))
            .run()
            .await
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let probe_from: IpAddr = "127.0.0.1".parse().unwrap();
    let ping = || dialbridge_testkit::options::ping(sip, probe_from, Duration::from_secs(2));
    assert_eq!(ping().await, Some(200), "a live node answers OPTIONS 200");
    let pid = serve.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A load balancer's OPTIONS probe hears the drain: no new calls are sent here.
    assert_eq!(
        ping().await,
        Some(503),
        "a draining node answers OPTIONS 503"
    );
    let refused = Sipp::new("uac-refused-503.xml", sip, pstn, "+14255550100")
        .run()
        .await;
    assert!(
        refused.passed(),
        "a new call during the drain gets 503:\n{}",
        refused.log
    );
    let existing = existing.await.unwrap();
    assert!(
        existing.passed(),
        "the call in progress finishes normally:\n{}",
        existing.log
    );
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < end, "dialbridge did not stop once drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_number_plan() {
    let serve = serve();
    until_it_answers(serve.sip).await;
    let pstn: IpAddr = "127.0.0.10".parse().unwrap();
    // +14255550999 is assigned to nothing: 404. Assign it in the file and reload.
    let refused = Sipp::new("uac-refused-404.xml", serve.sip, pstn, "+14255550999")
        .run()
        .await;
    assert!(refused.passed(), "{}", refused.log);
    let text = std::fs::read_to_string(&serve.config).unwrap().replace(
        "provider = \"Microsoft\"\n# assigned to nothing: calls to it are refused with 404",
        "provider = \"Microsoft\"\nbridge = \"contoso-bridge\"",
    );
    std::fs::write(&serve.config, text).unwrap();
    let pid = serve.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let call = Sipp::new("uac-call.xml", serve.sip, pstn, "+14255550999")
            .hold(Duration::from_millis(200))
            .timeout(Duration::from_secs(5))
            .run()
            .await;
        if call.passed() {
            break;
        }
        assert!(
            Instant::now() < end,
            "the reloaded plan never took effect:\n{}",
            call.log
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// sipp's cumulative count of calls that ended as the scenario expected.
fn successful_calls(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.trim_start().starts_with("Successful call"))
        .filter_map(|l| l.split('|').nth(2)?.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_record_of_an_ended_call() {
    let mut serve = serve();
    until_it_answers(serve.sip).await;
    let pstn: IpAddr = "127.0.0.10".parse().unwrap();
    let load = Sipp::new("uac-call.xml", serve.sip, pstn, "+14255550100")
        .calls(80, 30)
        .rate(20)
        .hold(Duration::from_millis(400))
        .timeout(Duration::from_secs(20));
    let running = tokio::spawn(async move { load.run().await });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    serve.child.kill().unwrap(); // SIGKILL: no drain, no flush, no goodbye
    let _ = serve.child.wait();
    let outcome = running.await.unwrap();
    let ended = successful_calls(&outcome.log);
    assert!(
        ended > 10,
        "some calls ended before the kill:\n{}",
        outcome.log
    );
    let db = serve.config.with_file_name("cdr.sqlite");
    let store = dialbridge_server::cdr::CdrStore::open(db.to_str().unwrap()).unwrap();
    let recorded = store.count().unwrap();
    assert!(
        recorded >= ended,
        "{ended} calls ended (BYE answered) before the kill, {recorded} records survived"
    );
}

/// `dialbridge token ...` on `config`: its status, standard output and standard error.
fn token_command(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dialbridge"))
        .arg("token")
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_commands_make_and_revoke_tokens_a_running_bridge_honours() {
    let bridge = serve();
    let http = reqwest::Client::new();
    let bridges = format!("http://{}/api/v1/bridges", bridge.admin);
    let get = |token: String| {
        let request = http.get(&bridges).bearer_auth(token);
        async move {
            match request.send().await {
                Ok(r) => Some((r.status().as_u16(), r.text().await.unwrap_or_default())),
                Err(_) => None,
            }
        }
    };
    let end = Instant::now() + Duration::from_secs(20);
    while get("demo-admin-token".into()).await.is_none() {
        assert!(Instant::now() < end, "the admin API never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (ok, secret, said) = token_command(
        &bridge.config,
        &[
            "create",
            "--role",
            "tenant-admin",
            "--tenant",
            "contoso",
            "--name",
            "helpdesk",
        ],
    );
    assert!(ok, "{said}");
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("dbt_") && secret.len() == 68, "{secret}");
    assert!(said.contains("tenant-admin of contoso"), "{said}");
    let (status, body) = get(secret.clone()).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("contoso-bridge") && !body.contains("fabrikam"),
        "{body}"
    );

    let (ok, listed, said) = token_command(&bridge.config, &["list"]);
    assert!(ok, "{said}");
    assert!(
        listed.contains("helpdesk") && listed.contains("contoso"),
        "{listed}"
    );
    assert!(!listed.contains(&secret[4..]), "{listed}");
    let id = listed
        .lines()
        .find(|l| l.contains("helpdesk"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();

    // Refused at the running bridge's next request.
    let (ok, said, _) = token_command(&bridge.config, &["revoke", &id]);
    assert!(ok && said.contains("revoked"), "{said}");
    assert_eq!(get(secret).await.unwrap().0, 401);
    assert_eq!(get("demo-admin-token".into()).await.unwrap().0, 200);

    // Bad requests say why and make nothing.
    for (args, needle) in [
        (
            &["create", "--role", "operator", "--name", "x"][..],
            "bound to a provider",
        ),
        (
            &[
                "create",
                "--role",
                "tenant-admin",
                "--tenant",
                "northwind",
                "--name",
                "x",
            ][..],
            "no bridge of tenant",
        ),
        (&["revoke", "999"][..], "no token 999"),
    ] {
        let (ok, _, said) = token_command(&bridge.config, args);
        assert!(!ok && said.contains(needle), "{args:?}: {said}");
    }
}
