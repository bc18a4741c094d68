//! Calls that end every way a real peer ends them — BYE from either side, CANCEL at any
//! moment, a lost ACK, a caller that vanishes, a re-INVITE in the IVR, a meeting joined
//! and left — written from plain SIP text so that they share no code with the bridge
//! they test. A test places hundreds of them and then checks that the bridge gave back
//! everything each one held.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::uac::header;

/// How a [`place`]d call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Answered, talks for this long, hangs up with BYE.
    CallerBye(Duration),
    /// Answered, then sends no media but stays on the line: the bridge's media timeout
    /// hangs up, and the caller answers its BYE.
    BridgeBye,
    /// CANCEL this long after the INVITE: before the answer (487) or crossing it (the
    /// 200 is ACKed and the call hung up).
    Cancel(Duration),
    /// Never ACKs the 200 but sends its media; answers the BYE that comes when the
    /// bridge gives up on the ACK.
    NoAck,
    /// ACKs, then is gone: no SIP, no RTP, its socket closed.
    Vanish,
    /// Puts the call on hold and takes it off again while in the IVR, then hangs up.
    ReinviteInIvr,
    /// Keys conference 123456789 as a participant (RFC 4733), stays a moment, hangs up.
    JoinThenBye,
}

/// What happened to a call, for the test's tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The final status of the INVITE (0: none came).
    pub status: u16,
    /// Whether the bridge sent a BYE (and with what Reason).
    pub bridge_bye: Option<String>,
}

/// The SDP offer's media lines.
const OFFER: &str = "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
     a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";
const HOLD: &str = "a=sendonly\r\n";
/// How long any one answer may take before the call is given up as broken.
const ANSWER_LIMIT: Duration = Duration::from_secs(15);
/// How long a caller waits for the bridge to hang up (the media timeout, or no ACK).
const BRIDGE_LIMIT: Duration = Duration::from_secs(60);

/// Places one call to `number` at `bridge` from `local_ip` and ends it as `ending`
/// says. `name` makes its Call-ID unique. An `Err` says what went wrong.
pub async fn place(
    bridge: SocketAddr,
    local_ip: IpAddr,
    number: &str,
    name: &str,
    ending: Ending,
) -> Result<Ended, String> {
    let mut leg = Leg::open(bridge, local_ip, name).await?;
    leg.send_invite(number).await;
    let started = Instant::now();
    if let Ending::Cancel(after) = ending {
        return leg.cancel_after(started + after).await;
    }
    let status = leg.final_answer().await?;
    if status >= 300 {
        return Ok(Ended {
            status,
            bridge_bye: None,
        });
    }
    if ending == Ending::NoAck {
        // Its media flows (only the ACK was lost) until the bridge gives up on the ACK.
        leg.talk(BRIDGE_LIMIT).await;
        let bye = leg.await_bye(Duration::ZERO).await?;
        return Ok(Ended {
            status,
            bridge_bye: Some(bye),
        });
    }
    leg.ack(1).await;
    match ending {
        Ending::CallerBye(talk) => {
            leg.talk(talk).await;
            leg.bye().await?;
        }
        Ending::BridgeBye => {
            leg.await_bye(BRIDGE_LIMIT).await?;
        }
        Ending::Vanish => {}
        Ending::ReinviteInIvr => {
            leg.talk(Duration::from_millis(200)).await;
            for hold in [true, false] {
                let answered = leg.reinvite(hold).await?;
                if answered != 200 {
                    return Err(format!("re-INVITE (hold {hold}) answered {answered}"));
                }
                leg.talk(Duration::from_millis(200)).await;
            }
            leg.bye().await?;
        }
        Ending::JoinThenBye => {
            leg.talk(Duration::from_millis(500)).await;
            leg.keys("123456789#").await;
            leg.talk(Duration::from_millis(700)).await;
            leg.keys("#").await;
            leg.talk(Duration::from_millis(1000)).await;
            leg.bye().await?;
        }
        Ending::Cancel(_) | Ending::NoAck => unreachable!("handled above"),
    }
    Ok(Ended {
        status,
        bridge_bye: leg.bridge_bye,
    })
}

