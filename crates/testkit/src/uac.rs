//! A deliberately small SIP caller for end-to-end tests, written from plain text templates
//! so it shares no code with the bridge it tests: INVITE with a G.711 offer, ACK, listen
//! to the RTP, BYE; over UDP, or over TLS ([`call_over_tls`]). sbc-sim is the full tool;
//! this is the independent check. A call can also talk while the test listens
//! ([`Call::talk`]: a steady tone, RFC 4733 keys on the way in), for tests that measure
//! what a caller hears at a moment of their choosing, not only once the call is over.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::Mutex;

/// A call placed by [`call`].
#[derive(Debug)]
pub struct Call {
    pub status: u16,
    /// The whole final response to the INVITE.
    pub response: String,
    sock: Signal,
    rtp: Arc<UdpSocket>,
    bridge: SocketAddr,
    call_id: String,
    from_tag: String,
    to_tag: String,
    cseq: u32,
}

/// The audio lines of a plain G.711 offer (`{port}` is replaced by the RTP port).
pub const G711_OFFER: &str = "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
     a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";

/// Places a call to `number` at `bridge` from `local_ip` and waits for its final answer.
pub async fn call(bridge: SocketAddr, local_ip: IpAddr, number: &str) -> Call {
    call_offering(bridge, local_ip, number, G711_OFFER).await
}

/// [`call`] with the SDP's media lines given (`{port}` is replaced by our RTP port).
pub async fn call_offering(
    bridge: SocketAddr,
    local_ip: IpAddr,
    number: &str,
    media: &str,
) -> Call {
    let sock = UdpSocket::bind(SocketAddr::new(local_ip, 0))
        .await
        .expect("bind SIP socket");
    place(Signal::Udp(sock), bridge, local_ip, number, media)
        .await
        .expect("a final answer in time")
}

/// [`call_offering`] over TLS to the bridge's TLS listener `bridge`, from `local_ip`,
/// with `tls` (see [`crate::tls::client_config`]). `Err` when the connection fails or
/// closes before a final answer (a refused client certificate, say).
pub async fn call_over_tls(
    bridge: SocketAddr,
    local_ip: IpAddr,
    number: &str,
    media: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Call, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(local_ip, 0))
        .map_err(|e| e.to_string())?;
    let tcp = socket.connect(bridge).await.map_err(|e| e.to_string())?;
    let local = tcp.local_addr().map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::IpAddress(bridge.ip().into());
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (reader, writer) = tokio::io::split(stream);
    let signal = Signal::Tls {
        reader: Mutex::new((reader, Vec::new())),
        writer: Mutex::new(writer),
        local,
    };
    place(signal, bridge, local_ip, number, media).await
}

async fn place(
    sock: Signal,
    bridge: SocketAddr,
    local_ip: IpAddr,
    number: &str,
    media: &str,
) -> Result<Call, String> {
    let rtp_port = crate::ports::free_rtp_port(local_ip);
    let rtp = UdpSocket::bind(SocketAddr::new(local_ip, rtp_port))
        .await
        .expect("bind RTP socket");
    let local = sock.local_addr();
    let call_id = format!("testkit-{}-{}", std::process::id(), rtp_port);
    let from_tag = format!("t{rtp_port}");
    let sdp = format!(
        "v=0\r\no=testkit 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{media}",
        ip = local.ip(),
        media = media.replace("{port}", &rtp_port.to_string())
    );
    let invite = format!(
        "INVITE sip:{number}@{bridge} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{call_id}-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15550001111@{ip}>;tag={from_tag}\r\n\
         To: <sip:{number}@{bridge}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{sdp}",
        ip = local.ip(),
        transport = sock.via_transport(),
        len = sdp.len()
    );
    sock.send(invite.as_bytes(), bridge).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let text = sock
            .recv(left)
            .await
            .ok_or("no final answer: timed out or the connection closed")?;
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status >= 200 {
            let to_tag = header(&text, "To")
                .and_then(|to| {
                    to.split(";tag=")
                        .nth(1)
                        .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
                })
                .unwrap_or_default();
            let call = Call {
                status,
                response: text,
                sock,
                rtp: Arc::new(rtp),
                bridge,
                call_id,
                from_tag,
                to_tag,
                cseq: 1,
            };
            // ACK either way: for a 2xx in its own transaction, for the rest in the
            // INVITE's (same branch, §17.1.1.3).
            call.send_in_dialog("ACK", 1).await;
            return Ok(call);
        }
    }
}

