//! sbc-sim calls against a tiny in-test UAS on 127.0.0.1: a raw UDP socket that
//! answers INVITE (100, then 200 with SDP, or a refusal, or a digest challenge),
//! takes ACK, INFO and BYE, can send its own re-INVITE and BYE, and an RTP socket that
//! records what the caller sends and plays a 1000 Hz tone back. No bridge involved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dialbridge_media::{Codec, RtpView};
use dialbridge_sip::auth::{Attempt, AuthPolicy, Authenticator, MemoryAuthState, Verdict};
use sbc_sim::audio_check::{self, Expectation};
use sbc_sim::call::{self, CallConfig, Quiet};
use sbc_sim::dtmf::DtmfMode;
use sbc_sim::rtp::Source;
use sbc_sim::script::Script;
use sbc_sim::ua::{Signaling, Transport};
use sbc_sim::{EndedBy, Expect};
use tokio::net::UdpSocket;

/// What the fake UAS does with an INVITE.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    Answer,
    Refuse(u16),
    Challenge,
    /// Answer, then after the ACK send a re-INVITE at once and a BYE after this long.
    ReinviteThenBye(Duration),
    /// Ring (180) and never answer; a CANCEL gets 200 and the INVITE 487.
    RingForever,
}

#[derive(Debug, Default)]
struct Log {
    /// Request methods received, in order.
    requests: Vec<String>,
    /// Source of the first INVITE.
    invite_from: Option<SocketAddr>,
    /// The first INVITE, as received.
    invite: Option<String>,
    /// Source of the first RTP packet.
    rtp_from: Option<SocketAddr>,
    /// Authorization verdict of the second INVITE (Challenge).
    authenticated: Option<bool>,
    /// Bodies of INFO requests.
    infos: Vec<String>,
    /// Status codes of responses to our own requests.
    responses: Vec<String>,
    /// Telephone-event packets: (event, end, duration, timestamp, marker, sequence).
    events: Vec<(u8, bool, u16, u32, bool, u16)>,
    /// Audio packets and the audio decoded from them.
    audio_packets: u64,
    heard: Vec<i16>,
}

struct Uas {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
}

impl Uas {
    async fn start(behaviour: Behaviour) -> Uas {
        Uas::start_on("127.0.0.1".parse().unwrap(), behaviour).await
    }

