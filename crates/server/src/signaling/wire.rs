//! Where the signaling task's messages go: the transports, or (in tests) a list the test
//! reads, so that whole calls run through the signaling task with no SIP socket and a
//! clock the test moves.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use dialbridge_sip::transaction::{PeerAddr, TransportKind};
use dialbridge_sip::transport::Transports;

/// The signaling task's way out.
#[derive(Debug)]
pub enum Wire {
    /// The UDP, TCP and TLS listeners.
    Sockets(Transports),
    /// Kept for a test to read: everything sent, in order, naming us as `local`.
    #[cfg(test)]
    Captured {
        local: SocketAddr,
        sent: Vec<(PeerAddr, Bytes)>,
    },
}

impl Wire {
    /// Sends `bytes` to `peer`.
    pub fn send(&mut self, peer: &PeerAddr, bytes: Bytes) -> Result<(), dialbridge_sip::Error> {
        match self {
            Wire::Sockets(transports) => transports.send(peer, bytes),
            #[cfg(test)]
            Wire::Captured { sent, .. } => {
                sent.push((*peer, bytes));
                Ok(())
            }
        }
    }

    /// The address we send from towards `peer_ip` over `protocol`.
    pub fn local_addr(&self, protocol: TransportKind, peer_ip: IpAddr) -> SocketAddr {
        match self {
            Wire::Sockets(transports) => transports.local_addr(protocol, peer_ip),
            #[cfg(test)]
            Wire::Captured { local, .. } => *local,
        }
    }
}