impl Call {
    /// Listens to the bridge's RTP for `duration` and returns the decoded µ-law audio.
    pub async fn listen(&self, duration: Duration) -> Vec<i16> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        let end = Instant::now() + duration;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match tokio::time::timeout(left, self.rtp.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) if n > 12 && buf[1] & 0x7f == 0 => {
                    let cc = usize::from(buf[0] & 0x0f);
                    let start = 12 + 4 * cc;
                    if start < n {
                        out.extend(
                            buf[start..n]
                                .iter()
                                .map(|&b| crate::audio::ulaw_to_linear(b)),
                        );
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        out
    }

    /// [`Call::listen`] to what arrives from now on: the RTP queued on the socket since
    /// the last listen is dropped first, so the audio returned was all received after
    /// the call.
    pub async fn listen_from_now(&self, duration: Duration) -> Vec<i16> {
        let mut buf = [0u8; 2048];
        // Bounded: the socket's queue holds far fewer datagrams than this.
        for _ in 0..100_000 {
            if self.rtp.try_recv_from(&mut buf).is_err() {
                break;
            }
        }
        self.listen(duration).await
    }

    /// Starts talking on the call's RTP, to where the bridge's SDP answer says, from a
    /// task of its own until the [`Talker`] is dropped: a steady sine of `hz` at
    /// [`TALK_AMPLITUDE`] (µ-law, a 20 ms packet per tick), and the keys of `script`
    /// (sbc-sim's script: `wait 500ms, keys 123456789#, wait 1500ms, keys #`) as RFC 4733
    /// events in place of the audio while each key lasts. Panics when the answer has no
    /// audio or the script does not parse.
    pub fn talk(&self, hz: f64, script: &str) -> Talker {
        let script = sbc_sim::script::Script::parse(script).expect("a valid sbc-sim script");
        let (remote, event_pt) = answer_media(&self.response)
            .unwrap_or_else(|| panic!("no audio in the answer:\n{}", self.response));
        let keyed = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(talk(
            Arc::clone(&self.rtp),
            remote,
            event_pt.unwrap_or(101),
            hz,
            script,
            Arc::clone(&keyed),
        ));
        Talker { task, keyed }
    }

    /// The next RTP datagram from the bridge, as it arrived (e.g. SRTP to decrypt).
    pub async fn receive_raw(&self, within: Duration) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        match tokio::time::timeout(within, self.rtp.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
            _ => None,
        }
    }

    /// Waits up to `within` for the bridge to hang up (its BYE), answering it 200:
    /// whether it came.
    pub async fn wait_for_bye(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(text) = self.sock.recv(left).await else {
                break;
            };
            if !text.starts_with("BYE ") {
                continue;
            }
            let mut ok = String::from("SIP/2.0 200 OK\r\n");
            for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                for line in text.lines().filter(|l| {
                    l.split(':')
                        .next()
                        .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
                }) {
                    ok.push_str(line);
                    ok.push_str("\r\n");
                }
            }
            ok.push_str("Content-Length: 0\r\n\r\n");
            self.sock.send(ok.as_bytes(), self.bridge).await;
            return true;
        }
        false
    }

    /// Hangs up with BYE and returns the status of the answer to it.
    pub async fn hang_up(mut self) -> u16 {
        self.cseq += 1;
        self.send_in_dialog("BYE", self.cseq).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(text) = self.sock.recv(left).await else {
                break;
            };
            if text.starts_with("SIP/2.0") && text.contains(" BYE\r\n") {
                return text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
        }
        0
    }

    /// Sends a re-INVITE offering `media` (the media lines, as for [`call_offering`],
    /// on the same RTP port), ACKs its final answer and returns it with its status.
    pub async fn reinvite(&mut self, media: &str) -> (u16, String) {
        self.cseq += 1;
        let cseq = self.cseq;
        let local = self.sock.local_addr();
        let rtp_port = self.rtp.local_addr().expect("RTP address").port();
        let sdp = format!(
            "v=0\r\no=testkit 1 {cseq} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{media}",
            ip = local.ip(),
            media = media.replace("{port}", &rtp_port.to_string())
        );
        let branch = format!("z9hG4bK{}-INVITE{cseq}", self.call_id);
        let extra = format!(
            "Contact: <sip:caller@{local}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        self.send_request("INVITE", cseq, &branch, &extra).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(text) = self.sock.recv(left).await else {
                break;
            };
            let status: u16 = text
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let ours = header(&text, "CSeq").is_some_and(|c| c.trim() == format!("{cseq} INVITE"));
            if text.starts_with("SIP/2.0") && ours && status >= 200 {
                // A 2xx is ACKed in a new transaction, the rest in the INVITE's.
                let ack_branch = if status < 300 {
                    format!("z9hG4bK{}-ACK{cseq}", self.call_id)
                } else {
                    branch
                };
                self.send_request("ACK", cseq, &ack_branch, "Content-Length: 0\r\n\r\n")
                    .await;
                return (status, text);
            }
        }
        (0, String::new())
    }

    async fn send_in_dialog(&self, method: &str, cseq: u32) {
        let branch = if method == "ACK" && self.status >= 300 {
            format!("z9hG4bK{}-1", self.call_id)
        } else {
            format!("z9hG4bK{}-{method}{cseq}", self.call_id)
        };
        self.send_request(method, cseq, &branch, "Content-Length: 0\r\n\r\n")
            .await;
    }

    /// An in-dialog request; `tail` is the headers after CSeq, blank line and body.
    async fn send_request(&self, method: &str, cseq: u32, branch: &str, tail: &str) {
        let local = self.sock.local_addr();
        let msg = format!(
            "{method} sip:{bridge} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:+15550001111@{ip}>;tag={from}\r\n\
             To: <sip:bridge@{bridge}>;tag={to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             {tail}",
            bridge = self.bridge,
            ip = local.ip(),
            from = self.from_tag,
            to = self.to_tag,
            call_id = self.call_id,
            transport = self.sock.via_transport(),
        );
        self.sock.send(msg.as_bytes(), self.bridge).await;
    }
}

