//! The opaque peer handle the transaction layer hands back with every transmit.

use std::net::SocketAddr;

/// What the layer needs to know about where a message came from / goes to: only whether
/// the transport is reliable (which changes the timers, §17.1.1.2, §17.2.1, ...).
pub trait Peer: Clone {
    /// True for TCP, TLS, WebSocket: no retransmissions, zero-length wait timers.
    fn is_reliable(&self) -> bool;
}

/// The transports dialbridge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP: unreliable, the transaction layer retransmits.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl TransportKind {
    /// Whether the transport itself retransmits.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Self::Udp)
    }
}

/// A ready-made [`Peer`]: transport, remote address and, for stream transports, the
/// connection the message arrived on (responses go back on the same connection, §18.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    /// The transport.
    pub transport: TransportKind,
    /// The remote address.
    pub addr: SocketAddr,
    /// The connection id for TCP/TLS, `None` for UDP.
    pub connection: Option<u64>,
}

impl Peer for PeerAddr {
    fn is_reliable(&self) -> bool {
        self.transport.is_reliable()
    }
}
