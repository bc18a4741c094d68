//! The `sbc-sim` binary against a real bridge: the demo deployment (`TestBridge`, on free
//! loopback ports in this process). `sbc-sim call` keys its way into adele's meeting and
//! records the join chime; a small `sbc-sim load` fills two demo meetings at once, every
//! caller hearing the others' tone, and reports in JSON — the CI-sized version of the
//! documented load run (scripts/load.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use sbc_sim::audio_check::goertzel_power;
use tokio::process::Command;

const SBC_SIM: &str = env!("CARGO_BIN_EXE_sbc-sim");
const TELCO_A: &str = "127.0.0.20";
const TELCO_B: &str = "127.0.0.30";
/// Telco A's number on contoso's bridge, and Telco B's on fabrikam's (shared/DEMO.md).
const TELCO_A_NUMBER: &str = "+33170000100";
const TELCO_B_NUMBER: &str = "+493070000100";

/// Samples per analysis block: 20 ms at 8 kHz.
const BLOCK: usize = 160;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sbc-sim-against-bridge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn sbc_sim(args: &[&str]) -> Output {
    let run = Command::new(SBC_SIM).args(args).kill_on_drop(true).output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("sbc-sim finishes within a minute")
        .expect("sbc-sim runs")
}

fn explain(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn read_wav(path: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().sample_rate, 8000);
    reader.samples::<i16>().map(Result::unwrap).collect()
}

/// Which of `freqs` holds a good part of a 20 ms block's energy (over 40%: the chime
/// may overlap the start of the "joining" prompt), if any.
fn dominant(block: &[i16], freqs: &[f64]) -> Option<f64> {
    let energy: f64 = block.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    // A pure sine's Goertzel power over N samples is its energy times N/2.
    let full = energy * block.len() as f64 / 2.0;
    if energy < 1e5 * block.len() as f64 {
        // Quieter than about -50 dBFS: no note here.
        return None;
    }
    freqs
        .iter()
        .copied()
        .find(|&f| goertzel_power(block, f, 8000.0) > 0.4 * full)
}

/// Where the join chime (600 Hz for 120 ms, then 900 Hz for 160 ms) starts in `heard`,
/// in 20 ms blocks: at least 3 blocks of 600 Hz followed at once (one transition block
/// allowed) by at least 4 blocks of 900 Hz.
fn find_join_chime(heard: &[i16]) -> Option<usize> {
    let notes: Vec<Option<f64>> = heard
        .chunks_exact(BLOCK)
        .map(|b| dominant(b, &[600.0, 900.0]))
        .collect();
    let run = |from: usize, hz: f64| {
        notes
            .iter()
            .skip(from)
            .take_while(|n| **n == Some(hz))
            .count()
    };
    (0..notes.len()).find(|&i| {
        let low = run(i, 600.0);
        low >= 3 && (0..=1).any(|skip| run(i + low + skip, 900.0) >= 4)
    })
}

