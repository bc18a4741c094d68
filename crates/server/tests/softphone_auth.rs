//! Softphone digest authentication that cannot be replayed or guessed (issue 13), over
//! real sockets: a captured `Authorization` sent again (for another number, or as it
//! was) is refused, and wrong passwords lock the source out — 403 with no challenge,
//! even for the right password — as `/metrics` counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_sip::auth::respond;
use tokio::net::UdpSocket;

/// A raw SIP softphone on one UDP socket of `ip`.
struct Phone {
    sock: UdpSocket,
    bridge: SocketAddr,
}

/// One INVITE's final answer, with what its ACK needs.
struct Answer {
    text: String,
    call_id: String,
    branch: String,
}

impl Answer {
    fn status(&self) -> u16 {
        self.text[8..11].parse().unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.text, name)
    }
}

impl Phone {
    async fn new(ip: &str, bridge: SocketAddr) -> Phone {
        let sock = UdpSocket::bind(SocketAddr::new(ip.parse().unwrap(), 0))
            .await
            .unwrap();
        Phone { sock, bridge }
    }

    /// Sends an INVITE from `user` for `number` (its own Call-ID and branch), with
    /// `authorization` if given, and returns the final answer after ACKing it (a
    /// non-2xx in its transaction, a 2xx in the dialog), so no retransmission of it
    /// comes back later.
    async fn invite(
        &self,
        user: &str,
        number: &str,
        call: &str,
        authorization: Option<&str>,
    ) -> Answer {
        let local = self.sock.local_addr().unwrap();
        let ruri = ruri(number, self.bridge);
        let branch = format!("z9hG4bK-{call}");
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio 40010 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = local.ip()
        );
        let invite = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@{ip}>;tag={call}\r\nTo: <{ruri}>\r\n\
             Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:{user}@{local}>\r\n{auth}\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{body}",
            ip = local.ip(),
            len = body.len()
        );
        self.sock
            .send_to(invite.as_bytes(), self.bridge)
            .await
            .unwrap();
        let text = self.final_response(call).await;
        let answer = Answer {
            text,
            call_id: call.to_owned(),
            branch,
        };
        self.ack(&answer, user, &ruri).await;
        answer
    }

    async fn ack(&self, answer: &Answer, user: &str, ruri: &str) {
        let local = self.sock.local_addr().unwrap();
        let to = answer.header("To").unwrap();
        let branch = if answer.status() < 300 {
            format!("{}-ack", answer.branch)
        } else {
            answer.branch.clone()
        };
        let ack = format!(
            "ACK {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@{ip}>;tag={call}\r\nTo: {to}\r\n\
             Call-ID: {call}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            ip = local.ip(),
            call = answer.call_id
        );
        self.sock
            .send_to(ack.as_bytes(), self.bridge)
            .await
            .unwrap();
    }

    /// The first final response of the call `call_id` (others are skipped).
    async fn final_response(&self, call_id: &str) -> String {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) =
                tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
                    .await
                    .expect("an answer in time")
                    .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 1") || header(&text, "Call-ID") != Some(call_id) {
                continue;
            }
            return text;
        }
    }
}

