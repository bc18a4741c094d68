//! Runs a sipp scenario from fixtures/sipp/ against a bridge and tells whether every call
//! passed. sipp is the independent peer: it shares no code with dialbridge.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// The transport sipp uses (`-t`).
#[derive(Debug, Clone, Copy)]
pub enum SippTransport {
    Udp,
    Tcp,
}

/// One sipp run.
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: PathBuf,
    target: SocketAddr,
    local_ip: IpAddr,
    service: String,
    transport: SippTransport,
    calls: u32,
    concurrent: u32,
    rate: Option<u32>,
    extra: Vec<String>,
    timeout: Duration,
    hold: Duration,
}

/// What a sipp run ended with.
#[derive(Debug)]
pub struct SippOutcome {
    /// sipp's exit code: 0 when every call passed.
    pub code: Option<i32>,
    /// sipp's screen and the error/message logs, for failure reports.
    pub log: String,
}

impl SippOutcome {
    pub fn passed(&self) -> bool {
        self.code == Some(0)
    }
}

impl Sipp {
    /// A scenario (file name under fixtures/sipp/) dialling `service` at `target`, sent from
    /// `local_ip` (127.0.0.10 is the microsoft-pstn trunk in the demo).
    pub fn new(scenario: &str, target: SocketAddr, local_ip: IpAddr, service: &str) -> Sipp {
        Sipp {
            scenario: crate::fixtures().join("sipp").join(scenario),
            target,
            local_ip,
            service: service.to_string(),
            transport: SippTransport::Udp,
            calls: 1,
            concurrent: 1,
            rate: None,
            extra: Vec::new(),
            timeout: Duration::from_secs(60),
            hold: Duration::from_secs(2),
        }
    }

    pub fn transport(mut self, transport: SippTransport) -> Self {
        self.transport = transport;
        self
    }

    /// Total calls (`-m`) and how many at once (`-l`).
    pub fn calls(mut self, calls: u32, concurrent: u32) -> Self {
        self.calls = calls;
        self.concurrent = concurrent;
        self
    }

    /// New calls per second (`-r`).
    pub fn rate(mut self, per_second: u32) -> Self {
        self.rate = Some(per_second);
        self
    }

    /// More sipp arguments, e.g. `["-au", "alice", "-ap", "alice-secret"]`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// How long a call holds where the scenario pauses for sipp's `-d`.
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    /// How long sipp may run before it is killed and the run fails.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs sipp and fails the test, with sipp's screen and logs, unless every call passed.
    pub async fn passes(&self) -> SippOutcome {
        let outcome = self.run().await;
        assert!(
            outcome.passed(),
            "sipp {} failed ({:?}):\n{}",
            self.scenario.display(),
            outcome.code,
            outcome.log
        );
        outcome
    }

    /// Runs sipp to completion (or the timeout) in a scratch directory.
    pub async fn run(&self) -> SippOutcome {
        let dir = std::env::temp_dir().join(format!(
            "dialbridge-sipp-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let media_port = crate::ports::free_rtp_port(self.local_ip);
        let mut cmd = tokio::process::Command::new("sipp");
        cmd.current_dir(&dir)
            .arg(self.target.to_string())
            .args(["-sf", &self.scenario.to_string_lossy()])
            .args(["-s", &self.service])
            .args(["-i", &self.local_ip.to_string()])
            .args(["-mi", &self.local_ip.to_string()])
            .args(["-mp", &media_port.to_string()])
            .args(["-m", &self.calls.to_string()])
            .args(["-d", &self.hold.as_millis().to_string()])
            .args(["-l", &self.concurrent.to_string()])
            .args([
                "-t",
                match self.transport {
                    SippTransport::Udp => "u1",
                    SippTransport::Tcp => "t1",
                },
            ])
            .args(["-timeout", &format!("{}s", self.timeout.as_secs().max(1))])
            .args(["-timeout_error", "-nostdin", "-trace_err", "-trace_msg"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(rate) = self.rate {
            cmd.args(["-r", &rate.to_string()]);
        }
        let child = cmd
            .spawn()
            .expect("sipp is installed (scripts/test.sh installs it)");
        let waited = tokio::time::timeout(
            self.timeout + Duration::from_secs(10),
            child.wait_with_output(),
        )
        .await;
        let (code, mut log) = match waited {
            Ok(Ok(out)) => (
                out.status.code(),
                format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ),
            Ok(Err(e)) => (None, format!("sipp failed to run: {e}")),
            Err(_) => (None, "sipp did not finish in time; killed".to_string()),
        };
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with(".log") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    // The message log can be long under load: keep its tail.
                    let tail: String = text
                        .chars()
                        .rev()
                        .take(20_000)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    log.push_str(&format!("\n--- {name} ---\n{tail}"));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        SippOutcome { code, log }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
