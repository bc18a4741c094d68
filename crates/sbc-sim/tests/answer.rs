//! The `sbc-sim answer` binary as the far end of a dial-out, called over loopback UDP by
//! a caller built here on the sip crate's calling side (`UacSession` on the transaction
//! layer, as the bridge's dial-outs will be) with RTP of its own: it rings and answers,
//! hears the caller's "prompt", keys 1 as an RFC 4733 event, talks its tone, checks the
//! tone it hears after keying, and hangs up; it refuses with 486, never answers and
//! takes the CANCEL, and answers OPTIONS with 200, 503 or nothing. Each run's JSON line
//! and exit status are what the tests read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialbridge_media::Codec;
use dialbridge_media::RtpView;
use dialbridge_media::rtp::{HEADER_LEN, RtpHeader};
use dialbridge_sip::dialog::{Caller, LocalAddress, SessionTimerConfig};
use dialbridge_sip::message;
use dialbridge_sip::message::uri::{NameAddr, Uri};
use dialbridge_sip::rsip::{self, Method, SipMessage};
use dialbridge_sip::sdp::LocalMedia;
use dialbridge_sip::session::{Output, SessionEnd, SessionEvent, UacSession};
use dialbridge_sip::transaction::{Event, LayerConfig, PeerAddr, TransactionLayer, TransportKind};
use sbc_sim::answer::{CallReport, EndedBy};
use sbc_sim::audio_check::{Expectation, analyse};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

const SBC_SIM: &str = env!("CARGO_BIN_EXE_sbc-sim");
/// The number the bridge dials out to.
const DIALLED: &str = "+14255557000";
/// Every run here ends well within this.
const LIMIT: Duration = Duration::from_secs(30);