/// Peak amplitude of the tone a [`Talker`] sends (about -15 dBFS: two or three talkers
/// together stay well below a mixer's limiter).
pub const TALK_AMPLITUDE: i16 = 6000;

/// A call's talking task ([`Call::talk`]); stops when dropped.
#[derive(Debug)]
pub struct Talker {
    task: tokio::task::JoinHandle<()>,
    keyed: Arc<AtomicBool>,
}

impl Talker {
    /// True once every step of the script is done (its last key sent, the gap after it
    /// over): only the tone goes out from then on.
    pub fn keyed(&self) -> bool {
        self.keyed.load(Ordering::Relaxed)
    }
}

impl Drop for Talker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The talking task: one packet per 20 ms tick, the sine's phase running on through the
/// keys (a key replaces the audio of its ticks, it does not delay it).
async fn talk(
    rtp: Arc<UdpSocket>,
    remote: SocketAddr,
    event_pt: u8,
    hz: f64,
    script: sbc_sim::script::Script,
    keyed: Arc<AtomicBool>,
) {
    use sbc_sim::dtmf::{GAP_MS, KEY_MS, Rfc4733Sender, TickPacket};
    use sbc_sim::script::Step;
    const SAMPLES: u32 = 160;
    let mut keys = Rfc4733Sender::new(20, KEY_MS, GAP_MS);
    let mut steps = script.steps.into_iter();
    let mut next_step = tokio::time::Instant::now();
    let mut script_over = false;
    let ssrc = 0x7e57_0000 ^ u32::from(rtp.local_addr().map_or(0, |a| a.port()));
    let (mut seq, mut timestamp, mut first) = (0u16, 0u32, true);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut packet = [0u8; 12 + SAMPLES as usize];
    loop {
        tick.tick().await;
        // Bounded: each pass takes one step, and a script has at most 256.
        while !script_over && keys.is_idle() && tokio::time::Instant::now() >= next_step {
            match steps.next() {
                Some(Step::Wait(d)) => next_step = tokio::time::Instant::now() + d,
                Some(Step::Keys(k)) => {
                    keys.queue(&k);
                }
                Some(Step::Hangup) | None => script_over = true,
            }
        }
        if script_over && keys.is_idle() {
            keyed.store(true, Ordering::Relaxed);
        }
        let (pt, marker, stamp, len) = match keys.on_tick(timestamp) {
            TickPacket::Audio { marker } => {
                for (i, out) in packet[12..].iter_mut().enumerate() {
                    let n = f64::from(timestamp.wrapping_add(i as u32));
                    let x =
                        f64::from(TALK_AMPLITUDE) * (std::f64::consts::TAU * hz * n / 8000.0).sin();
                    *out = dialbridge_media::codec::linear_to_ulaw(x.round() as i16);
                }
                (0, marker || first, timestamp, 12 + SAMPLES as usize)
            }
            TickPacket::Event {
                payload,
                marker,
                timestamp: start,
            } => {
                packet[12..16].copy_from_slice(&payload.to_bytes());
                (event_pt, marker, start, 16)
            }
        };
        packet[0] = 0x80;
        packet[1] = (u8::from(marker) << 7) | (pt & 0x7f);
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        packet[4..8].copy_from_slice(&stamp.to_be_bytes());
        packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
        let _ = rtp.send_to(&packet[..len], remote).await;
        first = false;
        seq = seq.wrapping_add(1);
        timestamp = timestamp.wrapping_add(SAMPLES);
    }
}

