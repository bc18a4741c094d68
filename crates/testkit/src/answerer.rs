//! `sbc-sim answer` for end-to-end tests: the phone at a trunk's outbound target that
//! the bridge's dial-outs reach. [`Answerer::start`] takes the command's own words
//! (`--listen 127.0.0.10:5080 --key 1 --expect-tone 440`...), returns once it listens,
//! and [`Answerer::finish`] gives its report lines and the exit status the command would
//! have.
//!
//! It runs in this process, on a thread and runtime of its own, through the same
//! argument parsing, run and reports as the binary: a test of another crate cannot name
//! the `sbc-sim` binary (Cargo builds it only for sbc-sim's own tests), and one found in
//! the target directory may be stale.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sbc_sim::answer::{self, AnswerArgs, CallReport, Summary};
use sbc_sim::call::Progress;
use tokio::sync::{mpsc, oneshot};

/// Slack past the run's own `--timeout` before [`Answerer::finish`] gives up on it.
const SLACK: Duration = Duration::from_secs(15);

/// A running `sbc-sim answer`.
#[derive(Debug)]
pub struct Answerer {
    addr: SocketAddr,
    reports: mpsc::UnboundedReceiver<CallReport>,
    taken: Vec<CallReport>,
    stop: Option<oneshot::Sender<()>>,
    done: oneshot::Receiver<Summary>,
    log: Arc<Mutex<String>>,
    limit: Duration,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Answered {
    /// One per call, in the order the calls ended.
    pub reports: Vec<CallReport>,
    /// Calls, those that went as told, OPTIONS, and the run's own failures.
    pub summary: Summary,
    /// Its progress lines (what it printed on stderr), for failure messages.
    pub log: String,
}

impl Answered {
    /// Whether every call went as told and the expected calls came.
    pub fn passed(&self) -> bool {
        self.summary.passed()
    }

    /// The exit status `sbc-sim answer` would have: 0 when [`Self::passed`], else 1.
    pub fn code(&self) -> i32 {
        if self.passed() { 0 } else { 1 }
    }

    /// The report lines, as the command prints them on stdout.
    pub fn json_lines(&self) -> Vec<String> {
        self.reports.iter().map(CallReport::json_line).collect()
    }

    /// The only call's report; panics, with the log, unless exactly one call came.
    pub fn the_call(&self) -> &CallReport {
        assert_eq!(self.reports.len(), 1, "one call expected:\n{}", self.log);
        &self.reports[0]
    }
}

impl Answerer {
    /// Runs `sbc-sim answer WORDS` (`--listen` is required; `127.0.0.1:0` takes a free
    /// port, see [`Self::addr`]) and returns once it listens. Panics on words the
    /// command refuses, or an address it cannot bind.
    pub async fn start(words: &[&str]) -> Answerer {
        let args = AnswerArgs::parse_words(words).unwrap_or_else(|e| panic!("sbc-sim answer: {e}"));
        let config = args
            .config()
            .unwrap_or_else(|e| panic!("sbc-sim answer: {e}"));
        let limit = config.timeout + SLACK;
        let (bound_tx, bound_rx) = oneshot::channel();
        let (report_tx, reports) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let progress = Log {
            start: Instant::now(),
            lines: log.clone(),
        };
        std::thread::Builder::new()
            .name("sbc-sim-answer".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for sbc-sim answer");
                runtime.block_on(async move {
                    let listening = match answer::bind(config).await {
                        Ok(listening) => listening,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = bound_tx.send(Ok(listening.local_addr()));
                    progress.line(&format!("listening on {}", listening.local_addr()));
                    // A dropped handle stops the run as a signal would.
                    let stop = async {
                        let _ = stop_rx.await;
                    };
                    let summary = listening
                        .run(&progress, stop, &mut |report| {
                            let _ = report_tx.send(report.clone());
                        })
                        .await;
                    progress.line(&format!(
                        "{} calls, {} as told, {} OPTIONS; {:?}",
                        summary.calls, summary.passed, summary.options, summary.failures
                    ));
                    let _ = done_tx.send(summary);
                });
            })
            .expect("a thread for sbc-sim answer");
        let addr = match bound_rx.await {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => panic!("sbc-sim answer cannot listen: {e}"),
            Err(_) => panic!("sbc-sim answer's thread ended before listening"),
        };
        Answerer {
            addr,
            reports,
            taken: Vec::new(),
            stop: Some(stop),
            done,
            log,
            limit,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its progress so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The next call's report, once that call is over; `None` if none ends `within`.
    /// Reports taken here are in [`Answered::reports`] too.
    pub async fn next_report(&mut self, within: Duration) -> Option<CallReport> {
        let report = tokio::time::timeout(within, self.reports.recv())
            .await
            .ok()??;
        self.taken.push(report.clone());
        Some(report)
    }

    /// Waits for the run to end by itself (its calls over, or its `--timeout`).
    pub async fn finish(mut self) -> Answered {
        let summary = match tokio::time::timeout(self.limit, &mut self.done).await {
            Ok(Ok(summary)) => summary,
            Ok(Err(_)) => panic!(
                "sbc-sim answer's thread ended without a summary:\n{}",
                self.log()
            ),
            Err(_) => panic!(
                "sbc-sim answer did not end within {:?}:\n{}",
                self.limit,
                self.log()
            ),
        };
        let mut reports = std::mem::take(&mut self.taken);
        while let Ok(report) = self.reports.try_recv() {
            reports.push(report);
        }
        Answered {
            reports,
            summary,
            log: self.log(),
        }
    }

    /// Ends the run now, as SIGTERM ends the command: calls still going end (and
    /// fail), every call is reported.
    pub async fn stop(mut self) -> Answered {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.finish().await
    }
}

/// Progress lines kept for the log, timed from the start.
struct Log {
    start: Instant,
    lines: Arc<Mutex<String>>,
}

impl Progress for Log {
    fn line(&self, text: &str) {
        let line = format!("{:>8.3}s  {text}\n", self.start.elapsed().as_secs_f64());
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_str(&line);
    }
}
