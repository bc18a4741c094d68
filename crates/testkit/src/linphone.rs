//! Linphone, a real softphone, driven headless: `linphonec` (Debian's linphone-cli) in
//! a scratch directory with its own HOME and config file, told through its standard
//! input to use WAV files instead of a sound card (`soundcard use files`, `play`,
//! `record`), to dial, to key DTMF and to hang up; its answers read from its standard
//! output, its SIP exchange from its log. The process is killed by PID on drop.
//!
//! Linphone guesses its own address from its default route and writes it in its SDP
//! (and, without an account, in its From): run it in a private network namespace
//! ([`crate::netns`]), where that address is a stand-in that exists only in the test.
//!
//! The config file holds only what a user sets — an account and its password — plus
//! the SIP port: Linphone's default, 5060, is the bridge's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};

/// Linphone's SIP port in tests (its default, 5060, is the bridge's).
pub const SIP_PORT: u16 = 5070;
/// How long Linphone may take to bring its SIP transport up (it waits for its network
/// reachability check).
const READY_LIMIT: Duration = Duration::from_secs(30);
/// How long a call may take to be answered, or to end after `terminate`.
const CALL_LIMIT: Duration = Duration::from_secs(20);
/// `linphonec` sends the keys of one line one per second.
pub const KEY_INTERVAL: Duration = Duration::from_secs(1);

/// Who Linphone is, as a user would set it up.
#[derive(Debug, Clone)]
pub enum Identity {
    /// An account ("Use a SIP account"): user, password and SIP domain (the bridge's
    /// address), registration off, display name.
    Account {
        display: String,
        user: String,
        password: String,
        domain: String,
    },
    /// No account: the identity's user and display name only (Linphone puts the
    /// address it guesses for itself in From), and a password for the user's digest
    /// challenges.
    IdentityOnly {
        display: String,
        user: String,
        password: String,
    },
}

impl Identity {
    /// alice's account on the bridge at `domain` (`127.0.0.1`), registration off.
    pub fn alice_account(domain: &str) -> Identity {
        Identity::Account {
            display: "Alice".into(),
            user: "alice".into(),
            password: "alice-secret".into(),
            domain: domain.into(),
        }
    }

    /// alice as Linphone's identity, with no account.
    pub fn alice_identity() -> Identity {
        Identity::IdentityOnly {
            display: "Alice".into(),
            user: "alice".into(),
            password: "alice-secret".into(),
        }
    }
}

/// The `linphonerc` for `identity`: its account (or identity) and an auth entry for the
/// bridge's realm, the SIP port, nothing else — Linphone fills in its own defaults.
pub fn rc_file(identity: &Identity, sip_port: u16) -> String {
    let mut rc = format!("[sip]\nsip_port={sip_port}\nsip_tcp_port={sip_port}\n");
    let (user, password) = match identity {
        Identity::Account {
            display,
            user,
            password,
            domain,
        } => {
            rc.push_str(&format!(
                "default_proxy=0\n\n[proxy_0]\n\
                 reg_proxy=<sip:{domain};transport=udp>\n\
                 reg_identity=\"{display}\" <sip:{user}@{domain}>\n\
                 reg_sendregister=0\n"
            ));
            (user, password)
        }
        Identity::IdentityOnly {
            display,
            user,
            password,
        } => {
            // Linphone's own default is `sip:linphone@unknown-host`; the host part is
            // replaced by the address it guesses.
            rc.push_str(&format!(
                "contact=\"{display}\" <sip:{user}@unknown-host>\n"
            ));
            (user, password)
        }
    };
    rc.push_str(&format!(
        "\n[auth_info_0]\nusername={user}\npasswd={password}\nrealm=dialbridge\n"
    ));
    rc
}

/// The version `linphonec --version` prints, e.g. `5.1.65`; None when not installed.
pub fn version() -> Option<String> {
    let out = std::process::Command::new("linphonec")
        .arg("--version")
        .output()
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.split_whitespace().last().map(str::to_owned)
}

/// A running `linphonec`.
#[derive(Debug)]
pub struct Linphone {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl Linphone {
    /// Starts `linphonec` as `identity` in a new scratch directory, switches it to WAV
    /// files for audio, and waits until its SIP transport is up. Panics, saying how to
    /// install it, when `linphonec` is missing.
    pub async fn start(identity: &Identity) -> Linphone {
        let dir = crate::scratch_dir("linphone");
        let home = dir.join("home");
        // Linphone keeps its call history and chat database here.
        std::fs::create_dir_all(home.join(".local/share/linphone")).expect("Linphone's HOME");
        std::fs::create_dir_all(home.join(".config")).expect("Linphone's HOME");
        let rc = dir.join("linphonerc");
        std::fs::write(&rc, rc_file(identity, SIP_PORT)).expect("write linphonerc");
        let mut child = tokio::process::Command::new("linphonec")
            .arg("-c")
            .arg(&rc)
            .arg("-l")
            .arg(dir.join("linphone.log"))
            .args(["-d", "6"])
            .current_dir(&dir)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            // No sound server: audio is files.
            .env(
                "PULSE_SERVER",
                format!("unix:{}", dir.join("no-pulse").display()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start linphonec ({e}): install Debian's linphone-cli \
                     (apt-get install linphone-cli; scripts/test.sh does)"
                )
            });
        let stdin = child.stdin.take().expect("linphonec's stdin");
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(collect(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect(err, output.clone()));
        }
        let mut phone = Linphone {
            child,
            stdin,
            output,
            dir,
        };
        phone.send("soundcard use files").await;
        phone.wait_for_transport().await;
        phone
    }

