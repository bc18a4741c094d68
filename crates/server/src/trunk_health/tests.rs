//! The health machine on a virtual clock: probes, answers, timeouts, dial-out failures
//! and reloads, with no socket and no sleep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dialbridge_router::{Numbering, Plan, Router, TrunkId, TrunkSpec};

use super::*;

const INTERVAL: Duration = Duration::from_secs(15);
const TIMEOUT: Duration = Duration::from_secs(5);

/// Trunks a, b, c and their targets.
fn trunks() -> Vec<(TrunkId, Arc<str>, SocketAddr)> {
    let mut plan = Plan::new(Numbering::new("1").unwrap());
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        plan.add_trunk(TrunkSpec {
            name,
            provider: "Telco",
            addresses: &[IpAddr::from([10, 0, 0, i as u8 + 1])],
            max_sessions: 10,
        })
        .unwrap();
    }
    let router = Router::new(plan);
    ["a", "b", "c"]
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let target = SocketAddr::from(([10, 0, 0, i as u8 + 1], 5080));
            (router.trunk_by_name(name).unwrap(), Arc::from(name), target)
        })
        .collect()
}

fn machine(down_after: u32, up_after: u32) -> (TrunkHealth, Vec<TrunkId>, Instant) {
    let mut health = TrunkHealth::new(HealthConfig {
        interval: INTERVAL,
        timeout: TIMEOUT,
        down_after,
        up_after,
    });
    let targets = trunks();
    let now = Instant::now();
    health.set_targets(&targets, now);
    let ids = targets.iter().map(|(id, _, _)| *id).collect();
    (health, ids, now)
}

/// Every probe due at `now`.
fn due(health: &mut TrunkHealth, now: Instant) -> Vec<Probe> {
    std::iter::from_fn(|| health.poll_probe(now)).collect()
}

fn state(health: &TrunkHealth, trunk: TrunkId) -> HealthState {
    let report = health.report(Instant::now(), SystemTime::now());
    report.iter().find(|t| t.trunk == trunk).unwrap().state
}

#[test]
fn presumed_up_then_probed_at_once_one_at_a_time_each_interval() {
    let (mut health, ids, t0) = machine(2, 1);
    assert!(ids.iter().all(|t| health.is_up(*t)));
    assert_eq!(state(&health, ids[0]), HealthState::Unprobed);
    assert_eq!(health.poll_timeout(), Some(t0));
    let probes = due(&mut health, t0);
    assert_eq!(probes.len(), 3);
    assert_eq!(probes[1].target, "10.0.0.2:5080".parse().unwrap());
    // In flight: nothing more is due, the next deadline is the answers' timeout.
    assert!(due(&mut health, t0 + Duration::from_secs(4)).is_empty());
    assert_eq!(health.poll_timeout(), Some(t0 + TIMEOUT));
    let t1 = t0 + Duration::from_millis(20);
    for p in &probes {
        health.handle_options_answer(p, 100, t1);
        health.handle_options_answer(p, 200, t1);
    }
    assert_eq!(state(&health, ids[0]), HealthState::Up);
    assert_eq!(health.poll_timeout(), Some(t0 + INTERVAL));
    assert!(due(&mut health, t0 + INTERVAL - Duration::from_millis(1)).is_empty());
    assert_eq!(due(&mut health, t0 + INTERVAL).len(), 3);
    let report = health.report(t1, SystemTime::now());
    assert_eq!(report[0].options_sent, 2);
    assert_eq!(report[0].last_finding, Some(Finding::Answered(200)));
    assert_eq!(
        report[0].last_change_at, None,
        "presumed up, then up: no change"
    );
}