#[test]
fn the_chime_finder_needs_both_notes_in_order() {
    let sine = |hz: f64, ms: usize| -> Vec<i16> {
        (0..ms * 8)
            .map(|n| (8000.0 * (2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0).sin()) as i16)
            .collect()
    };
    let chime: Vec<i16> = [
        vec![0; 800],
        sine(600.0, 120),
        sine(900.0, 160),
        vec![0; 800],
    ]
    .concat();
    assert_eq!(find_join_chime(&chime), Some(5));
    let falling: Vec<i16> = [sine(900.0, 160), sine(600.0, 120)].concat();
    assert_eq!(
        find_join_chime(&falling),
        None,
        "the leave chime is not the join chime"
    );
    assert_eq!(find_join_chime(&sine(600.0, 500)), None);
    let dtmf_like: Vec<i16> = sine(600.0, 200)
        .iter()
        .zip(sine(1336.0, 200))
        .map(|(a, b)| a / 3 + b / 3 * 2)
        .chain(sine(900.0, 200))
        .collect();
    assert_eq!(
        find_join_chime(&dtmf_like),
        None,
        "a block where 600 Hz is a fifth of the energy is no note"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sbc_sim_call_joins_adeles_meeting_and_records_the_join_chime() {
    let bridge = TestBridge::start(demo_config()).await;
    let wav = scratch("call.wav");
    let bridge_addr = bridge.sip_addr().to_string();
    let wav_arg = wav.to_string_lossy().to_string();
    let output = sbc_sim(&[
        "call",
        "--bridge",
        &bridge_addr,
        "--from-ip",
        TELCO_A,
        "--to",
        TELCO_A_NUMBER,
        "--script",
        "wait 500ms, keys 123456789#, wait 1500ms, keys #, wait 4s",
        "--record",
        &wav_arg,
    ])
    .await;
    assert!(output.status.success(), "{}", explain(&output));
    let heard = read_wav(&wav);
    std::fs::remove_file(&wav).unwrap();
    // 0.5 s + 10 keys + 1.5 s + 1 key + 4 s: over 7 s of recording.
    assert!(heard.len() > 8000 * 7, "heard {} samples", heard.len());
    let chime = find_join_chime(&heard);
    assert!(
        chime.is_some(),
        "no join chime in the recording\n{}",
        explain(&output)
    );
    // The chime follows the keys: the second `#` is sent after 0.5 + 1.6 + 1.5 s.
    let at = chime.unwrap() as f64 * 0.02;
    assert!(at > 3.5, "join chime at {at:.2} s, before the final #");
    // sbc-sim hung up: the bridge lets the call go.
    for _ in 0..100 {
        if bridge.calls_in_progress() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bridge.calls_in_progress(), 0, "the call is over");
    bridge.stop().await;
}

/// Two `sbc-sim call`s in adele's meeting, one offering G.722 and sending 6 kHz, one
/// offering Opus and expecting to hear it: each reports the codec the bridge answered,
/// and the Opus caller records at 16 kHz.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sbc_sim_calls_with_g722_and_opus_and_hears_6khz() {
    let bridge = TestBridge::start(demo_config()).await;
    let bridge_addr = bridge.sip_addr().to_string();
    let wav = scratch("opus.wav");
    let wav_arg = wav.to_string_lossy().to_string();
    let join = "wait 500ms, keys 123456789#, wait 1500ms, keys #";
    let g722_script = format!("{join}, wait 7s");
    let opus_script = format!("{join}, wait 5s");
    let common = [
        "call",
        "--bridge",
        &bridge_addr,
        "--from-ip",
        TELCO_A,
        "--to",
        TELCO_A_NUMBER,
        "--json",
    ];
    let g722_args = [
        &common[..],
        &[
            "--codec",
            "g722",
            "--tone",
            "6000",
            "--script",
            &g722_script,
        ],
    ]
    .concat();
    let opus_args = [
        &common[..],
        &[
            "--codec",
            "opus",
            "--expect-tone",
            "6000",
            "--record",
            &wav_arg,
            "--script",
            &opus_script,
        ],
    ]
    .concat();
    let (g722, opus) = tokio::join!(sbc_sim(&g722_args), sbc_sim(&opus_args));
    assert!(g722.status.success(), "{}", explain(&g722));
    assert!(opus.status.success(), "{}", explain(&opus));
    let outcome = |o: &Output| -> serde_json::Value { serde_json::from_slice(&o.stdout).unwrap() };
    let (g722, opus) = (outcome(&g722), outcome(&opus));
    assert_eq!(
        g722["codec"],
        serde_json::json!({"codec": "g722", "encoding": "G722", "payload_type": 9,
            "clock_rate": 8000, "telephone_event": 101})
    );
    assert_eq!(
        opus["codec"],
        serde_json::json!({"codec": "opus", "encoding": "opus", "payload_type": 111,
            "clock_rate": 48000, "telephone_event": 101})
    );
    assert_eq!(opus["heard_rate"], 16_000);
    assert_eq!(opus["audio_ok"], true);
    let reader = hound::WavReader::open(&wav).unwrap();
    assert_eq!(reader.spec().sample_rate, 16_000);
    assert!(reader.len() > 16_000 * 7, "{} samples", reader.len());
    std::fs::remove_file(&wav).unwrap();
    bridge.stop().await;
}

/// One stream of calls into a demo meeting.
struct Stream {
    /// The trunk's source address.
    from_ip: &'static str,
    /// The number dialled.
    to: &'static str,
    /// The conference ID keyed.
    conference: &'static str,
    /// The tone every caller sends and expects to hear from the others, Hz.
    tone: &'static str,
}

/// `sbc-sim load` of one stream: its output and JSON summary (also written to `json`).
async fn load(
    bridge: SocketAddr,
    stream: Stream,
    calls: u64,
    rate: f64,
    json: &Path,
) -> (Output, serde_json::Value) {
    let Stream {
        from_ip,
        to,
        conference,
        tone,
    } = stream;
    let output = sbc_sim(&[
        "load",
        "--bridge",
        &bridge.to_string(),
        "--from-ip",
        from_ip,
        "--to",
        to,
        "--calls",
        &calls.to_string(),
        "--rate",
        &rate.to_string(),
        "--conference",
        conference,
        "--tone",
        tone,
        "--expect-tone",
        tone,
        "--hold",
        "4s",
        "--setup-timeout",
        "5s",
        "--quiet",
        "--json",
    ])
    .await;
    std::fs::write(json, &output.stdout).unwrap();
    let summary = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}):\n{}", explain(&output)));
    (output, summary)
}