    /// A UAS listening on `ip` (`::1` for IPv6).
    async fn start_on(ip: IpAddr, behaviour: Behaviour) -> Uas {
        let sip = Arc::new(UdpSocket::bind((ip, 0)).await.unwrap());
        let rtp = Arc::new(UdpSocket::bind((ip, 0)).await.unwrap());
        let addr = sip.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let caller_rtp = Arc::new(Mutex::new(Vec::<SocketAddr>::new()));
        tokio::spawn(sip_loop(
            sip,
            rtp.local_addr().unwrap().port(),
            behaviour,
            log.clone(),
            caller_rtp.clone(),
        ));
        tokio::spawn(rtp_loop(rtp, log.clone(), caller_rtp));
        Uas { addr, log }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

fn respond(req: &str, status: &str, to_tag: Option<&str>, extra: &str, body: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in req.split("\r\n").take_while(|l| !l.is_empty()).skip(1) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => out.push_str(&format!("{line}\r\n")),
            "to" => match to_tag {
                Some(tag) if !line.contains("tag=") => {
                    out.push_str(&format!("{line};tag={tag}\r\n"))
                }
                _ => out.push_str(&format!("{line}\r\n")),
            },
            _ => {}
        }
    }
    out.push_str(extra);
    if !body.is_empty() {
        out.push_str("Content-Type: application/sdp\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out
}

fn sdp(ip: IpAddr, port: u16, version: u32) -> String {
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    format!(
        "v=0\r\no=uas 1 {version} IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\na=ptime:20\r\n"
    )
}

/// The caller's RTP address from its SDP offer.
fn offer_addr(sdp: &str) -> Option<SocketAddr> {
    let ip: IpAddr = sdp
        .lines()
        .find_map(|l| {
            l.strip_prefix("c=IN IP4 ")
                .or_else(|| l.strip_prefix("c=IN IP6 "))
        })?
        .trim()
        .parse()
        .ok()?;
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split(' ')
        .next()?;
    Some(SocketAddr::new(ip, port.parse().ok()?))
}

/// A request from the UAS to the caller, inside the dialog the INVITE made.
fn uas_request(method: &str, invite: &str, uas: SocketAddr, cseq: u32, body: &str) -> String {
    let from = header(invite, "From").unwrap();
    let to = header(invite, "To").unwrap();
    let call_id = header(invite, "Call-ID").unwrap();
    let contact = header(invite, "Contact").unwrap();
    let target = contact.trim_start_matches('<').split('>').next().unwrap();
    let extra = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {uas};branch=z9hG4bKuas{cseq}\r\nMax-Forwards: 70\r\n\
         From: {to};tag=uastag\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:uas@{uas}>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn sip_loop(
    sip: Arc<UdpSocket>,
    rtp_port: u16,
    behaviour: Behaviour,
    log: Arc<Mutex<Log>>,
    caller_rtp: Arc<Mutex<Vec<SocketAddr>>>,
) {
    let me = sip.local_addr().unwrap();
    let mut auth = Authenticator::new("dialbridge", b"test-secret", Duration::from_secs(60));
    auth.add_password("alice", "alice-secret", false);
    let mut auth_state = MemoryAuthState::new(AuthPolicy::default(), None);
    let mut buf = vec![0u8; 65536];
    let mut invite_text = String::new();
    let mut acked = false;
    loop {
        let (n, from) = sip.recv_from(&mut buf).await.unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        if msg.starts_with("SIP/2.0") {
            let code = msg.split(' ').nth(1).unwrap_or("").to_owned();
            let cseq = header(&msg, "CSeq").unwrap_or("").to_owned();
            log.lock()
                .unwrap()
                .responses
                .push(format!("{code} {}", cseq.split(' ').nth(1).unwrap_or("")));
            if code == "200" && cseq.ends_with("INVITE") {
                // The ACK takes the re-INVITE's CSeq number (RFC 3261 §13.2.2.4).
                let ack = uas_request("ACK", &invite_text, me, 1, "");
                sip.send_to(ack.as_bytes(), from).await.unwrap();
            }
            continue;
        }
        let method = msg.split(' ').next().unwrap_or("").to_owned();
        log.lock().unwrap().requests.push(method.clone());
        let reply = match method.as_str() {
            "INVITE" => {
                {
                    let mut log = log.lock().unwrap();
                    log.invite_from.get_or_insert(from);
                    log.invite.get_or_insert_with(|| msg.clone());
                }
                acked = false;
                caller_rtp.lock().unwrap().extend(offer_addr(body(&msg)));
                match behaviour {
                    Behaviour::RingForever => {
                        invite_text = msg.clone();
                        respond(&msg, "180 Ringing", Some("uastag"), "", "")
                    }
                    Behaviour::Refuse(code) => {
                        respond(&msg, &format!("{code} Refused"), Some("uastag"), "", "")
                    }
                    Behaviour::Challenge if header(&msg, "Authorization").is_none() => {
                        let challenge = auth.challenge(SystemTime::now(), false, false);
                        respond(
                            &msg,
                            "401 Unauthorized",
                            Some("uastag"),
                            &format!("WWW-Authenticate: {challenge}\r\n"),
                            "",
                        )
                    }
                    _ => {
                        if let Some(value) = header(&msg, "Authorization") {
                            let ruri = msg.split(' ').nth(1).unwrap_or("");
                            let attempt = Attempt {
                                method: "INVITE",
                                request_uri: ruri,
                                authorization: value,
                                source: from.ip(),
                            };
                            let ok = matches!(
                                auth.verify(&mut auth_state, &attempt, SystemTime::now()),
                                Verdict::Authenticated { .. }
                            );
                            log.lock().unwrap().authenticated = Some(ok);
                        }
                        invite_text = msg.clone();
                        let trying = respond(&msg, "100 Trying", None, "", "");
                        sip.send_to(trying.as_bytes(), from).await.unwrap();
                        respond(
                            &msg,
                            "200 OK",
                            Some("uastag"),
                            &format!("Contact: <sip:uas@{me}>\r\n"),
                            &sdp(me.ip(), rtp_port, 1),
                        )
                    }
                }
            }
            "ACK" => {
                if let (Behaviour::ReinviteThenBye(after), false) = (behaviour, acked) {
                    acked = true;
                    let reinvite =
                        uas_request("INVITE", &invite_text, me, 1, &sdp(me.ip(), rtp_port, 2));
                    sip.send_to(reinvite.as_bytes(), from).await.unwrap();
                    let sip = sip.clone();
                    let bye = uas_request("BYE", &invite_text, me, 2, "");
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        sip.send_to(bye.as_bytes(), from).await.unwrap();
                    });
                }
                continue;
            }
            "CANCEL" => {
                let ok = respond(&msg, "200 OK", None, "", "");
                sip.send_to(ok.as_bytes(), from).await.unwrap();
                respond(
                    &invite_text,
                    "487 Request Terminated",
                    Some("uastag"),
                    "",
                    "",
                )
            }
            "INFO" => {
                log.lock().unwrap().infos.push(body(&msg).to_owned());
                respond(&msg, "200 OK", None, "", "")
            }
            _ => respond(&msg, "200 OK", None, "", ""),
        };
        sip.send_to(reply.as_bytes(), from).await.unwrap();
    }
}

/// Records what the callers send; sends a 1000 Hz PCMU tone to every caller's RTP
/// address every 20 ms.
async fn rtp_loop(rtp: Arc<UdpSocket>, log: Arc<Mutex<Log>>, caller: Arc<Mutex<Vec<SocketAddr>>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut buf = [0u8; 1500];
    let mut n: u32 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let callers = caller.lock().unwrap().clone();
                let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
                packet[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                packet[4..8].copy_from_slice(&(n * 160).to_be_bytes());
                for i in 0..160u32 {
                    let t = f64::from(n * 160 + i) / 8000.0;
                    let s = (6000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16;
                    packet.push(Codec::Pcmu.encode(s));
                }
                n += 1;
                for to in callers {
                    let _ = rtp.send_to(&packet, to).await;
                }
            }
            r = rtp.recv_from(&mut buf) => {
                let Ok((len, from)) = r else { continue };
                let Ok(view) = RtpView::parse(&buf[..len]) else { continue };
                let mut log = log.lock().unwrap();
                log.rtp_from.get_or_insert(from);
                if view.payload_type == 101 {
                    let p = view.payload();
                    log.events.push((p[0], p[1] & 0x80 != 0, u16::from_be_bytes([p[2], p[3]]), view.timestamp, view.marker, view.sequence));
                } else if view.payload_type == 0 {
                    log.audio_packets += 1;
                    let start = log.heard.len();
                    log.heard.resize(start + view.payload().len(), 0);
                    Codec::Pcmu.decode_frame(view.payload(), &mut log.heard[start..]);
                }
            }
        }
    }
}

