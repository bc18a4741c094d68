//! OPTIONS (RFC 3261 §11) for tests, written as plain SIP text (no code shared with the
//! peer under test): a trunk's outbound target that answers with the status the test
//! sets, or not at all ([`OptionsAnswerer`]), and one ping that asks whether a SIP peer
//! is up ([`ping`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What an [`OptionsAnswerer`] answers: a status, or nothing.
const SILENT: u16 = 0;

/// A UDP socket answering OPTIONS; stops when dropped.
#[derive(Debug)]
pub struct OptionsAnswerer {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    received: Arc<AtomicU64>,
    last_from: Arc<Mutex<Option<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl OptionsAnswerer {
    /// Binds a free UDP port of `ip` and answers 200 until told otherwise.
    pub async fn bind(ip: IpAddr) -> OptionsAnswerer {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .expect("a UDP socket for the OPTIONS answerer");
        let addr = socket.local_addr().expect("its address");
        let status = Arc::new(AtomicU16::new(200));
        let received = Arc::new(AtomicU64::new(0));
        let last_from = Arc::new(Mutex::new(None));
        let task = tokio::spawn(serve(
            socket,
            status.clone(),
            received.clone(),
            last_from.clone(),
        ));
        OptionsAnswerer {
            addr,
            status,
            received,
            last_from,
            task,
        }
    }

    /// Where it listens (the trunk's outbound target).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `status` from now on.
    pub fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Answers nothing from now on: an SBC gone away.
    pub fn go_silent(&self) {
        self.status.store(SILENT, Ordering::SeqCst);
    }

    /// OPTIONS received so far, answered or not.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Where the last OPTIONS came from.
    pub fn last_from(&self) -> Option<SocketAddr> {
        *self.last_from.lock().expect("not poisoned")
    }
}

impl Drop for OptionsAnswerer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    socket: UdpSocket,
    status: Arc<AtomicU16>,
    received: Arc<AtomicU64>,
    last_from: Arc<Mutex<Option<SocketAddr>>>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        if !text.starts_with("OPTIONS ") {
            continue;
        }
        received.fetch_add(1, Ordering::SeqCst);
        *last_from.lock().expect("not poisoned") = Some(from);
        let status = status.load(Ordering::SeqCst);
        if status == SILENT {
            continue;
        }
        if let Some(answer) = answer(&text, status) {
            let _ = socket.send_to(answer.as_bytes(), from).await;
        }
    }
}

/// The response to `request` with `status`: its Via, From, Call-ID and CSeq copied, a
/// To tag added (§8.2.6.2).
fn answer(request: &str, status: u16) -> Option<String> {
    let (head, _) = request.split_once("\r\n\r\n")?;
    let phrase = match status {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Answer",
    };
    let mut out = format!("SIP/2.0 {status} {phrase}\r\n");
    for line in head.split("\r\n").skip(1) {
        let name = line.split(':').next()?.trim().to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" | "t" => {
                out.push_str(line);
                out.push_str(";tag=answerer\r\n");
            }
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out)
}

/// Sends one OPTIONS from `from` (any port) to `to` and returns the status line's code
/// of the first answer within `wait`; `None` when none came.
pub async fn ping(to: SocketAddr, from: IpAddr, wait: Duration) -> Option<u16> {
    let socket = UdpSocket::bind(SocketAddr::new(from, 0))
        .await
        .expect("a UDP socket");
    let me = socket.local_addr().expect("its address");
    let ping = format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bKtestkit-ping-{port}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:ping@{me}>;tag=ping{port}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: testkit-ping-{port}@{ip}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        port = me.port(),
        ip = me.ip(),
    );
    socket
        .send_to(ping.as_bytes(), to)
        .await
        .expect("the ping sent");
    let mut buf = vec![0u8; 65_536];
    let (len, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(buf.get(..len)?);
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}
