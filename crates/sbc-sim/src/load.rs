//! Load: N calls at R calls per second over one shared signaling socket, each a real
//! call (see [`crate::call`]), with a bound on calls in flight and on the whole run's
//! time, a progress bar, and a [`LoadReport`] at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::call::{self, CallConfig, Quiet};
use crate::report::LoadReport;
use crate::ua::Signaling;

/// Grace given to calls in flight after the time limit before they are abandoned.
const GRACE: Duration = Duration::from_secs(10);

/// A load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Calls to place.
    pub calls: u64,
    /// Calls started per second.
    pub rate: f64,
    /// Most calls in flight at once (launching waits for a free slot).
    pub max_in_flight: usize,
    /// The whole run's time limit: no call starts after it.
    pub time_limit: Duration,
    /// The call every one of them makes.
    pub call: CallConfig,
}

impl LoadConfig {
    /// A time limit that lets every call run: launch time plus one call's hard limit.
    pub fn default_time_limit(calls: u64, rate: f64, call: &CallConfig) -> Duration {
        let launch = if rate > 0.0 { calls as f64 / rate } else { 0.0 };
        Duration::from_secs_f64(launch.min(86_400.0)).saturating_add(call.hard_limit())
    }
}

/// Runs the load and returns the report. `bar` (if any) moves by one per finished call.
pub async fn run(
    signaling: &Signaling,
    config: &LoadConfig,
    bar: Option<&ProgressBar>,
) -> LoadReport {
    let started = Instant::now();
    let deadline = started + config.time_limit;
    let call_config = Arc::new(config.call.clone());
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let period = Duration::from_secs_f64(1.0 / config.rate.clamp(0.001, 100_000.0));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = JoinSet::new();
    let mut report = LoadReport::default();
    let mut launched = 0u64;
    let mut last_launch = started;
    let sleep_deadline = tokio::time::Instant::from_std(deadline);

    while launched < config.calls {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::time::sleep_until(sleep_deadline) => break,
        }
        // Waiting for a slot delays the launch (the report's rate shows it).
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = tokio::time::sleep_until(sleep_deadline) => break,
        };
        let Ok(permit) = permit else { break };
        let signaling = signaling.clone();
        let call_config = call_config.clone();
        tasks.spawn(async move {
            let outcome = call::run(&signaling, &call_config, &Quiet).await;
            drop(permit);
            outcome
        });
        launched += 1;
        last_launch = Instant::now();
        // Fold finished calls in as we go so memory stays bounded by calls in flight.
        while let Some(done) = tasks.try_join_next() {
            collect(&mut report, done, bar);
        }
    }
    report.add_not_started(config.calls - launched);
    report.set_launch(last_launch.saturating_duration_since(started));
    let end = tokio::time::Instant::from_std(deadline.max(Instant::now()) + GRACE);
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(done) => collect(&mut report, done, bar),
                None => break,
            },
            _ = tokio::time::sleep_until(end) => {
                tasks.abort_all();
                break;
            }
        }
    }
    report.set_wall(started.elapsed());
    report
}

fn collect(
    report: &mut LoadReport,
    done: Result<crate::CallOutcome, tokio::task::JoinError>,
    bar: Option<&ProgressBar>,
) {
    if let Ok(outcome) = done {
        report.add(&outcome);
    }
    if let Some(bar) = bar {
        bar.inc(1);
        bar.set_message(format!("{} passed", report.passed()));
    }
}
