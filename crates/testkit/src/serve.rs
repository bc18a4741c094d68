//! `dialbridge serve` as a separate process, for tests that want the real binary with
//! a config file: [`DemoToml`] is fixtures/demo.toml with the keys a test changes
//! (ports, listen lists, the CDR file and the ledger), [`Serve`] runs it and kills it by
//! PID on drop.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo's admin API token.
pub const DEMO_TOKEN: &str = "demo-admin-token";
/// How long a bridge may take to listen.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The text of fixtures/demo.toml, edited key by key.
#[derive(Debug, Clone)]
pub struct DemoToml {
    text: String,
}

impl DemoToml {
    /// The demo deployment, its relative paths (certificate, prompts, organisers) made
    /// absolute under fixtures/, its call records and recordings in `scratch`, and no
    /// OPTIONS probing of the trunks.
    pub fn new(scratch: &Path) -> DemoToml {
        let fixtures = crate::fixtures();
        let text = std::fs::read_to_string(fixtures.join("demo.toml")).expect("fixtures/demo.toml");
        let abs = |rel: &str| toml_string(&fixtures.join(rel).to_string_lossy());
        DemoToml { text }
            .set("sip", "tls_certificate", &abs("tls/cert.pem"))
            .set("sip", "tls_private_key", &abs("tls/key.pem"))
            .set("media", "welcome_prompt", &abs("prompts/welcome.wav"))
            .set("directory", "import", &abs("organisers.csv"))
            .set(
                "admin",
                "cdr_database",
                &toml_string(&scratch.join("cdr.sqlite").to_string_lossy()),
            )
            .set(
                "conference",
                "recordings_dir",
                &toml_string(&scratch.join("recordings").to_string_lossy()),
            )
            // No OPTIONS to the demo's outbound targets: they would reach whatever
            // another test binds there, and keep transactions alive that a test counts.
            // The tests of trunk health set an interval again.
            .set("trunk_health", "interval_ms", "0")
            .set(
                "money",
                "database",
                &toml_string(&scratch.join("ledger.sqlite").to_string_lossy()),
            )
    }

    /// Every listener on 127.0.0.1: SIP over UDP and TCP on `sip`, TLS on `tls`, the
    /// admin API on `admin` (see [`crate::ports::free_udp_tcp_port`]).
    pub fn on_loopback_ports(self, sip: u16, tls: u16, admin: u16) -> DemoToml {
        self.on_address(IpAddr::from([127, 0, 0, 1]), sip, tls, admin)
    }

    /// Every listener, and the RTP (IPv4), on `ip`: a node of its own address, as
    /// behind Kamailio (127.0.1.x).
    pub fn on_address(self, ip: IpAddr, sip: u16, tls: u16, admin: u16) -> DemoToml {
        let at = |port: u16| toml_string(&SocketAddr::new(ip, port).to_string());
        self.set("sip", "udp", &at(sip))
            .set("sip", "tcp", &at(sip))
            .set("sip", "tls", &at(tls))
            .set("admin", "listen", &at(admin))
            .set("media", "address", &toml_string(&ip.to_string()))
    }

    /// Sets `key` of table `[section]` to `value` (TOML, e.g. `"\"127.0.0.1:5070\""` or
    /// `"[\"127.0.0.1:5070\", \"[::1]:5070\"]"`), replacing its line, or adding it at the
    /// top of the table. Panics when the table is not in the file.
    pub fn set(mut self, section: &str, key: &str, value: &str) -> DemoToml {
        let header = format!("[{section}]");
        let mut lines: Vec<String> = self.text.lines().map(str::to_owned).collect();
        let start = lines
            .iter()
            .position(|l| l.trim() == header)
            .unwrap_or_else(|| panic!("no {header} in fixtures/demo.toml"));
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.trim_start().starts_with('['))
            .map_or(lines.len(), |i| start + 1 + i);
        let line = format!("{key} = {value}");
        let existing = (start + 1..end).find(|&i| {
            lines[i]
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == key)
        });
        match existing {
            Some(i) => lines[i] = line,
            None => lines.insert(start + 1, line),
        }
        self.text = lines.join("\n") + "\n";
        self
    }

    /// Adds `line` to the `[[trunk]]` named `name` (e.g. `symmetric_rtp = true`). Panics
    /// when the demo has no such trunk.
    pub fn trunk_set(mut self, name: &str, line: &str) -> DemoToml {
        let anchor = format!("name = {}\n", toml_string(name));
        assert!(
            self.text.contains(&anchor),
            "no trunk {name} in fixtures/demo.toml"
        );
        self.text = self.text.replacen(&anchor, &format!("{anchor}{line}\n"), 1);
        self
    }

    /// Replaces every `from` in the file's text with `to`; panics when there is none.
    pub fn replace(mut self, from: &str, to: &str) -> DemoToml {
        assert!(self.text.contains(from), "no {from:?} in the config");
        self.text = self.text.replace(from, to);
        self
    }

    /// Adds a table `[section]` with `lines` (TOML `key = value` lines) at the end.
    pub fn add_table(mut self, section: &str, lines: &[String]) -> DemoToml {
        self.text.push_str(&format!("\n[{section}]\n"));
        for line in lines {
            self.text.push_str(line);
            self.text.push('\n');
        }
        self
    }

    /// The config file's text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A TOML basic string.