fn ruri(number: &str, bridge: SocketAddr) -> String {
    format!("sip:{number}@{bridge}")
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

async fn metrics(bridge: &TestBridge) -> String {
    reqwest::Client::new()
        .get(format!("http://{}/metrics", bridge.admin_addr()))
        .header("Authorization", format!("Bearer {}", bridge.admin_token()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

const NUMBER: &str = "+14255550100";
const OTHER_NUMBER: &str = "+18885550100";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_authorization_is_refused_for_another_number_and_when_replayed() {
    let bridge = TestBridge::start(demo_config()).await;
    let alice = Phone::new("127.0.0.1", bridge.sip_addr()).await;
    let challenge = alice.invite("alice", NUMBER, "cap-1", None).await;
    assert_eq!(challenge.status(), 401, "{}", challenge.text);
    let www = challenge.header("WWW-Authenticate").unwrap();
    let captured = respond(
        www,
        "alice",
        "alice-secret",
        "INVITE",
        &ruri(NUMBER, bridge.sip_addr()),
        "c0ffee",
        1,
    )
    .unwrap();
    let ok = alice
        .invite("alice", NUMBER, "cap-2", Some(&captured))
        .await;
    assert_eq!(ok.status(), 200, "{}", ok.text);

    // An eavesdropper's raw client, from another address, sends the header again.
    let eve = Phone::new("127.0.0.2", bridge.sip_addr()).await;
    let elsewhere = eve
        .invite("alice", OTHER_NUMBER, "eve-1", Some(&captured))
        .await;
    assert_eq!(elsewhere.status(), 400, "{}", elsewhere.text);
    assert!(
        elsewhere
            .text
            .starts_with("SIP/2.0 400 Digest uri does not match the Request-URI"),
        "{}",
        elsewhere.text
    );
    // The same number, the same count: a replay. The answer is a new challenge
    // (stale=true), which the eavesdropper cannot answer without the password.
    let again = eve.invite("alice", NUMBER, "eve-2", Some(&captured)).await;
    assert_eq!(again.status(), 401, "{}", again.text);
    assert!(
        again
            .header("WWW-Authenticate")
            .unwrap()
            .contains("stale=true"),
        "{}",
        again.text
    );
    assert_eq!(bridge.calls_in_progress(), 1, "only alice's own call");
    let text = metrics(&bridge).await;
    for line in [
        "dialbridge_sip_auth_successes_total 1\n",
        "dialbridge_sip_auth_failures_total{reason=\"wrong_uri\"} 1\n",
        "dialbridge_sip_auth_stale_total{reason=\"replayed\"} 1\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_wrong_passwords_then_the_right_one_is_refused_during_the_lock_out() {
    let bridge = TestBridge::start(demo_config()).await;
    let ruri = ruri(NUMBER, bridge.sip_addr());
    let phone = Phone::new("127.0.0.3", bridge.sip_addr()).await;
    let mut last_challenge = String::new();
    for i in 1..=5 {
        let challenge = phone
            .invite("bob", NUMBER, &format!("guess-{i}"), None)
            .await;
        assert_eq!(challenge.status(), 401, "attempt {i}: {}", challenge.text);
        last_challenge = challenge.header("WWW-Authenticate").unwrap().to_owned();
        let wrong = respond(
            &last_challenge,
            "bob",
            &format!("guess{i}"),
            "INVITE",
            &ruri,
            "g",
            1,
        )
        .unwrap();
        let refused = phone
            .invite("bob", NUMBER, &format!("guess-{i}b"), Some(&wrong))
            .await;
        assert_eq!(refused.status(), 403, "attempt {i}: {}", refused.text);
    }
    // Locked: the sixth wrong password, no challenge to a request without credentials,
    // and the right password — for bob, or for alice from the same address.
    let sixth = respond(&last_challenge, "bob", "guess6", "INVITE", &ruri, "g", 2).unwrap();
    let bob = respond(
        &last_challenge,
        "bob",
        "bob-secret",
        "INVITE",
        &ruri,
        "g",
        3,
    )
    .unwrap();
    let alice = respond(
        &last_challenge,
        "alice",
        "alice-secret",
        "INVITE",
        &ruri,
        "g",
        1,
    )
    .unwrap();
    for (call, user, authorization) in [
        ("locked-1", "bob", Some(sixth.as_str())),
        ("locked-2", "bob", None),
        ("locked-3", "bob", Some(bob.as_str())),
        ("locked-4", "alice", Some(alice.as_str())),
    ] {
        let answer = phone.invite(user, NUMBER, call, authorization).await;
        assert!(
            answer
                .text
                .starts_with("SIP/2.0 403 Too Many Failed Attempts"),
            "{call}: {}",
            answer.text
        );
        assert!(
            answer.header("WWW-Authenticate").is_none(),
            "{}",
            answer.text
        );
        assert!(
            answer.header("Warning").unwrap().starts_with("399 "),
            "{}",
            answer.text
        );
    }
    // bob is locked out wherever he calls from; alice, from elsewhere, is not.
    let elsewhere = Phone::new("127.0.0.4", bridge.sip_addr()).await;
    let answer = elsewhere.invite("bob", NUMBER, "bob-elsewhere", None).await;
    assert_eq!(answer.status(), 403, "{}", answer.text);
    let answer = elsewhere
        .invite("alice", NUMBER, "alice-elsewhere", None)
        .await;
    assert_eq!(answer.status(), 401, "{}", answer.text);

    let text = metrics(&bridge).await;
    for line in [
        "dialbridge_sip_auth_failures_total{reason=\"wrong_credentials\"} 5\n",
        "dialbridge_sip_auth_lockouts_total{scope=\"source\"} 1\n",
        "dialbridge_sip_auth_lockouts_total{scope=\"user\"} 1\n",
        "dialbridge_sip_auth_locked_out_total 5\n",
        "dialbridge_sip_auth_successes_total 0\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert_eq!(bridge.calls_in_progress(), 0);
    bridge.stop().await;
}

/// Two nodes sharing a Redis count one guesser's wrong passwords together: three on
/// node A and two on node B make the five that lock bob's source out, on both nodes,
/// though neither saw five itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_spread_over_two_nodes_lock_the_guesser_out_on_both() {
    let redis = dialbridge_testkit::servers::Redis::start();
    let node = |name: &str| {
        let mut config = demo_config();
        config.shared.redis = Some(redis.url());
        config.shared.node = name.to_string();
        config
    };
    let nodes = [
        TestBridge::start(node("a")).await,
        TestBridge::start(node("b")).await,
    ];
    for bridge in &nodes {
        let mut ready = false;
        for _ in 0..200 {
            if metrics(bridge)
                .await
                .contains("\ndialbridge_shared_capacity_ready 1\n")
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "Redis never took the node's claims");
    }
    let mut attempt = 0;
    for (bridge, guesses) in [(&nodes[0], 3), (&nodes[1], 2)] {
        let ruri = ruri(NUMBER, bridge.sip_addr());
        let phone = Phone::new("127.0.0.5", bridge.sip_addr()).await;
        for _ in 0..guesses {
            attempt += 1;
            let challenge = phone
                .invite("bob", NUMBER, &format!("spread-{attempt}"), None)
                .await;
            assert_eq!(
                challenge.status(),
                401,
                "attempt {attempt}: {}",
                challenge.text
            );
            let www = challenge.header("WWW-Authenticate").unwrap();
            let wrong = respond(www, "bob", "guess", "INVITE", &ruri, "g", 1).unwrap();
            let refused = phone
                .invite("bob", NUMBER, &format!("spread-{attempt}b"), Some(&wrong))
                .await;
            assert_eq!(refused.status(), 403, "attempt {attempt}: {}", refused.text);
            assert!(
                !refused.text.contains("Too Many Failed Attempts"),
                "no node saw five itself: {}",
                refused.text
            );
        }
    }
    // The block comes back to both nodes through Redis (a round trip or two).
    for (i, bridge) in nodes.iter().enumerate() {
        let phone = Phone::new("127.0.0.5", bridge.sip_addr()).await;
        let mut locked = false;
        for n in 0..100 {
            let answer = phone
                .invite("bob", NUMBER, &format!("locked-{i}-{n}"), None)
                .await;
            if answer
                .text
                .starts_with("SIP/2.0 403 Too Many Failed Attempts")
            {
                locked = true;
                break;
            }
            assert_eq!(answer.status(), 401, "{}", answer.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(locked, "node {i} never heard of the lock-out");
    }
}
