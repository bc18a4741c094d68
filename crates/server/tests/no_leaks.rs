//! No call outlives its caller, and nothing a call held outlives the call: the real
//! `dialbridge serve` on loopback, callers written from plain SIP text (testkit's
//! `churn`).
//!
//! - Two callers fill a number of capacity 2 and vanish without a BYE: the media
//!   timeout frees the number, and a third caller gets in.
//! - Hundreds of calls end every way a peer ends them (BYE from either side, CANCEL at
//!   random moments, a lost ACK, a vanished caller, re-INVITEs in the IVR, a meeting
//!   joined and left), then every gauge in `/metrics` is back at 0.
//! - A drain with calls up ends them with BYE and the bridge stops holding nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialbridge_testkit::churn::{Ending, place};
use dialbridge_testkit::ports::free_udp_tcp_port;
use dialbridge_testkit::serve::{DemoToml, Serve};
use dialbridge_testkit::{ip, scratch_dir, uac};

const USER_NUMBER: &str = "+14255550123"; // capacity 2, Microsoft trunk (127.0.0.10)
const SERVICE_NUMBER: &str = "+33170000100"; // capacity 200, Telco A (127.0.0.20)
/// The gauges that count what calls hold; every one must come back to 0.
const HELD: [&str; 7] = [
    "dialbridge_calls_in_progress",
    "dialbridge_meetings_in_progress",
    "dialbridge_meeting_participants",
    "dialbridge_media_sessions",
    "dialbridge_media_rooms",
    "dialbridge_rtp_ports_in_use",
    "dialbridge_sip_transactions",
];
/// Per number, bridge and trunk.
const HELD_PER: [&str; 3] = [
    "dialbridge_number_calls_in_progress",
    "dialbridge_bridge_calls_in_progress",
    "dialbridge_trunk_calls_in_progress",
];

/// A bridge with short timeouts: 5 s of silence ends a call, the answer comes after
/// 300 ms (so CANCELs race it), a drain lasts 2 s.
async fn bridge(name: &str) -> (Serve, SocketAddr) {
    let dir = scratch_dir(name);
    let sip = free_udp_tcp_port(ip("127.0.0.1"));
    let tls = free_udp_tcp_port(ip("127.0.0.1"));
    let admin = free_udp_tcp_port(ip("127.0.0.1"));
    let config = DemoToml::new(&dir)
        .on_loopback_ports(sip, tls, admin)
        .set("sip", "answer_after_ms", "300")
        .set("sip", "drain_timeout_ms", "2000")
        // Long enough that a caller whose RTP a busy 2-core machine delays for a moment
        // (a lost ACK's caller talks on for 32 s) is not taken for a silent one.
        .set("media", "inactivity_timeout_ms", "5000");
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let serve = Serve::start(
        env!("CARGO_BIN_EXE_dialbridge").as_ref(),
        &config,
        admin_addr,
        &dir,
    )
    .await;
    (serve, format!("127.0.0.1:{sip}").parse().unwrap())
}

/// Every gauge of [`HELD`] and [`HELD_PER`] that is not 0, as `name{labels} value`.
fn still_held(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            HELD.contains(&name) || HELD_PER.contains(&name)
        })
        .filter(|line| {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .is_none_or(|v| v != 0.0)
        })
        .map(str::to_owned)
        .collect()
}