/// One call's sockets and dialog, as plain text.
struct Leg {
    sock: UdpSocket,
    rtp: UdpSocket,
    bridge: SocketAddr,
    call_id: String,
    from_tag: String,
    to_tag: String,
    cseq: u32,
    /// Where the bridge wants our RTP (from its answer).
    media: Option<SocketAddr>,
    /// The INVITE as sent, for the CANCEL.
    invite_uri: String,
    rtp_seq: u16,
    rtp_ts: u32,
    /// The Reason of the bridge's BYE, once it hung up.
    bridge_bye: Option<String>,
}

impl Leg {
    async fn open(bridge: SocketAddr, local_ip: IpAddr, name: &str) -> Result<Leg, String> {
        let sock = UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .await
            .map_err(|e| format!("bind SIP: {e}"))?;
        let rtp = UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .await
            .map_err(|e| format!("bind RTP: {e}"))?;
        Ok(Leg {
            sock,
            rtp,
            bridge,
            call_id: format!("churn-{}-{name}", std::process::id()),
            from_tag: format!("f{name}"),
            to_tag: String::new(),
            cseq: 1,
            media: None,
            invite_uri: String::new(),
            rtp_seq: 1,
            rtp_ts: 0,
            bridge_bye: None,
        })
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().expect("local address")
    }

    fn sdp(&self, version: u32, extra: &str) -> String {
        let ip = self.local().ip();
        let port = self.rtp.local_addr().expect("RTP address").port();
        format!(
            "v=0\r\no=churn 1 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{}{extra}",
            OFFER.replace("{port}", &port.to_string())
        )
    }

    async fn send_invite(&mut self, number: &str) {
        let local = self.local();
        self.invite_uri = format!("sip:{number}@{}", self.bridge);
        let sdp = self.sdp(1, "");
        let tail = format!(
            "Contact: <sip:caller@{local}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        self.in_invite_transaction("INVITE", false, &tail).await;
    }

    /// A request of the INVITE's own transaction (its branch): the INVITE, its CANCEL,
    /// the ACK of a failure (with the To tag of the answer).
    async fn in_invite_transaction(&self, method: &str, to_tag: bool, tail: &str) {
        let local = self.local();
        let tag = if to_tag {
            format!(";tag={}", self.to_tag)
        } else {
            String::new()
        };
        let msg = format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{id}-inv;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:+15550001111@{ip}>;tag={from}\r\n\
             To: <{uri}>{tag}\r\n\
             Call-ID: {id}\r\n\
             CSeq: 1 {method}\r\n\
             {tail}",
            uri = self.invite_uri,
            ip = local.ip(),
            id = self.call_id,
            from = self.from_tag,
        );
        self.send(&msg).await;
    }

    async fn send(&self, text: &str) {
        let _ = self.sock.send_to(text.as_bytes(), self.bridge).await;
    }

    /// The next SIP message within `within`.
    async fn recv(&mut self, within: Duration) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(within, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Waits for the INVITE's final answer (200 is remembered with its To tag and
    /// media address).
    async fn final_answer(&mut self) -> Result<u16, String> {
        let end = Instant::now() + ANSWER_LIMIT;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Some(text) = self.recv(left).await else {
                break;
            };
            let status = status_of(&text);
            let invite = header(&text, "CSeq").is_some_and(|c| c.ends_with("INVITE"));
            if status >= 200 && invite {
                self.learn_answer(&text, status);
                return Ok(status);
            }
        }
        Err("no final answer to the INVITE".into())
    }

    fn learn_answer(&mut self, text: &str, status: u16) {
        if let Some(tag) = header(text, "To").and_then(|to| to.split(";tag=").nth(1)) {
            self.to_tag = tag.split(';').next().unwrap_or(tag).trim().to_string();
        }
        if status < 300 {
            self.media = media_address(text);
        }
    }

    /// Sends CANCEL at `at`; the 487 is ACKed, a 200 that crossed it is ACKed and BYEd.
    async fn cancel_after(&mut self, at: Instant) -> Result<Ended, String> {
        // Whatever comes before the CANCEL is due is only provisional, or the answer.
        while let Some(left) = at.checked_duration_since(Instant::now()) {
            let Some(text) = self.recv(left).await else {
                break;
            };
            let status = status_of(&text);
            if status >= 200 {
                self.learn_answer(&text, status);
                return self.after_crossing(status).await;
            }
        }
        self.in_invite_transaction("CANCEL", false, "Content-Length: 0\r\n\r\n")
            .await;
        let status = self.final_answer().await?;
        self.after_crossing(status).await
    }