/// Where an SDP answer (in a whole SIP response) wants the audio sent, and its
/// telephone-event payload type, if any.
fn answer_media(response: &str) -> Option<(SocketAddr, Option<u8>)> {
    let (_, body) = response.split_once("\r\n\r\n")?;
    let lines = || body.lines().map(str::trim);
    let ip: IpAddr = lines()
        .find_map(|l| {
            l.strip_prefix("c=IN IP4 ")
                .or_else(|| l.strip_prefix("c=IN IP6 "))
        })?
        .trim()
        .parse()
        .ok()?;
    let port: u16 = lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let event = lines().find_map(|l| {
        let (pt, encoding) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        encoding
            .to_ascii_lowercase()
            .starts_with("telephone-event/")
            .then(|| pt.trim().parse().ok())?
    });
    Some((SocketAddr::new(ip, port), event))
}

/// Where the caller's SIP goes: a UDP socket, or one TLS connection.
enum Signal {
    Udp(UdpSocket),
    Tls {
        /// The read half and what was read of the next message.
        reader: Mutex<(
            ReadHalf<tokio_rustls::client::TlsStream<TcpStream>>,
            Vec<u8>,
        )>,
        writer: Mutex<WriteHalf<tokio_rustls::client::TlsStream<TcpStream>>>,
        local: SocketAddr,
    },
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.via_transport())
    }
}

impl Signal {
    fn local_addr(&self) -> SocketAddr {
        match self {
            Signal::Udp(sock) => sock.local_addr().expect("local address"),
            Signal::Tls { local, .. } => *local,
        }
    }

    fn via_transport(&self) -> &'static str {
        match self {
            Signal::Udp(_) => "UDP",
            Signal::Tls { .. } => "TLS",
        }
    }

    /// Sends one message; a failure shows as the answer that never comes.
    async fn send(&self, bytes: &[u8], to: SocketAddr) {
        match self {
            Signal::Udp(sock) => {
                let _ = sock.send_to(bytes, to).await;
            }
            Signal::Tls { writer, .. } => {
                let mut writer = writer.lock().await;
                let _ = writer.write_all(bytes).await;
                let _ = writer.flush().await;
            }
        }
    }

    /// The next message, within `within`; `None` on a timeout or a closed connection.
    async fn recv(&self, within: Duration) -> Option<String> {
        match self {
            Signal::Udp(sock) => {
                let mut buf = vec![0u8; 65536];
                let (n, _) = tokio::time::timeout(within, sock.recv_from(&mut buf))
                    .await
                    .ok()?
                    .ok()?;
                Some(String::from_utf8_lossy(&buf[..n]).into_owned())
            }
            Signal::Tls { reader, .. } => {
                let mut guard = reader.lock().await;
                let (reader, pending) = &mut *guard;
                let read = async {
                    loop {
                        if let Some(len) = framed_len(pending) {
                            let message: Vec<u8> = pending.drain(..len).collect();
                            return Some(String::from_utf8_lossy(&message).into_owned());
                        }
                        let mut buf = [0u8; 4096];
                        match reader.read(&mut buf).await {
                            Ok(0) | Err(_) => return None,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    }
                };
                tokio::time::timeout(within, read).await.ok()?
            }
        }
    }
}

/// The length of the first whole message in `buf` (head, blank line, Content-Length
/// bytes of body), skipping CRLF keepalives before it.
fn framed_len(buf: &mut Vec<u8>) -> Option<usize> {
    let start = buf.iter().position(|b| !matches!(b, b'\r' | b'\n'))?;
    buf.drain(..start);
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let body = header(&head, "Content-Length")
        .or_else(|| header(&head, "l"))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    (buf.len() >= head_end + body).then_some(head_end + body)
}

/// The value of the first header called `name` (long form) in a raw message.
pub fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_says_where_the_audio_goes_and_its_telephone_event() {
        let answer = "SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n\
            o=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
            m=audio 20002 RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\n\
            a=rtpmap:96 telephone-event/8000\r\n";
        assert_eq!(
            answer_media(answer),
            Some(("127.0.0.1:20002".parse().unwrap(), Some(96)))
        );
        let no_events = answer.replace("a=rtpmap:96 telephone-event/8000\r\n", "");
        assert_eq!(
            answer_media(&no_events),
            Some(("127.0.0.1:20002".parse().unwrap(), None))
        );
        assert_eq!(answer_media("SIP/2.0 486 Busy Here\r\n\r\n"), None);
    }
}