#[test]
fn no_answer_marks_down_after_the_threshold_and_an_answer_brings_it_back() {
    let (mut health, ids, t0) = machine(2, 1);
    let a = ids[0];
    let probes = due(&mut health, t0);
    let probe = probes[0];
    // b and c answer; a does not.
    for p in &probes[1..] {
        health.handle_options_answer(p, 200, t0);
    }
    // The first timeout: a failure, not yet down.
    assert_eq!(health.handle_timeout(t0 + TIMEOUT), [probe]);
    assert!(health.is_up(a));
    assert_eq!(state(&health, a), HealthState::Up);
    // A late answer to the timed-out probe counts for nothing.
    health.handle_options_answer(&probe, 200, t0 + TIMEOUT + Duration::from_secs(1));
    assert_eq!(
        health.report(t0, SystemTime::now())[0].consecutive_failures,
        1
    );
    // The second: down, and dial-outs skip it.
    let t1 = t0 + INTERVAL;
    let again: Vec<Probe> = due(&mut health, t1);
    assert_eq!(again[0].trunk, a);
    for p in &again[1..] {
        health.handle_options_answer(p, 200, t1);
    }
    health.handle_timeout(t1 + TIMEOUT);
    assert!(!health.is_up(a));
    assert_eq!(health.available(&[a, ids[1]]), [ids[1]]);
    let report = health.report(t1 + TIMEOUT, SystemTime::now());
    assert_eq!(report[0].options_failed, 2);
    assert_eq!(report[0].last_finding, Some(Finding::TimedOut));
    assert!(report[0].last_change_at.is_some());
    // Down trunks are still probed; one answer (up_after = 1) brings it back.
    let t2 = t0 + 2 * INTERVAL;
    let probe = due(&mut health, t2)
        .into_iter()
        .find(|p| p.trunk == a)
        .unwrap();
    health.handle_options_answer(&probe, 200, t2);
    assert!(health.is_up(a));
    assert_eq!(health.available(&[a, ids[1]]), [a, ids[1]]);
}

#[test]
fn a_503_marks_down_at_once_and_up_after_asks_for_successes_in_a_row() {
    let (mut health, ids, t0) = machine(3, 2);
    let a = ids[0];
    let probe = due(&mut health, t0)[0];
    health.handle_options_answer(&probe, 503, t0);
    assert!(!health.is_up(a));
    let mut now = t0;
    let mut answer = |health: &mut TrunkHealth, status| {
        now += INTERVAL;
        let probe = due(health, now).into_iter().find(|p| p.trunk == a).unwrap();
        health.handle_options_answer(&probe, status, now);
    };
    answer(&mut health, 200);
    assert!(!health.is_up(a), "one success of the two");
    answer(&mut health, 500);
    answer(&mut health, 200);
    assert!(!health.is_up(a), "a failure between resets the count");
    answer(&mut health, 200);
    assert!(health.is_up(a));
}

#[test]
fn answers_count_as_the_verdict_says() {
    for (status, want) in [
        (200, Verdict::Alive),
        (202, Verdict::Alive),
        (302, Verdict::Alive),
        (403, Verdict::Alive),
        (404, Verdict::Alive),
        (405, Verdict::Alive),
        (501, Verdict::Alive),
        (408, Verdict::Failure),
        (500, Verdict::Failure),
        (502, Verdict::Failure),
        (504, Verdict::Failure),
        (603, Verdict::Failure),
        (503, Verdict::Unavailable),
    ] {
        assert_eq!(verdict(status), want, "{status}");
    }
    // Two 500s in a row: down (down_after = 2); a 404 after them: up.
    let (mut health, ids, t0) = machine(2, 1);
    let probe = due(&mut health, t0)[0];
    health.handle_options_answer(&probe, 500, t0);
    assert!(health.is_up(ids[0]));
    let probe = due(&mut health, t0 + INTERVAL)[0];
    health.handle_options_answer(&probe, 500, t0 + INTERVAL);
    assert!(!health.is_up(ids[0]));
    let probe = due(&mut health, t0 + 2 * INTERVAL)[0];
    health.handle_options_answer(&probe, 404, t0 + 2 * INTERVAL);
    assert!(health.is_up(ids[0]));
}

#[test]
fn the_transactions_timeout_counts_once() {
    let (mut health, ids, t0) = machine(2, 1);
    let probe = due(&mut health, t0)[0];
    health.handle_options_timeout(&probe, t0 + Duration::from_secs(1));
    health.handle_options_timeout(&probe, t0 + Duration::from_secs(2));
    health.handle_timeout(t0 + TIMEOUT);
    let report = health.report(t0, SystemTime::now());
    assert_eq!(report[0].consecutive_failures, 1);
    assert!(health.is_up(ids[0]));
}