/// `sbc-sim answer` running, listening at `addr`.
struct Answerer {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

/// How a run ended: its exit code, its JSON lines and its progress.
struct Ended {
    code: Option<i32>,
    lines: Vec<Value>,
    log: String,
}

impl Ended {
    /// The one call's report.
    fn report(&self) -> CallReport {
        assert_eq!(self.lines.len(), 1, "one call:\n{}", self.log);
        serde_json::from_value(self.lines[0].clone()).unwrap()
    }
}

impl Answerer {
    /// Starts `sbc-sim answer --listen 127.0.0.1:0 ARGS` and waits until it listens.
    async fn start(args: &[&str]) -> Answerer {
        let mut child = Command::new(SBC_SIM)
            .args(["answer", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = tokio::time::timeout(LIMIT, lines.next_line())
            .await
            .expect("sbc-sim answer says where it listens")
            .unwrap()
            .unwrap_or_default();
        let addr = first
            .split("listening on ")
            .nth(1)
            .unwrap_or_else(|| panic!("not a listening line: {first:?}"))
            .trim()
            .parse()
            .unwrap();
        // The rest of stderr, for failure messages.
        let stderr = Arc::new(Mutex::new(String::new()));
        let log = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Answerer {
            child,
            addr,
            stderr,
        }
    }

    /// Waits for the run to end.
    async fn ended(self) -> Ended {
        let Answerer { child, stderr, .. } = self;
        let out = tokio::time::timeout(LIMIT, child.wait_with_output())
            .await
            .expect("sbc-sim answer ends in time")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let lines = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        // The stderr reader may still be draining the last lines.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let log = format!("{}\n--- stdout ---\n{stdout}", stderr.lock().unwrap());
        Ended {
            code: out.status.code(),
            lines,
            log,
        }
    }
}

/// What the caller's RTP side saw and did.
#[derive(Debug, Default)]
struct Media {
    /// Telephone-events received: (event, end bit).
    events: Vec<(u8, bool)>,
    /// Audio received, decoded (8 kHz).
    heard: Vec<i16>,
}

/// What the caller saw of the call.
#[derive(Debug, Default)]
struct Seen {
    /// Statuses of the responses to our INVITE, in order.
    statuses: Vec<u16>,
    /// The session's end.
    end: Option<SessionEnd>,
    /// What the answerer's SDP answer settled: its RTP address, codec PT, event PT.
    media: Option<(SocketAddr, u8, Option<u8>)>,
}

/// What the caller does.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Talk a "prompt" (440 Hz, 1 s), then silence until keyed, then 700 Hz until
    /// the answerer hangs up.
    PromptThenTone,
    /// Cancel after this long.
    CancelAfter(Duration),
}

/// A call to `DIALLED` at `answerer`, from a socket on 127.0.0.1, on the sip crate's
/// `UacSession`; returns what was seen once the call is over.
async fn call(answerer: SocketAddr, script: Script) -> (Seen, Media) {
    let sip = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let local = sip.local_addr().unwrap();
    let uri = Uri::parse(&format!("sip:{DIALLED}@{answerer}")).unwrap();
    let from = NameAddr::parse("<sip:+14255550100@127.0.0.1>").unwrap();
    let to = NameAddr::parse(&format!("<sip:{DIALLED}@{answerer}>")).unwrap();
    let caller = Caller::new(
        from,
        to,
        uri,
        LocalAddress::new("dialbridge", local, rsip::Transport::Udp),
        "dialbridge",
    );
    let offer = LocalMedia::g711(
        "127.0.0.1".parse().unwrap(),
        rtp.local_addr().unwrap().port(),
        7,
    );
    let mut session = UacSession::new(caller, offer, SessionTimerConfig::default());
    let peer = PeerAddr {
        transport: TransportKind::Udp,
        addr: answerer,
        connection: None,
    };
    let mut layer = TransactionLayer::new(LayerConfig::default());
    layer
        .send_request(session.invite(Vec::new()), peer, Instant::now())
        .unwrap();
    let mut seen = Seen::default();
    let media = Arc::new(Mutex::new(Media::default()));
    let mut rtp_task = None;
    let mut cancel_at = match script {
        Script::CancelAfter(after) => Some(Instant::now() + after),
        Script::PromptThenTone => None,
    };
    let deadline = Instant::now() + LIMIT;
    let mut buf = vec![0u8; 65536];
    while seen.end.is_none() {
        let now = Instant::now();
        assert!(now < deadline, "the call did not end: {seen:?}");
        while let Some(event) = layer.poll_event() {
            match event {
                Event::Response { key, response } => {
                    let code = response.status_code.code();
                    if key.method() == Method::Invite {
                        // A retransmitted 200 (before our ACK arrived) counts once.
                        if seen.statuses.last() != Some(&code) {
                            seen.statuses.push(code);
                        }
                        session.handle_invite_response(&response, now);
                    } else {
                        session.handle_response(&response, now);
                    }
                }
                Event::NewRequest { key, request, .. } => {
                    if let Some(response) = session.handle_request(&request, now) {
                        layer.respond(&key, response, now).unwrap();
                    }
                }
                _ => {}
            }
        }
        while let Some(output) = session.poll_output() {
            match output {
                Output::Ack(ack) => layer.send_stateless(ack, peer),
                Output::Request(request) => {
                    layer.send_request(request, peer, now).unwrap();
                }
                Output::RespondInvite(_) => {}
                Output::Event(SessionEvent::Answered) => {
                    let n = session.negotiated().unwrap();
                    let remote = (n.remote_rtp, n.payload_type, n.telephone_event);
                    seen.media = Some(remote);
                    rtp_task = Some(tokio::spawn(talk(rtp.clone(), remote, media.clone())));
                }
                Output::Event(SessionEvent::Ended(end)) => seen.end = Some(end),
                Output::Event(_) => {}
            }
        }
        while let Some(t) = layer.poll_transmit() {
            sip.send_to(&message::encode(&t.message), t.peer.addr)
                .await
                .unwrap();
        }
        if seen.end.is_some() {
            break;
        }
        let wake = [layer.poll_timeout(), cancel_at, Some(deadline)]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        tokio::select! {
            received = sip.recv_from(&mut buf) => {
                let (len, from) = received.unwrap();
                match message::parse(&buf[..len]).unwrap() {
                    SipMessage::Request(r) => layer.handle_request(r, PeerAddr { addr: from, ..peer }, Instant::now()),
                    SipMessage::Response(r) => layer.handle_response(r, Instant::now()),
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                layer.handle_timeout(now);
                if cancel_at.take_if(|at| now >= *at).is_some() && seen.statuses.iter().all(|&s| s < 200) {
                    let cancel = session.hang_up("Q.850;cause=19", now).unwrap();
                    layer.send_request(cancel, peer, now).unwrap();
                }
            }
        }
    }
    // The answerer's BYE was answered; RTP stops.
    if let Some(task) = rtp_task {
        task.abort();
    }
    let media = std::mem::take(&mut *media.lock().unwrap());
    (seen, media)
}

/// The caller's RTP: a 1 s "prompt" at 440 Hz, silence until the answerer's key 1 ends,
/// then the meeting's "other participant" at 700 Hz; records what it hears.
async fn talk(
    socket: Arc<UdpSocket>,
    remote: (SocketAddr, u8, Option<u8>),
    media: Arc<Mutex<Media>>,
) {
    let (addr, pt, event_pt) = remote;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut buf = [0u8; 1500];
    let mut decoded = [0i16; 1500];
    let mut out = [0u8; HEADER_LEN + 160];
    let (mut n, mut joined_at) = (0u32, None::<u32>);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let joined = media.lock().unwrap().events.contains(&(1, true));
                if joined && joined_at.is_none() {
                    joined_at = Some(n);
                }
                let hz = match (n, joined_at) {
                    (0..50, _) => Some(440.0),
                    (_, Some(_)) => Some(700.0),
                    _ => None,
                };
                let frame: Vec<i16> = (0..160u32)
                    .map(|i| match hz {
                        Some(hz) => (6000.0 * (std::f64::consts::TAU * hz * f64::from(n * 160 + i) / 8000.0).sin()) as i16,
                        None => 0,
                    })
                    .collect();
                let header = RtpHeader { marker: n == 0, payload_type: pt, sequence: n as u16, timestamp: n * 160, ssrc: 0x5eed };
                header.write(&mut out).unwrap();
                Codec::Pcmu.encode_frame(&frame, &mut out[HEADER_LEN..]);
                let _ = socket.send_to(&out, addr).await;
                n += 1;
            }
            received = socket.recv_from(&mut buf) => {
                let Ok((len, _)) = received else { continue };
                let Ok(view) = RtpView::parse(&buf[..len]) else { continue };
                let mut media = media.lock().unwrap();
                if Some(view.payload_type) == event_pt {
                    let p = view.payload();
                    media.events.push((p[0], p[1] & 0x80 != 0));
                } else {
                    let got = Codec::Pcmu.decode_frame(view.payload(), &mut decoded);
                    media.heard.extend_from_slice(&decoded[..got]);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_keys_1_after_the_prompt_hears_the_meeting_and_hangs_up() {
    let answerer = Answerer::start(&[
        "--ring-ms",
        "300",
        "--key",
        "1",
        "--prompt-silence-ms",
        "400",
        "--tone-hz",
        "1000",
        "--expect-tone",
        "700",
        "--hold-ms",
        "1500",
        "--timeout",
        "20s",
    ])
    .await;
    let (seen, media) = call(answerer.addr, Script::PromptThenTone).await;
    let ended = answerer.ended().await;
    assert_eq!(ended.code, Some(0), "{}", ended.log);
    assert_eq!(seen.statuses, [100, 180, 200], "{}", ended.log);
    assert_eq!(
        seen.end,
        Some(SessionEnd::RemoteBye),
        "the answerer hung up"
    );
    let (_, pt, event_pt) = seen.media.unwrap();
    assert_eq!(
        (pt, event_pt),
        (0, Some(101)),
        "PCMU and telephone-event 101"
    );
    // The key: RFC 4733 event 1, its end packets too.
    assert!(media.events.contains(&(1, false)), "{:?}", media.events);
    assert!(media.events.contains(&(1, true)), "{:?}", media.events);
    assert!(
        media.events.iter().all(|&(e, _)| e == 1),
        "{:?}",
        media.events
    );
    // The answerer talks its 1000 Hz tone.
    let heard = analyse(&media.heard, Some(1000.0));
    assert!(Expectation::Tone(1000.0).check(&heard).is_ok(), "{heard:?}");

    let report = ended.report();
    assert_eq!(
        (report.to.as_str(), report.from.as_str()),
        (DIALLED, "+14255550100")
    );
    assert_eq!(
        (report.status, report.ended_by),
        (Some(200), EndedBy::Answerer)
    );
    assert_eq!(report.keyed.as_deref(), Some("1"));
    // Keyed once the 1 s prompt and 400 ms of quiet were heard, not before.
    let keyed = report.keyed_after_ms.unwrap();
    assert!(keyed >= 1300.0, "keyed {keyed} ms after the answer");
    let heard = report.heard.clone().unwrap();
    assert_eq!(
        (heard.expected_heard, heard.tone_hz),
        (Some(true), Some(700.0)),
        "{heard:?}"
    );
    assert!(heard.tone_run_ms >= 1000, "{heard:?}");
    assert_eq!(report.codec.as_deref(), Some("PCMU/8000"));
    assert!(
        report.rtp.received > 50 && report.rtp.events_sent >= 4,
        "{:?}",
        report.rtp
    );
    assert!(report.passed, "{:?}", report.failures);
    // The JSON line itself names the fields a test reads.
    let line = &ended.lines[0];
    for field in [
        "call_id",
        "from",
        "to",
        "status",
        "keyed",
        "keyed_after_ms",
        "heard",
        "duration_ms",
        "ended_by",
    ] {
        assert!(line.get(field).is_some(), "{field} missing: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tone_fails_the_run() {
    // The caller talks 700 Hz; the answerer was told to expect 1200 Hz.
    let answerer = Answerer::start(&[
        "--ring-ms",
        "0",
        "--key",
        "1",
        "--key-after-ms",
        "1200",
        "--expect-tone",
        "1200",
        "--hold-ms",
        "1500",
        "--timeout",
        "20s",
    ])
    .await;
    let (seen, media) = call(answerer.addr, Script::PromptThenTone).await;
    let ended = answerer.ended().await;
    assert_eq!(ended.code, Some(1), "{}", ended.log);
    assert_eq!(seen.statuses, [100, 200], "no ring: no 180");
    assert!(media.events.contains(&(1, true)));
    let report = ended.report();
    assert!(!report.passed);
    assert_eq!(
        report.heard.clone().unwrap().tone_hz,
        Some(700.0),
        "{report:?}"
    );
    assert!(
        report.failures.iter().any(|f| f.contains("1200 Hz")),
        "{:?}",
        report.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_is_486_after_ringing() {
    let answerer =
        Answerer::start(&["--ring-ms", "200", "--answer", "486", "--timeout", "20s"]).await;
    let (seen, _) = call(answerer.addr, Script::PromptThenTone).await;
    let ended = answerer.ended().await;
    assert_eq!(ended.code, Some(0), "{}", ended.log);
    assert_eq!(seen.statuses, [100, 180, 486]);
    assert_eq!(seen.end, Some(SessionEnd::Refused(486)));
    let report = ended.report();
    assert_eq!(
        (report.status, report.ended_by),
        (Some(486), EndedBy::Answerer)
    );
    assert!(report.passed && report.heard.is_none(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_answering_takes_the_callers_cancel_with_487() {
    let answerer =
        Answerer::start(&["--ring-ms", "100", "--answer", "none", "--timeout", "20s"]).await;
    let (seen, _) = call(
        answerer.addr,
        Script::CancelAfter(Duration::from_millis(800)),
    )
    .await;
    let ended = answerer.ended().await;
    assert_eq!(ended.code, Some(0), "{}", ended.log);
    assert_eq!(seen.statuses, [100, 180, 487]);
    let report = ended.report();
    assert_eq!(
        (report.status, report.ended_by),
        (Some(487), EndedBy::Caller)
    );
    assert_eq!(report.reason.as_deref(), Some("Q.850;cause=19"));
}

/// Sends one OPTIONS to `to` and returns the status of the first answer within `wait`.
async fn options(to: SocketAddr, wait: Duration) -> Option<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = socket.local_addr().unwrap();
    let ping = format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKping{}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:ping@{me}>;tag=p1\r\nTo: <sip:{to}>\r\n\
         Call-ID: ping-{}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        me.port(),
        me.port()
    );
    socket.send_to(ping.as_bytes(), to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let (len, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    let SipMessage::Response(r) = message::parse(&buf[..len]).unwrap() else {
        panic!("a response")
    };
    if r.status_code.code() == 200 {
        use rsip::Header;
        let has = |f: fn(&Header) -> bool| r.headers.iter().any(f);
        assert!(has(|h| matches!(h, Header::Allow(_))), "{r}");
        assert!(has(|h| matches!(h, Header::Accept(_))), "{r}");
        assert!(has(|h| matches!(h, Header::Supported(_))), "{r}");
    }
    Some(r.status_code.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_are_answered_200_503_or_not_at_all() {
    let run = |answer: &'static str| async move {
        let answerer =
            Answerer::start(&["--options", answer, "--calls", "0", "--timeout", "2s"]).await;
        let first = options(answerer.addr, Duration::from_secs(1)).await;
        let second = options(answerer.addr, Duration::from_millis(300)).await;
        (first, second, answerer.ended().await)
    };
    let (up, down, silent) = tokio::join!(run("200"), run("503"), run("none"));
    for ((first, second, ended), want) in [(up, Some(200)), (down, Some(503)), (silent, None)] {
        assert_eq!((first, second), (want, want), "{}", ended.log);
        // No call was expected and none came: the run passes when its time is up.
        assert_eq!(ended.code, Some(0), "{}", ended.log);
        assert!(ended.lines.is_empty());
        assert!(
            ended.log.contains("0 calls, 0 as told, 2 OPTIONS"),
            "{}",
            ended.log
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_where_none_was_expected_fails_the_run() {
    let answerer = Answerer::start(&["--calls", "0", "--timeout", "3s"]).await;
    let (seen, _) = call(answerer.addr, Script::PromptThenTone).await;
    let ended = answerer.ended().await;
    assert_eq!(seen.statuses, [100, 503]);
    assert_eq!(ended.code, Some(1), "{}", ended.log);
    assert!(ended.log.contains("beyond the 0 expected"), "{}", ended.log);
}