fn config(to: &str, script: &str) -> CallConfig {
    CallConfig {
        to: to.into(),
        from_user: "+14155550100".into(),
        from_host: None,
        credentials: None,
        codec: sbc_sim::CallCodec::Pcmu,
        source: Source::Prompt(Arc::new(dialbridge_media::Tone::sine(440.0, 1000, 8000))),
        sdp_address: None,
        dtmf: DtmfMode::Rfc4733,
        script: Script::parse(script).unwrap(),
        hold: Duration::ZERO,
        setup_timeout: Duration::from_secs(5),
        record_limit: 8000 * 30,
        expect: Expect::default(),
    }
}

async fn signaling(uas: &Uas, from_ip: &str) -> Signaling {
    Signaling::connect(Transport::Udp, from_ip.parse().unwrap(), uas.addr, 4)
        .await
        .unwrap()
}

#[tokio::test]
async fn answered_call_streams_keys_hears_and_hangs_up() {
    let uas = Uas::start(Behaviour::Answer).await;
    let sig = signaling(&uas, "127.0.0.20").await;
    let mut cfg = config("+33170000100", "wait 600ms, keys 1#, wait 700ms");
    cfg.expect.audio = vec![Expectation::Tone(1000.0), Expectation::Audio];
    let outcome = call::run(&sig, &cfg, &Quiet).await;
    assert!(outcome.passed(), "{:?}", outcome.failures);
    assert_eq!(outcome.status, Some(200));
    assert_eq!(outcome.ended_by, EndedBy::Caller);
    // Well under T1: the first INVITE was not lost (a fresh tokio socket is not yet
    // known writable, and `try_send_to` used to drop it).
    assert!(outcome.setup.unwrap() < Duration::from_millis(400));
    assert!(outcome.media.received > 30, "{:?}", outcome.media);
    // Let the BYE's 200 and the last packets land.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = uas.log();
    assert_eq!(log.requests, vec!["INVITE", "ACK", "BYE"]);
    assert_eq!(
        log.invite_from.unwrap().ip().to_string(),
        "127.0.0.20",
        "bound to --from-ip"
    );
    // RFC 4733: per key, a marked start, continuations, three ends, one timestamp.
    let keys: Vec<u8> = log.events.iter().filter(|e| e.4).map(|e| e.0).collect();
    assert_eq!(keys, vec![1, 11]);
    for key in [1u8, 11] {
        let packets: Vec<_> = log.events.iter().filter(|e| e.0 == key).collect();
        assert_eq!(packets.len(), 7, "{packets:?}");
        assert!(
            packets.iter().all(|e| e.3 == packets[0].3),
            "same timestamp"
        );
        assert_eq!(
            packets.iter().filter(|e| e.1).count(),
            3,
            "three end packets"
        );
        assert!(packets.iter().filter(|e| e.1).all(|e| e.2 == 800));
        assert!(
            packets.windows(2).all(|w| w[1].5 == w[0].5.wrapping_add(1)),
            "consecutive sequence numbers"
        );
    }
    // The caller's tone arrived.
    assert!(log.audio_packets > 30);
    assert!(audio_check::analyse(&log.heard, Some(440.0)).tone_run >= 5);
}