/// Waits (bounded) until nothing is held; panics with what still is.
async fn all_given_back(serve: &Serve, within: Duration) -> String {
    let end = Instant::now() + within;
    loop {
        let (status, metrics) = serve.get("/metrics").await;
        assert_eq!(status, 200, "{metrics}");
        for gauge in HELD {
            assert!(metrics.contains(gauge), "no {gauge} in /metrics");
        }
        let held = still_held(&metrics);
        if held.is_empty() {
            return metrics;
        }
        assert!(
            Instant::now() < end,
            "still held after {within:?}:\n{}\n--- bridge log (tail) ---\n{}",
            held.join("\n"),
            tail(&serve.log())
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_callers_give_their_number_back_within_the_media_timeout() {
    let (serve, sip) = bridge("vanished").await;
    let trunk = ip("127.0.0.10");
    let first = uac::call(sip, trunk, USER_NUMBER).await;
    let second = uac::call(sip, trunk, USER_NUMBER).await;
    assert_eq!((first.status, second.status), (200, 200));
    let third = uac::call(sip, trunk, USER_NUMBER).await;
    assert_eq!(third.status, 486, "the number is full: {}", third.response);
    // Both callers vanish: no BYE, no RTP, their sockets closed.
    drop((first, second));
    let series = format!("dialbridge_number_calls_in_progress{{number=\"{USER_NUMBER}\"}} 0");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = serve.get("/metrics").await;
        if metrics.contains(&series) {
            break;
        }
        assert!(Instant::now() < end, "the number stays taken:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = uac::call(sip, trunk, USER_NUMBER).await;
    assert_eq!(again.status, 200, "{}", again.response);
    assert_eq!(again.hang_up().await, 200);
    // The BYEs to the vanished callers give up after 64*T1 (32 s).
    all_given_back(&serve, Duration::from_secs(45)).await;
    assert!(
        serve.log().matches("no media from the caller").count() >= 2,
        "{}",
        tail(&serve.log())
    );
}

/// A small deterministic generator (a test must fail the same way twice).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_calls_ending_every_way_give_everything_back() {
    const CALLS: u64 = 280;
    const AT_ONCE: usize = 40;
    let (serve, sip) = bridge("churn").await;
    let mut rng = Lcg(0x5eed_1313);
    let endings: Vec<Ending> = (0..CALLS)
        .map(|i| match i % 7 {
            0 => Ending::CallerBye(Duration::from_millis(rng.below(1500))),
            1 => Ending::BridgeBye,
            2 => Ending::Cancel(Duration::from_millis(rng.below(450))),
            3 => Ending::NoAck,
            4 => Ending::Vanish,
            5 => Ending::ReinviteInIvr,
            _ => Ending::JoinThenBye,
        })
        .collect();
    let gate = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let mut calls = tokio::task::JoinSet::new();
    for (i, ending) in endings.iter().copied().enumerate() {
        let permit = gate.clone().acquire_owned().await.unwrap();
        calls.spawn(async move {
            let outcome = place(
                sip,
                ip("127.0.0.20"),
                SERVICE_NUMBER,
                &i.to_string(),
                ending,
            )
            .await;
            drop(permit);
            (ending, outcome)
        });
    }
    let mut failures = Vec::new();
    let mut cancelled = [0u32; 2]; // 487, answered before the CANCEL
    while let Some(joined) = calls.join_next().await {
        let (ending, outcome) = joined.unwrap();
        match (ending, outcome) {
            (_, Err(e)) => failures.push(format!("{ending:?}: {e}")),
            (Ending::Cancel(_), Ok(ended)) if ended.status == 487 => cancelled[0] += 1,
            (Ending::Cancel(_), Ok(ended)) if ended.status == 200 => cancelled[1] += 1,
            (Ending::BridgeBye, Ok(ended)) => {
                let reason = ended.bridge_bye.unwrap_or_default();
                if !reason.contains("no media") {
                    failures.push(format!("{ending:?}: BYE with Reason {reason:?}"));
                }
            }
            (Ending::NoAck, Ok(ended)) => {
                let reason = ended.bridge_bye.unwrap_or_default();
                if !reason.contains("no ACK") {
                    failures.push(format!("{ending:?}: BYE with Reason {reason:?}"));
                }
            }
            (_, Ok(ended)) if ended.status != 200 => {
                failures.push(format!("{ending:?}: answered {}", ended.status));
            }
            (_, Ok(_)) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} calls went wrong:\n{}\n--- bridge log (tail) ---\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&serve.log())
    );
    assert_eq!(
        cancelled.iter().sum::<u32>(),
        (CALLS / 7) as u32,
        "every CANCEL got 487 or crossed the 200"
    );
    // A vanished caller's BYE and a lost ACK's 200 take 64*T1 (32 s) to give up on.
    let metrics = all_given_back(&serve, Duration::from_secs(90)).await;
    assert!(
        metrics.contains("dialbridge_router_admitted"),
        "the router counted the calls"
    );

    // Drain with calls up: each gets the bridge's BYE, the bridge stops holding nothing.
    let mut up = tokio::task::JoinSet::new();
    for i in 0..8 {
        let name = format!("drain-{i}");
        up.spawn(async move {
            let talk = Ending::CallerBye(Duration::from_secs(30));
            place(sip, ip("127.0.0.20"), SERVICE_NUMBER, &name, talk).await
        });
    }
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, metrics) = serve.get("/metrics").await;
        if metrics.contains("dialbridge_calls_in_progress 8") {
            break;
        }
        assert!(Instant::now() < end, "8 calls never came up:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = serve.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    while let Some(joined) = up.join_next().await {
        let ended = joined.unwrap().expect("a drained call ends cleanly");
        let reason = ended.bridge_bye.expect("the bridge hung up");
        assert!(reason.contains("shutting down"), "{reason}");
    }
    let end = Instant::now() + Duration::from_secs(15);
    while !serve.log().contains("bridge stopped") {
        assert!(
            Instant::now() < end,
            "no stop line:\n{}",
            tail(&serve.log())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = serve.log();
    let stopped = log
        .lines()
        .find(|l| l.contains("bridge stopped"))
        .unwrap_or_default();
    for held in ["calls=0", "reserved=0", "media_sessions=0", "rtp_ports=0"] {
        assert!(stopped.contains(held), "{stopped}");
    }
}