#[test]
fn a_timeout_longer_than_the_interval_probes_again_right_after_it() {
    let mut health = TrunkHealth::new(HealthConfig {
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(32),
        down_after: 2,
        up_after: 1,
    });
    let targets = trunks();
    let t0 = Instant::now();
    health.set_targets(&targets[..1], t0);
    due(&mut health, t0);
    assert!(due(&mut health, t0 + Duration::from_secs(20)).is_empty());
    assert_eq!(health.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    health.handle_timeout(t0 + Duration::from_secs(32));
    assert_eq!(health.poll_timeout(), Some(t0 + Duration::from_secs(15)));
    assert_eq!(due(&mut health, t0 + Duration::from_secs(32)).len(), 1);
    health.handle_timeout(t0 + Duration::from_secs(64));
    assert!(
        !health.is_up(targets[0].0),
        "down 64 s after the first probe"
    );
}

#[test]
fn dial_out_failures_count_and_bring_the_next_probe_forward() {
    let (mut health, ids, t0) = machine(2, 1);
    for p in due(&mut health, t0) {
        health.handle_options_answer(&p, 200, t0);
    }
    let t1 = t0 + Duration::from_secs(3);
    health.report_invite_failure(ids[1], t1);
    assert!(health.is_up(ids[1]));
    assert_eq!(health.poll_timeout(), Some(t1));
    let probes = due(&mut health, t1);
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].trunk, ids[1]);
    health.report_invite_failure(ids[1], t1);
    assert!(!health.is_up(ids[1]));
    let report = health.report(t1, SystemTime::now());
    assert_eq!(report[1].last_finding, Some(Finding::InviteFailed));
    assert_eq!(report[1].options_failed, 0, "INVITEs are not OPTIONS");
}

#[test]
fn a_reload_adds_resets_and_forgets_trunks() {
    let (mut health, ids, t0) = machine(1, 1);
    for p in due(&mut health, t0) {
        health.handle_options_answer(&p, 503, t0);
    }
    assert!(ids.iter().all(|t| !health.is_up(*t)));
    let mut targets = trunks();
    targets[1].2 = "10.0.0.9:5080".parse().unwrap();
    targets.truncate(2);
    let generation = health.generation();
    let t1 = t0 + Duration::from_secs(1);
    health.set_targets(&targets, t1);
    assert_ne!(health.generation(), generation);
    assert!(!health.is_up(ids[0]), "same target: unchanged");
    assert!(health.is_up(ids[1]), "new target: presumed up");
    assert!(health.is_up(ids[2]), "no longer watched");
    let report = health.report(t1, SystemTime::now());
    assert_eq!(report.len(), 2);
    assert_eq!(report[1].state, HealthState::Unprobed);
    assert_eq!(report[1].options_sent, 1, "counters kept");
    assert_eq!(due(&mut health, t1)[0].target, targets[1].2);
    // The same targets again change nothing.
    let generation = health.generation();
    health.set_targets(&targets, t1);
    assert_eq!(health.generation(), generation);
}

#[test]
fn with_probing_off_nothing_is_sent_and_every_trunk_is_up() {
    let mut health = TrunkHealth::new(HealthConfig {
        interval: Duration::ZERO,
        ..HealthConfig::default()
    });
    let targets = trunks();
    let now = Instant::now();
    health.set_targets(&targets, now);
    assert_eq!(health.poll_timeout(), None);
    assert_eq!(health.poll_probe(now + Duration::from_secs(3600)), None);
    assert!(targets.iter().all(|(t, _, _)| health.is_up(*t)));
    assert_eq!(health.report(now, SystemTime::now()).len(), 3);
}

#[test]
fn the_report_reads_instants_on_the_wall_clock_and_the_board_keeps_the_last() {
    let (mut health, _, t0) = machine(1, 1);
    let probe = due(&mut health, t0)[0];
    health.handle_options_answer(&probe, 503, t0 + Duration::from_secs(2));
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let report = health.report(t0 + Duration::from_secs(10), wall);
    let eight_ago = wall - Duration::from_secs(8);
    assert_eq!(report[0].last_finding_at, Some(eight_ago));
    assert_eq!(report[0].last_change_at, Some(eight_ago));
    assert_eq!(report[0].state.as_str(), "down");
    assert_eq!(Finding::Answered(503).label(), "503");
    let board = HealthBoard::default();
    assert!(board.current().is_empty());
    board.publish(report);
    assert_eq!(board.trunk("a").unwrap().state, HealthState::Down);
    assert!(board.trunk("z").is_none());
}