#[tokio::test]
async fn sdp_address_is_advertised_while_rtp_goes_from_the_real_socket() {
    // A caller behind NAT: its SDP gives 127.0.0.99 (where nothing listens), its RTP
    // comes from its socket on 127.0.0.20.
    let uas = Uas::start(Behaviour::Answer).await;
    let sig = signaling(&uas, "127.0.0.20").await;
    let mut cfg = config("+33170000100", "wait 600ms");
    cfg.sdp_address = Some("127.0.0.99".parse().unwrap());
    let outcome = call::run(&sig, &cfg, &Quiet).await;
    assert!(outcome.passed(), "{:?}", outcome.failures);
    assert!(outcome.media.sent > 20, "{:?}", outcome.media);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = uas.log();
    let offer = body(log.invite.as_deref().unwrap());
    assert!(offer.contains("c=IN IP4 127.0.0.99\r\n"), "{offer}");
    assert!(offer.contains(" IN IP4 127.0.0.99\r\n"), "o= too: {offer}");
    assert_eq!(log.rtp_from.unwrap().ip().to_string(), "127.0.0.20");
    assert!(log.audio_packets > 20);
}

#[tokio::test]
async fn ipv6_call_on_loopback_signals_and_streams_over_ipv6() {
    // Needs dialbridge-sip to read IPv6 hosts in URIs and Via (`sip:x@[::1]:5060`):
    // sbc-sim builds its requests as text and reads them back with that parser (issue
    // #11: rsip 0.4 refuses them, "bad Request-URI").
    let uas = Uas::start_on("::1".parse().unwrap(), Behaviour::Answer).await;
    let sig = signaling(&uas, "::1").await;
    let mut cfg = config("+33170000100", "wait 600ms");
    cfg.expect.audio = vec![Expectation::Tone(1000.0)];
    let outcome = call::run(&sig, &cfg, &Quiet).await;
    assert!(outcome.passed(), "{:?}", outcome.failures);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = uas.log();
    let invite = log.invite.as_deref().unwrap();
    let uas_addr = uas.addr.to_string();
    assert!(
        invite.starts_with(&format!("INVITE sip:+33170000100@{uas_addr} SIP/2.0\r\n")),
        "{invite}"
    );
    assert!(invite.contains("Via: SIP/2.0/UDP [::1]:"), "{invite}");
    assert!(
        invite.contains("From: <sip:+14155550100@[::1]>;tag="),
        "{invite}"
    );
    assert!(
        invite.contains("Contact: <sip:+14155550100@[::1]:"),
        "{invite}"
    );
    assert!(body(invite).contains("c=IN IP6 ::1\r\n"), "{invite}");
    assert_eq!(log.rtp_from.unwrap().ip().to_string(), "::1");
    assert!(log.audio_packets > 20);
}

