//! Symmetric RTP end to end: a softphone behind a "NAT" — its SDP says
//! `c=IN IP4 127.0.0.99` and a port nobody listens on, while its SIP and RTP come from
//! 127.0.0.1 — authenticates by digest, hears the bridge once its media latched, keys
//! RFC 4733 DTMF into conference 123456789 and gets into the meeting; and a trunk's
//! IPv6 offer gets IPv6 media from a bridge with `[media] address6`. A raw UDP caller,
//! written here, so nothing of the bridge's SIP stack is on the calling side but the
//! digest computation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_testkit::uac::header;
use dialbridge_testkit::{ip, wait_until};
use tokio::net::UdpSocket;

const PCMU: u8 = 0;
const EVENTS: u8 = 101;
const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_natted_softphone_is_latched_to_and_gets_into_the_meeting() {
    let bridge = TestBridge::start(demo_config()).await;
    let sip = UdpSocket::bind((ip("127.0.0.1"), 0)).await.unwrap();
    let rtp = UdpSocket::bind((ip("127.0.0.1"), 0)).await.unwrap();
    // The port the SDP advertises is not the one the RTP comes from either; a socket of
    // ours holds it, so that what the bridge sends there is seen (and hits no one else).
    let advertised = UdpSocket::bind((ip("127.0.0.1"), 0)).await.unwrap();
    let mut dialog = Dialog::new(sip, bridge.sip_addr(), "IP4 127.0.0.99");
    let answer = dialog.invite(advertised.local_addr().unwrap().port()).await;

    // The answer's media address: the bridge's IPv4 address (no IPv6 media in the demo).
    let media = sdp_media(&answer);
    assert_eq!(media.ip(), ip("127.0.0.1"), "{answer}");

    // Before our first packet the bridge sends to the signalling IP with the SDP port
    // (never to 127.0.0.99); the first packet from our real port latches it here.
    let mut buf = [0u8; 2048];
    let (_, from) = tokio::time::timeout(5 * SECOND, advertised.recv_from(&mut buf))
        .await
        .expect("nothing sent to the signalling IP before latching")
        .unwrap();
    assert_eq!(from, media);
    let mut out = Rtp::new(rtp, media);
    out.audio(1).await;
    let heard = out.hear(5 * SECOND).await;
    assert!(heard > 0, "no audio from the bridge after latching");

    // The IVR: conference ID and #, then # for no leader PIN.
    out.audio(50).await;
    out.keys("123456789#").await;
    out.audio(100).await;
    out.keys("#").await;
    wait_until(
        "the caller to join the meeting",
        || bridge.participants() == 1,
        Duration::from_secs(10),
    )
    .await;

    // A stranger injecting RTP now is refused: we stay in the meeting, and the bridge
    // counts it. (On our own IP it would be taken for a NAT rebinding: that is the
    // rule, the signalling IP is trusted.)
    let stranger = UdpSocket::bind((ip("127.0.0.66"), 0)).await.unwrap();
    for seq in 0..5u16 {
        let packet = rtp_packet(PCMU, false, seq, 0, 0x5757, &[0xff; 160]);
        stranger.send_to(&packet, media).await.unwrap();
    }
    let metrics = admin_metrics(&bridge).await;
    let latched = sample(&metrics, "dialbridge_rtp_latched_total");
    assert!(latched >= 1.0, "{metrics}");
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        let metrics = admin_metrics(&bridge).await;
        if sample(&metrics, "dialbridge_rtp_latch_refused_total") >= 5.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refusals not counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        out.hear(SECOND).await > 0,
        "the stream moved to the stranger"
    );
    assert_eq!(bridge.participants(), 1);

    // Hold and resume by re-INVITE, with the same (suspicious) SDP address: the latch
    // holds. Nothing is sent meanwhile, so a move back to the SDP port would show.
    let port = advertised.local_addr().unwrap().port();
    assert_eq!(dialog.reinvite(port, "sendonly").await, 200);
    assert_eq!(dialog.reinvite(port, "sendrecv").await, 200);
    // What was sent before the re-INVITEs took effect (the call task applies them) is
    // drained; from then on all of it must reach the latched port.
    tokio::time::sleep(Duration::from_millis(200)).await;
    out.drain().await;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(1), advertised.recv_from(&mut buf)).await
    {}
    assert!(
        out.hear(SECOND).await > 0,
        "no audio at the latched port after resume"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), advertised.recv_from(&mut buf))
            .await
            .is_err(),
        "the re-INVITE moved the stream back to the SDP port"
    );

    assert_eq!(dialog.bye().await, 200);
    wait_until(
        "the call to end",
        || bridge.calls_in_progress() == 0,
        Duration::from_secs(5),
    )
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_offer_gets_ipv6_media_when_the_bridge_has_an_ipv6_address() {
    let mut config = demo_config();
    config.media.address6 = Some(std::net::Ipv6Addr::LOCALHOST);
    let bridge = TestBridge::start(config).await;
    // A trunk (no latching) whose SBC offers IPv6 media on ::1.
    let sip = UdpSocket::bind((ip("127.0.0.10"), 0)).await.unwrap();
    let rtp = UdpSocket::bind((ip("::1"), 0)).await.unwrap();
    let mut dialog = Dialog::new(sip, bridge.sip_addr(), "IP6 ::1");
    let answer = dialog.invite(rtp.local_addr().unwrap().port()).await;
    assert!(answer.contains("c=IN IP6 ::1\r\n"), "{answer}");
    let media = sdp_media(&answer);
    assert_eq!(media.ip(), ip("::1"));
    let mut out = Rtp::new(rtp, media);
    assert!(out.hear(5 * SECOND).await > 0, "no audio over IPv6");
    out.audio(50).await;
    out.keys("123456789#").await;
    out.audio(100).await;
    out.keys("#").await;
    wait_until(
        "the IPv6 caller to join the meeting",
        || bridge.participants() == 1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(dialog.bye().await, 200);
    bridge.stop().await;
}

/// The bridge's RTP address from the `c=` and `m=audio` lines of a 200's SDP.
fn sdp_media(response: &str) -> SocketAddr {
    let address = response
        .lines()
        .find_map(|l| {
            l.strip_prefix("c=IN IP4 ")
                .or_else(|| l.strip_prefix("c=IN IP6 "))
        })
        .unwrap()
        .trim();
    let port = response
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    SocketAddr::new(ip(address), port.parse().unwrap())
}

/// A caller's INVITE dialog; a softphone is digest-authenticated as alice.
struct Dialog {
    sock: UdpSocket,
    bridge: SocketAddr,
    /// The offer's `c=IN` value, e.g. `IP4 127.0.0.99`.
    connection: &'static str,
    call_id: String,
    cseq: u32,
    to_tag: String,
}

impl Dialog {
    fn new(sock: UdpSocket, bridge: SocketAddr, connection: &'static str) -> Self {
        let port = sock.local_addr().unwrap().port();
        Dialog {
            sock,
            bridge,
            connection,
            call_id: format!("nat-{}-{port}", std::process::id()),
            cseq: 0,
            to_tag: String::new(),
        }
    }

    /// INVITE, the 401 challenge answered, up to the 200 (ACKed); returns the 200.
    async fn invite(&mut self, rtp_port: u16) -> String {
        let sdp = offer(self.connection, rtp_port, 1, "sendrecv");
        let uri = format!("sip:+14255550100@{}", self.bridge);
        let mut authorization = String::new();
        for _ in 0..2 {
            self.cseq += 1;
            let branch = format!("z9hG4bK{}-{}", self.call_id, self.cseq);
            let local = self.sock.local_addr().unwrap();
            let invite = format!(
                "INVITE {uri} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:alice@127.0.0.99>;tag=nat\r\n\
                 To: <{uri}>\r\n\
                 Call-ID: {call_id}\r\n\
                 CSeq: {cseq} INVITE\r\n\
                 Contact: <sip:alice@127.0.0.99:5060>\r\n\
                 {authorization}Content-Type: application/sdp\r\n\
                 Content-Length: {len}\r\n\r\n{sdp}",
                call_id = self.call_id,
                cseq = self.cseq,
                len = sdp.len(),
            );
            self.sock
                .send_to(invite.as_bytes(), self.bridge)
                .await
                .unwrap();
            let response = self.final_response("INVITE").await;
            let status = status(&response);
            self.to_tag = header(&response, "To")
                .and_then(|to| to.split(";tag=").nth(1))
                .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
                .unwrap_or_default();
            if status == 401 {
                // A non-2xx is ACKed in the INVITE's transaction (§17.1.1.3).
                self.send("ACK", &branch, "").await;
                let challenge = header(&response, "WWW-Authenticate").unwrap();
                let value = dialbridge_sip::auth::respond(
                    challenge,
                    "alice",
                    "alice-secret",
                    "INVITE",
                    &uri,
                    "0a4f113b",
                    1,
                )
                .unwrap();
                authorization = format!("Authorization: {value}\r\n");
                continue;
            }
            assert_eq!(status, 200, "{response}");
            let ack = format!("z9hG4bK{}-ack{}", self.call_id, self.cseq);
            self.send("ACK", &ack, "").await;
            return response;
        }
        panic!("challenged twice");
    }

    /// A re-INVITE with the same address and `direction`; returns its status (ACKed).
    async fn reinvite(&mut self, rtp_port: u16, direction: &str) -> u16 {
        self.cseq += 1;
        let sdp = offer(self.connection, rtp_port, u64::from(self.cseq), direction);
        let branch = format!("z9hG4bK{}-re{}", self.call_id, self.cseq);
        let extra = format!(
            "Contact: <sip:alice@127.0.0.99:5060>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        self.request("INVITE", &branch, &extra).await;
        let status = status(&self.final_response("INVITE").await);
        let ack = format!("z9hG4bK{}-ack{}", self.call_id, self.cseq);
        self.send("ACK", &ack, "").await;
        status
    }

    /// BYE; returns its answer's status.
    async fn bye(&mut self) -> u16 {
        self.cseq += 1;
        let branch = format!("z9hG4bK{}-bye", self.call_id);
        self.send("BYE", &branch, "").await;
        status(&self.final_response("BYE").await)
    }

    /// An in-dialog request without a body; `extra`: headers before Content-Length.
    async fn send(&self, method: &str, branch: &str, extra: &str) {
        self.request(method, branch, &format!("{extra}Content-Length: 0\r\n\r\n"))
            .await;
    }

    /// An in-dialog request; `tail`: the headers after CSeq, blank line and body.
    async fn request(&self, method: &str, branch: &str, tail: &str) {
        let local = self.sock.local_addr().unwrap();
        let to_tag = if self.to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={}", self.to_tag)
        };
        let message = format!(
            "{method} sip:+14255550100@{bridge} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.99>;tag=nat\r\n\
             To: <sip:+14255550100@{bridge}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             {tail}",
            bridge = self.bridge,
            call_id = self.call_id,
            cseq = self.cseq,
        );
        self.sock
            .send_to(message.as_bytes(), self.bridge)
            .await
            .unwrap();
    }

    /// The next final response to `method` (provisional ones and requests skipped).
    async fn final_response(&self, method: &str) -> String {
        let mut buf = vec![0u8; 65536];
        let deadline = Instant::now() + 10 * SECOND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (n, _) = tokio::time::timeout(left, self.sock.recv_from(&mut buf))
                .await
                .expect("a final response in time")
                .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let cseq = format!("{} {method}", self.cseq);
            if text.starts_with("SIP/2.0")
                && status(&text) >= 200
                && header(&text, "CSeq").is_some_and(|c| c.trim() == cseq)
            {
                return text;
            }
        }
    }
}