    /// After the INVITE's final answer in a CANCEL race.
    async fn after_crossing(&mut self, status: u16) -> Result<Ended, String> {
        if status >= 300 {
            // The INVITE's own ACK for a failure (same branch, §17.1.1.3).
            self.ack_failure().await;
            return Ok(Ended {
                status,
                bridge_bye: None,
            });
        }
        self.ack(1).await;
        self.bye().await?;
        Ok(Ended {
            status,
            bridge_bye: self.bridge_bye.take(),
        })
    }

    async fn ack_failure(&self) {
        self.in_invite_transaction("ACK", true, "Content-Length: 0\r\n\r\n")
            .await;
    }

    /// An in-dialog request; `tail` is the headers after CSeq, blank line and body.
    async fn request(&self, method: &str, cseq: u32, branch: &str, tail: &str) {
        let local = self.local();
        let msg = format!(
            "{method} sip:{bridge} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:+15550001111@{ip}>;tag={from}\r\n\
             To: <{uri}>;tag={to}\r\n\
             Call-ID: {id}\r\n\
             CSeq: {cseq} {method}\r\n\
             {tail}",
            bridge = self.bridge,
            uri = self.invite_uri,
            ip = local.ip(),
            from = self.from_tag,
            to = self.to_tag,
            id = self.call_id,
        );
        self.send(&msg).await;
    }

    async fn ack(&self, cseq: u32) {
        let branch = format!("z9hG4bK{}-ack{cseq}", self.call_id);
        self.request("ACK", cseq, &branch, "Content-Length: 0\r\n\r\n")
            .await;
    }