#[tokio::test]
async fn an_answer_without_the_offered_codec_is_hung_up() {
    // We offer G.722 alone; the fake UAS answers PCMU whatever it is offered.
    let uas = Uas::start(Behaviour::Answer).await;
    let sig = signaling(&uas, "127.0.0.20").await;
    let mut cfg = config("+33170000100", "wait 1s");
    cfg.codec = sbc_sim::CallCodec::G722;
    let outcome = call::run(&sig, &cfg, &Quiet).await;
    assert_eq!(outcome.status, Some(200));
    assert!(
        outcome.failures.iter().any(|f| f.contains("SDP answer")),
        "{:?}",
        outcome.failures
    );
    assert_eq!(outcome.codec, None);
    assert_eq!(outcome.media.sent, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(uas.log().requests, vec!["INVITE", "ACK", "BYE"]);
}

#[tokio::test]
async fn refused_call_reports_the_status() {
    let uas = Uas::start(Behaviour::Refuse(404)).await;
    let sig = signaling(&uas, "127.0.0.1").await;
    let outcome = call::run(&sig, &config("+14255550999", ""), &Quiet).await;
    assert_eq!(outcome.status, Some(404));
    assert_eq!(outcome.ended_by, EndedBy::Refused);
    assert!(!outcome.passed());
    assert!(
        outcome.failures[0].contains("expected 200, got 404"),
        "{:?}",
        outcome.failures
    );

    let mut cfg = config("+14255550999", "");
    cfg.expect.status = 404;
    let outcome = call::run(&sig, &cfg, &Quiet).await;
    assert!(outcome.passed(), "{:?}", outcome.failures);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Each refusal is ACKed by the INVITE client transaction.
    assert_eq!(uas.log().requests, vec!["INVITE", "ACK", "INVITE", "ACK"]);
}

#[tokio::test]
async fn softphone_answers_the_digest_challenge() {
    let uas = Uas::start(Behaviour::Challenge).await;
    let sig = signaling(&uas, "127.0.0.1").await;
    let mut cfg = config("+33170000100", "wait 200ms");
    cfg.from_user = "alice".into();
    cfg.from_host = Some("dialbridge".into());
    cfg.credentials = Some(("alice".into(), "alice-secret".into()));
    let outcome = call::run(&sig, &cfg, &Quiet).await;
    assert!(outcome.passed(), "{:?}", outcome.failures);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let log = uas.log();
    assert_eq!(log.requests, vec!["INVITE", "ACK", "INVITE", "ACK", "BYE"]);
    assert_eq!(log.authenticated, Some(true));
}

#[tokio::test]
async fn reinvite_is_answered_and_bridge_bye_ends_the_call() {
    let uas = Uas::start(Behaviour::ReinviteThenBye(Duration::from_millis(400))).await;
    let sig = signaling(&uas, "127.0.0.1").await;
    let cfg = config("+33170000100", "wait 5s");
    let outcome = call::run(&sig, &cfg, &Quiet).await;
    assert_eq!(outcome.ended_by, EndedBy::Bridge);
    assert!(!outcome.passed(), "an unexpected BYE is a failure");
    assert!(outcome.connected.unwrap() < Duration::from_secs(2));

    let mut cfg = config("+33170000100", "wait 5s");
    cfg.expect.bridge_hangs_up = true;
    let outcome = call::run(&sig, &cfg, &Quiet).await;
    assert!(outcome.passed(), "{:?}", outcome.failures);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let log = uas.log();
    // Our 200 to the re-INVITE, then our 200 to the BYE, for both calls (the
    // transaction layer may add a 100 to each re-INVITE).
    let finals: Vec<&str> = log
        .responses
        .iter()
        .map(String::as_str)
        .filter(|r| !r.starts_with('1'))
        .collect();
    assert_eq!(
        finals,
        vec!["200 INVITE", "200 BYE", "200 INVITE", "200 BYE"]
    );
}

#[tokio::test]
async fn info_mode_keys_with_dtmf_relay() {
    let uas = Uas::start(Behaviour::Answer).await;
    let sig = signaling(&uas, "127.0.0.1").await;
    let mut cfg = config("+33170000100", "keys 12#, wait 100ms");
    cfg.dtmf = DtmfMode::Info;
    let outcome = call::run(&sig, &cfg, &Quiet).await;
    assert!(outcome.passed(), "{:?}", outcome.failures);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let log = uas.log();
    assert_eq!(
        log.infos,
        vec![
            "Signal=1\r\nDuration=100\r\n",
            "Signal=2\r\nDuration=100\r\n",
            "Signal=#\r\nDuration=100\r\n"
        ]
    );
    assert!(log.events.is_empty(), "no RFC 4733 in INFO mode");
    assert_eq!(
        log.requests,
        vec!["INVITE", "ACK", "INFO", "INFO", "INFO", "BYE"]
    );
}

#[tokio::test]
async fn load_places_every_call_and_reports_latency() {
    let uas = Uas::start(Behaviour::Answer).await;
    let sig = signaling(&uas, "127.0.0.1").await;
    let mut call = config("+33170000100", "wait 200ms, keys 1#");
    call.hold = Duration::from_millis(300);
    call.expect.audio = vec![Expectation::Audio];
    let config = sbc_sim::load::LoadConfig {
        calls: 8,
        rate: 40.0,
        max_in_flight: 4,
        time_limit: Duration::from_secs(20),
        call,
    };
    let report = sbc_sim::load::run(&sig, &config, None).await;
    let s = report.summary();
    assert_eq!(
        (s.attempted, s.answered, s.passed, s.not_started),
        (8, 8, 8, 0),
        "{}",
        report.text()
    );
    let setup = s.setup_latency.unwrap();
    assert_eq!(setup.count, 8);
    assert!(setup.p50_ms <= setup.p99_ms && setup.p99_ms <= setup.max_ms);
    assert_eq!((s.audio_checked, s.audio_passed), (8, 8));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = uas.log();
    assert_eq!(log.requests.iter().filter(|m| *m == "BYE").count(), 8);
    assert_eq!(
        log.events.iter().filter(|e| e.4).count(),
        16,
        "two keys per call"
    );
}

#[tokio::test]
async fn unanswered_call_is_cancelled_at_the_setup_timeout() {
    let uas = Uas::start(Behaviour::RingForever).await;
    let sig = signaling(&uas, "127.0.0.1").await;
    let mut cfg = config("+33170000100", "wait 1s");
    cfg.setup_timeout = Duration::from_millis(300);
    let outcome = call::run(&sig, &cfg, &Quiet).await;
    assert_eq!(outcome.status, Some(487));
    assert_eq!(outcome.ended_by, EndedBy::Timeout);
    assert!(outcome.setup.is_none());
    assert!(
        outcome
            .failures
            .iter()
            .any(|f| f.starts_with("no final response within")),
        "{:?}",
        outcome.failures
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(uas.log().requests, vec!["INVITE", "CANCEL", "ACK"]);
}

/// A minimal UAS over TCP: one connection, messages framed by Content-Length, INVITE
/// answered 200 (with SDP pointing at a socket that drops RTP), BYE answered 200.
async fn tcp_uas(listener: tokio::net::TcpListener, requests: Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut stream, _) = listener.accept().await.unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp_port = sink.local_addr().unwrap().port();
    let me = stream.local_addr().unwrap();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end + 4]).to_string();
            let length: usize = header(&head, "Content-Length").unwrap().parse().unwrap();
            if pending.len() < end + 4 + length {
                break;
            }
            let msg = String::from_utf8_lossy(&pending[..end + 4 + length]).to_string();
            pending.drain(..end + 4 + length);
            let method = msg.split(' ').next().unwrap().to_owned();
            requests.lock().unwrap().push(method.clone());
            let reply = match method.as_str() {
                "INVITE" => respond(
                    &msg,
                    "200 OK",
                    Some("uastag"),
                    &format!("Contact: <sip:uas@{me};transport=tcp>\r\n"),
                    &sdp(me.ip(), rtp_port, 1),
                ),
                "ACK" => continue,
                _ => respond(&msg, "200 OK", None, "", ""),
            };
            stream.write_all(reply.as_bytes()).await.unwrap();
        }
    }
}

#[tokio::test]
async fn tcp_carries_the_call_on_one_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(tcp_uas(listener, requests.clone()));
    let sig = Signaling::connect(Transport::Tcp, "127.0.0.1".parse().unwrap(), addr, 4)
        .await
        .unwrap();
    let mut cfg = config("+33170000100", "wait 200ms");
    // The sink never sends RTP; the call is too short for the no-RTP check.
    cfg.expect = Expect::default();
    let first = call::run(&sig, &cfg, &Quiet).await;
    let second = call::run(&sig, &cfg, &Quiet).await;
    assert!(first.passed(), "{:?}", first.failures);
    assert!(second.passed(), "{:?}", second.failures);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        *requests.lock().unwrap(),
        vec!["INVITE", "ACK", "BYE", "INVITE", "ACK", "BYE"],
        "both calls over the one accepted connection"
    );
}