/// The caller's offer, `c=IN <connection>`.
fn offer(connection: &str, rtp_port: u16, version: u64, direction: &str) -> String {
    format!(
        "v=0\r\no=linphone 1 {version} IN {connection}\r\ns=-\r\nc=IN {connection}\r\n\
         t=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na={direction}\r\n"
    )
}

fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Our RTP: PCMU silence and RFC 4733 keys, paced at 20 ms, from the one socket.
struct Rtp {
    sock: UdpSocket,
    to: SocketAddr,
    ticker: tokio::time::Interval,
    seq: u16,
    timestamp: u32,
}

impl Rtp {
    fn new(sock: UdpSocket, to: SocketAddr) -> Self {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Rtp {
            sock,
            to,
            ticker,
            seq: 1,
            timestamp: 0,
        }
    }

    async fn send(&mut self, pt: u8, marker: bool, timestamp: u32, payload: &[u8]) {
        let packet = rtp_packet(pt, marker, self.seq, timestamp, 0x4e41_5431, payload);
        self.seq = self.seq.wrapping_add(1);
        self.sock.send_to(&packet, self.to).await.unwrap();
    }

    async fn audio(&mut self, frames: u32) {
        for _ in 0..frames {
            self.ticker.tick().await;
            self.send(PCMU, false, self.timestamp, &[0xff; 160]).await;
            self.timestamp = self.timestamp.wrapping_add(160);
        }
    }