    /// Sends BYE, unless the bridge hung up first (or its BYE crosses ours).
    async fn bye(&mut self) -> Result<(), String> {
        if self.bridge_bye.is_some() {
            return Ok(());
        }
        self.cseq += 1;
        let cseq = self.cseq;
        let branch = format!("z9hG4bK{}-bye{cseq}", self.call_id);
        self.request("BYE", cseq, &branch, "Content-Length: 0\r\n\r\n")
            .await;
        let end = Instant::now() + ANSWER_LIMIT;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Some(text) = self.recv(left).await else {
                break;
            };
            if text.starts_with("BYE ") {
                self.answer_bye(&text).await;
                continue;
            }
            let ours = header(&text, "CSeq").is_some_and(|c| c == format!("{cseq} BYE"));
            if ours && status_of(&text) >= 200 {
                return Ok(());
            }
        }
        Err("no answer to our BYE".into())
    }

    /// Waits for the bridge's BYE, answers it and returns its Reason. Anything else the
    /// bridge sends meanwhile (200 retransmissions, a refresh) is answered or skipped.
    async fn await_bye(&mut self, within: Duration) -> Result<String, String> {
        let end = Instant::now() + within;
        loop {
            if let Some(reason) = &self.bridge_bye {
                return Ok(reason.clone());
            }
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                break;
            };
            let Some(text) = self.recv(left).await else {
                break;
            };
            if text.starts_with("BYE ") {
                self.answer_bye(&text).await;
                continue;
            }
            if text.starts_with("INVITE ") {
                self.respond(&text, 200).await;
            }
        }
        Err("the bridge never hung up".into())
    }

    /// The bridge hung up: 200, and its Reason kept.
    async fn answer_bye(&mut self, bye: &str) {
        self.respond(bye, 200).await;
        self.bridge_bye = Some(header(bye, "Reason").unwrap_or_default().to_string());
    }

    /// Answers a request from the bridge with `status` (no body).
    async fn respond(&self, request: &str, status: u16) {
        let mut msg = format!("SIP/2.0 {status} OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for line in request.lines().filter(|l| {
                l.split_once(':')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            }) {
                msg.push_str(line.trim_end());
                msg.push_str("\r\n");
            }
        }
        msg.push_str("Content-Length: 0\r\n\r\n");
        self.send(&msg).await;
    }

    /// Sends a re-INVITE putting the call on hold (or off it), ACKs its answer.
    async fn reinvite(&mut self, hold: bool) -> Result<u16, String> {
        self.cseq += 1;
        let cseq = self.cseq;
        let sdp = self.sdp(cseq, if hold { HOLD } else { "" });
        let branch = format!("z9hG4bK{}-reinv{cseq}", self.call_id);
        let local = self.local();
        let tail = format!(
            "Contact: <sip:caller@{local}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        self.request("INVITE", cseq, &branch, &tail).await;
        let end = Instant::now() + ANSWER_LIMIT;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Some(text) = self.recv(left).await else {
                break;
            };
            let ours = header(&text, "CSeq").is_some_and(|c| c == format!("{cseq} INVITE"));
            let status = status_of(&text);
            if ours && status >= 200 {
                if status < 300 {
                    self.ack(cseq).await;
                }
                return Ok(status);
            }
        }
        Err("no answer to the re-INVITE".into())
    }

    /// Sends PCMU silence every 20 ms for `duration`, answering what the bridge asks;
    /// stops when the bridge hangs up.
    async fn talk(&mut self, duration: Duration) {
        let end = Instant::now() + duration;
        let mut payload = [0u8; 12 + 160];
        while Instant::now() < end && self.bridge_bye.is_none() {
            self.rtp_packet(&mut payload, 0, false);
            payload[12..].fill(0xff);
            self.send_rtp(&payload).await;
            match self.recv(Duration::from_millis(20)).await {
                Some(text) if text.starts_with("INVITE ") => self.respond(&text, 200).await,
                Some(text) if text.starts_with("BYE ") => self.answer_bye(&text).await,
                _ => {}
            }
        }
    }

    /// Keys `digits` as RFC 4733 events: three packets each (the last with E), then
    /// a gap of silence.
    async fn keys(&mut self, digits: &str) {
        for digit in digits.chars() {
            if self.bridge_bye.is_some() {
                return;
            }
            let event = match digit {
                '0'..='9' => digit as u8 - b'0',
                '*' => 10,
                '#' => 11,
                _ => continue,
            };
            let ts = self.rtp_ts;
            for i in 0..3u16 {
                let mut packet = [0u8; 16];
                self.rtp_packet(&mut packet, 101, i == 0);
                // Every packet of one event carries its start timestamp.
                packet[4..8].copy_from_slice(&ts.to_be_bytes());
                let end = if i == 2 { 0x80 } else { 0 };
                let duration = 400 * (i + 1);
                packet[12..16].copy_from_slice(&[
                    event,
                    end | 10,
                    (duration >> 8) as u8,
                    duration as u8,
                ]);
                self.send_rtp(&packet).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.rtp_ts = ts.wrapping_add(1200);
            self.talk(Duration::from_millis(100)).await;
        }
    }

    /// Writes an RTP header for the next packet into `packet`.
    fn rtp_packet(&mut self, packet: &mut [u8], pt: u8, marker: bool) {
        packet[0] = 0x80;
        packet[1] = pt | if marker { 0x80 } else { 0 };
        packet[2..4].copy_from_slice(&self.rtp_seq.to_be_bytes());
        packet[4..8].copy_from_slice(&self.rtp_ts.to_be_bytes());
        packet[8..12].copy_from_slice(&0x5eed_0001u32.to_be_bytes());
        self.rtp_seq = self.rtp_seq.wrapping_add(1);
        if pt == 0 {
            self.rtp_ts = self.rtp_ts.wrapping_add(160);
        }
    }

    async fn send_rtp(&self, packet: &[u8]) {
        if let Some(to) = self.media {
            let _ = self.rtp.send_to(packet, to).await;
        }
    }
}

/// The status code of a response; 0 for a request.
fn status_of(text: &str) -> u16 {
    if !text.starts_with("SIP/2.0 ") {
        return 0;
    }
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The `c=` address and `m=audio` port of the SDP in `text`.
fn media_address(text: &str) -> Option<SocketAddr> {
    let ip: IpAddr = text
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim()
        .parse()
        .ok()?;
    let port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port))
}