fn assert_all_passed(name: &str, calls: u64, output: &Output, s: &serde_json::Value) {
    let count = |key: &str| s[key].as_u64().unwrap_or(u64::MAX);
    let context = || format!("{name}: {s:#}\n{}", explain(output));
    assert!(output.status.success(), "{}", context());
    assert_eq!(count("attempted"), calls, "{}", context());
    assert_eq!(count("answered"), calls, "{}", context());
    assert_eq!(count("passed"), calls, "{}", context());
    assert_eq!(count("audio_checked"), calls, "{}", context());
    assert_eq!(count("audio_passed"), calls, "{}", context());
    assert_eq!(
        s["ended_by"]["caller"].as_u64(),
        Some(calls),
        "{}",
        context()
    );
    assert_eq!(
        s["setup_latency"]["count"].as_u64(),
        Some(calls),
        "{}",
        context()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_load_fills_two_demo_meetings_and_everyone_hears_the_others() {
    let bridge = TestBridge::start(demo_config()).await;
    let sip = bridge.sip_addr();
    // 40 calls at 20 calls/s in all: adele's meeting through Telco A (contoso), ravi's
    // through Telco B (fabrikam). One tone per meeting, so every caller hears it from
    // the others (never from itself: the mix leaves each caller's own voice out). The
    // tones stay clear of the join/leave chime's 600 and 900 Hz, which the demo plays
    // at every one of these 40 joins and leaves.
    let (adele_json, ravi_json) = (scratch("load-adele.json"), scratch("load-ravi.json"));
    let adele = load(
        sip,
        Stream {
            from_ip: TELCO_A,
            to: TELCO_A_NUMBER,
            conference: "123456789",
            tone: "1400",
        },
        20,
        10.0,
        &adele_json,
    );
    let ravi = load(
        sip,
        Stream {
            from_ip: TELCO_B,
            to: TELCO_B_NUMBER,
            conference: "555000111",
            tone: "2000",
        },
        20,
        10.0,
        &ravi_json,
    );
    let peak = async {
        let (mut participants, mut meetings) = (0, 0);
        for _ in 0..300 {
            participants = participants.max(bridge.participants());
            meetings = meetings.max(bridge.meetings());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (participants, meetings)
    };
    let ((adele_out, adele), (ravi_out, ravi), (participants, meetings)) =
        tokio::join!(adele, ravi, peak);
    assert_all_passed("adele", 20, &adele_out, &adele);
    assert_all_passed("ravi", 20, &ravi_out, &ravi);
    // The reports on disk are what was printed.
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&adele_json).unwrap()).unwrap();
    assert_eq!(on_disk, adele);
    for path in [adele_json, ravi_json] {
        std::fs::remove_file(path).unwrap();
    }
    // Launch takes 2 s and every call holds 4 s in its meeting: all 40 overlap.
    assert_eq!(participants, 40, "peak participants");
    assert_eq!(meetings, 2);
    bridge.stop().await;
}