    /// Each key a 100 ms event (RFC 4733 §2.5: marker first, three end packets), then
    /// 60 ms of silence.
    async fn keys(&mut self, keys: &str) {
        for key in keys.chars() {
            let event = match key {
                '#' => 11,
                '*' => 10,
                d => d.to_digit(10).unwrap() as u8,
            };
            let start = self.timestamp;
            for (i, duration) in [160u16, 320, 480, 640, 800].into_iter().enumerate() {
                self.ticker.tick().await;
                let d = duration.to_be_bytes();
                self.send(EVENTS, i == 0, start, &[event, 10, d[0], d[1]])
                    .await;
            }
            for _ in 0..3 {
                let d = 800u16.to_be_bytes();
                self.send(EVENTS, false, start, &[event, 0x80 | 10, d[0], d[1]])
                    .await;
            }
            self.timestamp = self.timestamp.wrapping_add(800);
            self.audio(3).await;
        }
    }

    /// Forgets what the bridge sent so far.
    async fn drain(&self) {
        let mut buf = [0u8; 2048];
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(1), self.sock.recv_from(&mut buf)).await
        {
        }
    }

    /// RTP packets from the bridge received within `within`.
    async fn hear(&self, within: Duration) -> usize {
        let mut buf = [0u8; 2048];
        let mut count = 0;
        let end = Instant::now() + within;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match tokio::time::timeout(left, self.sock.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) if n >= 12 && from == self.to => {
                    count += 1;
                    if count >= 10 {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        count
    }
}

fn rtp_packet(
    pt: u8,
    marker: bool,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut packet = vec![0x80, (u8::from(marker) << 7) | pt];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

async fn admin_metrics(bridge: &TestBridge) -> String {
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

/// The value of an unlabelled sample.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}
