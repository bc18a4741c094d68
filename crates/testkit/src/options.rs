//! One OPTIONS ping from a plain UDP socket, written as text (no code shared with the
//! peer it pings): what a test uses to ask whether a SIP peer is up.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

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
