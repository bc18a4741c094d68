//! A trunk's outbound target for tests: a UDP socket that answers OPTIONS (RFC 3261
//! §11.2) with the status the test sets, or not at all, written as plain SIP text
//! (the bridge's parser is not used to check the bridge).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
