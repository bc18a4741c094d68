//! A flood of new calls is shed, not suffered: INVITEs past the configured call rate get
//! 503 with Retry-After before any routing, the call already up is untouched, and the
//! first call after the flood is answered as usual. (The figures under a real flood,
//! with callers checking their audio, come from `scripts/overload.sh`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::{ip, uac};
use tokio::net::UdpSocket;

/// Nobody's number: an INVITE that gets past the shedder is refused by the router
/// (404), so shed and routed calls tell themselves apart and nothing stays up.
const UNKNOWN: &str = "+33170009999";
const FLOOD: usize = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_call_rate_is_shed_with_503_and_retry_after() {
    let mut config = demo_config();
    config.sip.shed.max_call_rate = 50;
    let bridge = TestBridge::start(config).await;
    let sip = bridge.sip_addr();
    let up = uac::call(sip, ip("127.0.0.20"), "+33170000100").await;
    assert_eq!(up.status, 200, "{}", up.response);

    let sock = std::sync::Arc::new(UdpSocket::bind("127.0.0.20:0").await.unwrap());
    let local = sock.local_addr().unwrap();
    // Each INVITE's final answer, by Call-ID (a retransmitted answer counts once),
    // read while the flood goes out.
    let receiver = {
        let sock = sock.clone();
        tokio::spawn(async move {
            let mut finals: HashMap<String, (u16, bool)> = HashMap::new();
            let mut last_final = Instant::now();
            let mut buf = vec![0u8; 65536];
            let end = Instant::now() + Duration::from_secs(30);
            while finals.len() < FLOOD && Instant::now() < end {
                let Ok(Ok((n, _))) =
                    tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf)).await
                else {
                    break;
                };
                let text = String::from_utf8_lossy(&buf[..n]);
                let status: u16 = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if status < 200 {
                    continue;
                }
                let call_id = uac::header(&text, "Call-ID")
                    .unwrap_or_default()
                    .to_string();
                let retry_after = uac::header(&text, "Retry-After").is_some();
                if let std::collections::hash_map::Entry::Vacant(new) = finals.entry(call_id) {
                    new.insert((status, retry_after));
                    last_final = Instant::now();
                }
            }
            (finals, last_final)
        })
    };
    // Ten times the call rate: 500 a second, in batches of 10 every 20 ms.
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for batch in 0..FLOOD / 10 {
        tick.tick().await;
        for i in batch * 10..batch * 10 + 10 {
            let invite = format!(
                "INVITE sip:{UNKNOWN}@{sip} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bKflood{i};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:+15550001111@127.0.0.20>;tag=flood{i}\r\n\
                 To: <sip:{UNKNOWN}@{sip}>\r\n\
                 Call-ID: flood-{i}\r\n\
                 CSeq: 1 INVITE\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            sock.send_to(invite.as_bytes(), sip).await.unwrap();
        }
    }
    let (finals, last_final) = receiver.await.unwrap();
    // Every INVITE was decided before its answer came back: the bucket cannot have
    // refilled for longer than from the first INVITE to the last answer.
    let decided_within = last_final.saturating_duration_since(started);
    assert_eq!(finals.len(), FLOOD, "every INVITE got a final answer");
    let shed = finals.values().filter(|(s, _)| *s == 503).count();
    let routed = finals.values().filter(|(s, _)| *s == 404).count();
    assert_eq!(shed + routed, FLOOD, "only 503 and 404: {finals:?}");
    assert!(
        finals.values().all(|(s, retry)| *s != 503 || *retry),
        "every 503 says when to retry"
    );
    // The bucket: 12 at once (a quarter second's worth, at least 10), then 50 a second.
    let allowed = 12.0 + 50.0 * decided_within.as_secs_f64() + 1.0;
    assert!(
        (routed as f64) <= allowed,
        "{routed} routed within {decided_within:?}, {shed} shed"
    );
    // The rest was shed (how many depends on how fast the flood went out: the bound
    // above is the check; at 10x the rate, most of it).
    assert!(shed > 0, "nothing shed of {FLOOD}");

    // The call that was up is still up, and hangs up normally.
    assert_eq!(bridge.calls_in_progress(), 1);
    assert_eq!(up.hang_up().await, 200);
    // The flood is over: the next call is answered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = uac::call(sip, ip("127.0.0.20"), "+33170000100").await;
    assert_eq!(after.status, 200, "{}", after.response);
    assert_eq!(after.hang_up().await, 200);

    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", bridge.admin_addr()))
        .bearer_auth(bridge.admin_token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dialbridge_sip_calls_shed_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no shed counter in\n{metrics}"));
    assert_eq!(counted, shed);
    bridge.stop().await;
}