pub fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A running `dialbridge serve --config FILE`.
#[derive(Debug)]
pub struct Serve {
    child: Child,
    admin: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
    /// Leave the directory (its databases) for the next bridge: a restart.
    keep_files: bool,
}

impl Serve {
    /// Writes `config` to `dir/bridge.toml`, starts `bin` (the test's
    /// `env!("CARGO_BIN_EXE_dialbridge")`) on it and waits until its admin API at
    /// `admin` accepts connections (the bridge binds every listener before serving any).
    /// Panics with the bridge's output when it exits or never listens.
    pub async fn start(bin: &Path, config: &DemoToml, admin: SocketAddr, dir: &Path) -> Serve {
        std::fs::create_dir_all(dir).expect("the bridge's scratch directory");
        let path = dir.join("bridge.toml");
        std::fs::write(&path, config.text()).expect("write the bridge's config");
        let log = dir.join("bridge.log");
        let out = std::fs::File::create(&log).expect("the bridge's log file");
        let err = out.try_clone().expect("the bridge's log file");
        let child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut serve = Serve {
            child,
            admin,
            dir: dir.to_owned(),
            log,
            keep_files: false,
        };
        let end = Instant::now() + START_LIMIT;
        loop {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!(
                    "dialbridge serve exited ({status}) on this config:\n{}\n--- its output ---\n{}",
                    config.text(),
                    serve.log()
                );
            }
            if tokio::net::TcpStream::connect(admin).await.is_ok() {
                return serve;
            }
            assert!(
                Instant::now() < end,
                "dialbridge serve did not listen on {admin} within {START_LIMIT:?}:\n{}",
                serve.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts `bin` on the demo's config with every listener on a free loopback port,
    /// `edit` applied last, its files in `dir`: the bridge and its SIP address (UDP and
    /// TCP). For tests that run several bridges (nodes) side by side.
    pub async fn start_demo(
        bin: &Path,
        dir: &Path,
        edit: impl FnOnce(DemoToml) -> DemoToml,
    ) -> (Serve, SocketAddr) {
        Serve::start_demo_on(bin, dir, crate::ip("127.0.0.1"), edit).await
    }

    /// [`Serve::start_demo`] with every listener and the RTP on `ip` (see
    /// [`DemoToml::on_address`]).
    pub async fn start_demo_on(
        bin: &Path,
        dir: &Path,
        ip: IpAddr,
        edit: impl FnOnce(DemoToml) -> DemoToml,
    ) -> (Serve, SocketAddr) {
        let [sip, tls, admin] = [(); 3].map(|()| crate::ports::free_udp_tcp_port(ip));
        let config = edit(DemoToml::new(dir).on_address(ip, sip, tls, admin));
        let serve = Serve::start(bin, &config, SocketAddr::new(ip, admin), dir).await;
        (serve, SocketAddr::new(ip, sip))
    }

    /// Its admin API's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Kills the bridge (SIGKILL) and leaves its directory, so that a bridge started on
    /// it next finds its databases: a restart after a crash.
    pub fn kill_keeping_files(mut self) {
        self.keep_files = true;
    }

    /// `PUT` of a JSON body on the admin API (demo token); the status and the body.
    pub async fn put_json(&self, path: &str, body: &str) -> (u16, String) {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    /// `POST` of a JSON body on the admin API (demo token); the status and the body.
    pub async fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    async fn send_json(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, String) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client");
        let url = format!("http://{}{path}", self.admin);
        let sent = client
            .request(method, &url)
            .bearer_auth(DEMO_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    }

    /// What the bridge has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded, 20 s) until the node says Redis takes its reservations
    /// (`dialbridge_shared_capacity_ready 1`: a fresh Redis settles first); panics with
    /// its log if it never does.
    pub async fn wait_shared_ready(&self) {
        for _ in 0..400 {
            let (_, metrics) = self.get("/metrics").await;
            if metrics.contains("\ndialbridge_shared_capacity_ready 1\n") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "the node's shared capacity never became ready:\n{}",
            self.log()
        );
    }

    /// `GET` on the admin API (demo token); the status and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client");
        let url = format!("http://{}{path}", self.admin);
        match client.get(&url).bearer_auth(DEMO_TOKEN).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    }

    /// Who is in conference `id` right now and admitted to its mix (not in the lobby):
    /// each participant's calling user (From user part), from `GET /api/v1/conferences`.
    pub async fn in_meeting(&self, id: &str) -> Vec<String> {
        self.participants_where(id, false).await
    }

    /// Who waits in conference `id`'s lobby right now: each one's calling user, from
    /// `GET /api/v1/conferences`.
    pub async fn in_lobby(&self, id: &str) -> Vec<String> {
        self.participants_where(id, true).await
    }

    async fn participants_where(&self, id: &str, in_lobby: bool) -> Vec<String> {
        let (status, body) = self.get("/api/v1/conferences").await;
        if status != 200 {
            return Vec::new();
        }
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&body) else {
            return Vec::new();
        };
        let conferences = value
            .as_array()
            .or_else(|| value.get("conferences").and_then(|c| c.as_array()))
            .cloned()
            .unwrap_or_default();
        conferences
            .iter()
            .filter(|c| c["conference_id"] == id)
            .flat_map(|c| c["participants"].as_array().cloned().unwrap_or_default())
            .filter(|p| p["in_lobby"] == in_lobby)
            .filter_map(|p| p["calling"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.keep_files {
            return;
        }
        if std::thread::panicking() {
            eprintln!("the bridge's files are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