    /// The scratch directory (config, log, recordings).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends one command line.
    pub async fn send(&mut self, line: &str) {
        let ok = self.stdin.write_all(format!("{line}\n").as_bytes()).await;
        let flushed = self.stdin.flush().await;
        assert!(
            ok.is_ok() && flushed.is_ok(),
            "linphonec no longer reads its commands (sending {line:?}):\n{}",
            self.report()
        );
    }

    /// Plays this WAV as the microphone (file mode).
    pub async fn play(&mut self, wav: &Path) {
        self.send(&format!("play {}", wav.display())).await;
    }

    /// Records what is heard to this WAV (file mode; Linphone writes it at the call's
    /// rate, 48 kHz with Opus).
    pub async fn record(&mut self, wav: &Path) {
        self.send(&format!("record {}", wav.display())).await;
    }

    /// Dials `uri` and waits until the call is answered and its media run; panics with
    /// Linphone's output and SIP exchange when it fails.
    pub async fn dial(&mut self, uri: &str) {
        let mark = self.output_len();
        self.send(&format!("call {uri}")).await;
        let end = Instant::now() + CALL_LIMIT;
        loop {
            let out = self.output_since(mark);
            if out.contains("Media streams established") {
                return;
            }
            let failed = ["error.", "ended", "declined", "Error from"]
                .iter()
                .any(|w| out.contains(w));
            if failed {
                // Let Linphone write the answer that failed it to its log.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            assert!(
                !failed && Instant::now() < end,
                "Linphone's call to {uri} {}:\n{}",
                if failed {
                    "failed"
                } else {
                    "was not answered in time"
                },
                self.report()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Keys `digits` as DTMF (RFC 4733 by default). linphonec sends one key a second
    /// ([`KEY_INTERVAL`]) and reads its next command only then.
    pub async fn keys(&mut self, digits: &str) {
        self.send(digits).await;
    }

    /// Hangs up and waits until the call has ended.
    pub async fn hang_up(&mut self) {
        let mark = self.output_len();
        self.send("terminate").await;
        let end = Instant::now() + CALL_LIMIT;
        while !self.output_since(mark).contains("ended") {
            assert!(
                Instant::now() < end,
                "Linphone's call did not end after `terminate`:\n{}",
                self.report()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether linphonec has said that its call ended or failed (the bridge hung up, or
    /// no RTP came for 30 s: "ended (IO error)").
    pub fn call_ended(&self) -> bool {
        let out = self.output();
        out.contains(" ended (") || out.contains(" error.")
    }

    /// Everything linphonec printed so far (its prompts, call states, answers).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The SIP start lines Linphone sent and received, in order, from its log.
    pub fn sip_exchange(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("linphone.log")).unwrap_or_default();
        log.lines()
            .filter(|l| {
                l.starts_with("SIP/2.0 ")
                    || (l.ends_with(" SIP/2.0")
                        && l.split(' ').next().is_some_and(|m| {
                            !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase())
                        }))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first request Linphone sent with this method, whole, from its log.
    pub fn sent_request(&self, method: &str) -> Option<String> {
        let log = std::fs::read_to_string(self.dir.join("linphone.log")).unwrap_or_default();
        let start = log.find(&format!("\n{method} sip:"))? + 1;
        // The message runs up to the next log line, which starts with its date.
        let dated = |l: &str| {
            let b = l.as_bytes();
            b.len() > 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
        };
        let lines: Vec<&str> = log[start..].lines().take_while(|l| !dated(l)).collect();
        Some(lines.join("\n").trim_end().to_owned())
    }

    /// Linphone's output and SIP exchange, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "--- linphonec output ---\n{}\n--- SIP exchange (linphone.log in {}) ---\n{}",
            self.output(),
            self.dir.display(),
            self.sip_exchange()
        )
    }

    fn output_len(&self) -> usize {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn output_since(&self, mark: usize) -> String {
        let out = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        out.get(mark..).unwrap_or_default().to_owned()
    }

    /// Asks for the SIP port until Linphone has one: it opens its transports once it
    /// has decided the network is up.
    async fn wait_for_transport(&mut self) {
        let end = Instant::now() + READY_LIMIT;
        loop {
            let mark = self.output_len();
            self.send("ports").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let out = self.output_since(mark);
            let port = out
                .lines()
                .find_map(|l| l.split("sip port = ").nth(1))
                .and_then(|p| p.trim().parse::<i32>().ok());
            if port.is_some_and(|p| p > 0) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("linphonec exited ({status}):\n{}", self.report());
            }
            assert!(
                Instant::now() < end,
                "Linphone's SIP transport did not come up within {READY_LIMIT:?}:\n{}",
                self.report()
            );
        }
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        // By PID (SIGKILL): the WAV it recorded was closed when the call ended.
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!("Linphone's files are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn collect(stream: impl tokio::io::AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut lines = tokio::io::BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut out = into.lock().unwrap_or_else(PoisonError::into_inner);
        out.push_str(&line);
        out.push('\n');
    }
}
