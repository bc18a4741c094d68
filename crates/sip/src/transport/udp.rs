//! The UDP receive loop: one datagram, one message (RFC 3261 §18.3).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{MAX_MESSAGE_SIZE, PeerAddr, Received, TransportKind, TransportStats};

pub(super) async fn receive_loop(
    socket: Arc<UdpSocket>,
    inbound: mpsc::Sender<Received>,
    stats: Arc<TransportStats>,
) {
    // One byte more than the limit tells an oversized datagram from one that fits.
    let mut buf = BytesMut::with_capacity(64 * (MAX_MESSAGE_SIZE + 1));
    loop {
        buf.resize(MAX_MESSAGE_SIZE + 1, 0);
        let (len, addr) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors from earlier sends surface here on Linux: not ours to stop for.
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "UDP receive failed; listener stopped");
                return;
            }
        };
        if len > MAX_MESSAGE_SIZE {
            stats.oversized_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%addr, len, "oversized datagram dropped");
            continue;
        }
        // Keepalives (RFC 5626 §4.4.1 style CRLF) on UDP carry no message.
        if buf[..len]
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | 0))
        {
            continue;
        }
        buf.truncate(len);
        let bytes = buf.split().freeze();
        let peer = PeerAddr {
            transport: TransportKind::Udp,
            addr,
            connection: None,
        };
        match inbound.try_send(Received {
            peer,
            bytes,
            certificate_names: None,
        }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Overload: dropping a datagram is what UDP does anyway; the peer retransmits.
                stats.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
        if buf.capacity() < MAX_MESSAGE_SIZE + 1 {
            buf.reserve(64 * (MAX_MESSAGE_SIZE + 1));
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | HostUnreachable | NetworkUnreachable | Interrupted
    )
}
