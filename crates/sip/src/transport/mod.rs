//! UDP, TCP and TLS transports (RFC 3261 §18, RFC 3581).
//!
//! Transports only move bytes: each received message is handed on as one [`Received`]
//! with the [`PeerAddr`] it came from, and [`Transports::send`] writes bytes to a peer. Stream
//! transports frame by Content-Length ([`crate::message::StreamFramer`]), answer CRLF
//! keepalive pings and refuse messages over 64 KiB with 513; UDP drops them. Which address
//! a response goes to (§18.2.2 with `rport`) is decided by [`response_peer`].

mod route;
mod stream;
mod tls;
mod udp;

pub use route::response_peer;
pub use tls::load_tls_acceptor;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// The largest SIP message we accept, on any transport.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

pub use crate::transaction::{PeerAddr, TransportKind};

/// Identifies one accepted stream connection for as long as it lives.
pub type ConnectionId = u64;

/// One message received from the network, not yet parsed.
#[derive(Debug)]
pub struct Received {
    pub peer: PeerAddr,
    pub bytes: Bytes,
}

/// Counters of what the transports refused or lost, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub datagrams_dropped: AtomicU64,
    pub oversized_refused: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub send_failures: AtomicU64,
}

/// Limits of the transports.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Stream connections open at once; past it new ones are closed at accept.
    pub max_connections: usize,
    /// A stream connection that carries nothing for this long is closed.
    pub idle_timeout: std::time::Duration,
    /// Messages queued towards one stream connection.
    pub send_queue: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_connections: 4096,
            idle_timeout: std::time::Duration::from_secs(600),
            send_queue: 256,
        }
    }
}

/// The listening sockets, already bound (so tests can bind port 0 and run in parallel).
pub struct Listeners {
    pub udp: UdpSocket,
    pub tcp: Option<TcpListener>,
    pub tls: Option<(TcpListener, TlsAcceptor)>,
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listeners")
            .field("udp", &self.udp.local_addr().ok())
            .field("tcp", &self.tcp.as_ref().and_then(|l| l.local_addr().ok()))
            .field(
                "tls",
                &self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok()),
            )
            .finish()
    }
}

/// A cloneable handle that sends bytes to peers over the running transports.
#[derive(Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

impl fmt::Debug for Transports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transports")
            .field("udp", &self.inner.udp_addr)
            .finish_non_exhaustive()
    }
}

struct Inner {
    udp: Arc<UdpSocket>,
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    connections: Mutex<HashMap<ConnectionId, Connection>>,
    next_connection: AtomicU64,
    stats: Arc<TransportStats>,
    config: TransportConfig,
}

struct Connection {
    addr: SocketAddr,
    protocol: TransportKind,
    tx: mpsc::Sender<Bytes>,
}

impl Transports {
    /// Starts a task per listener. Every message received goes to `inbound`; the tasks
    /// end when `inbound` is closed or the returned handle and all clones are dropped
    /// together with the listeners' tasks being aborted by the runtime.
    pub fn start(
        listeners: Listeners,
        config: TransportConfig,
        inbound: mpsc::Sender<Received>,
    ) -> std::io::Result<Transports> {
        let udp_addr = listeners.udp.local_addr()?;
        let tcp_addr = match &listeners.tcp {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let tls_addr = match &listeners.tls {
            Some((l, _)) => Some(l.local_addr()?),
            None => None,
        };
        let udp = Arc::new(listeners.udp);
        let transports = Transports {
            inner: Arc::new(Inner {
                udp: udp.clone(),
                udp_addr,
                tcp_addr,
                tls_addr,
                connections: Mutex::new(HashMap::new()),
                next_connection: AtomicU64::new(1),
                stats: Arc::new(TransportStats::default()),
                config,
            }),
        };
        tokio::spawn(udp::receive_loop(
            udp,
            inbound.clone(),
            transports.inner.stats.clone(),
        ));
        if let Some(listener) = listeners.tcp {
            tokio::spawn(stream::accept_loop(
                listener,
                None,
                transports.clone(),
                inbound.clone(),
            ));
        }
        if let Some((listener, acceptor)) = listeners.tls {
            tokio::spawn(stream::accept_loop(
                listener,
                Some(acceptor),
                transports.clone(),
                inbound,
            ));
        }
        Ok(transports)
    }

    /// The address the UDP listener is bound to.
    pub fn udp_addr(&self) -> SocketAddr {
        self.inner.udp_addr
    }

    /// The address the TCP listener is bound to, if any.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.inner.tcp_addr
    }

    /// The address the TLS listener is bound to, if any.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.inner.tls_addr
    }

    /// The local address to put in a Via or Contact for `protocol`.
    pub fn local_addr(&self, protocol: TransportKind) -> SocketAddr {
        match protocol {
            TransportKind::Udp => self.inner.udp_addr,
            TransportKind::Tcp => self.inner.tcp_addr.unwrap_or(self.inner.udp_addr),
            TransportKind::Tls => self.inner.tls_addr.unwrap_or(self.inner.udp_addr),
        }
    }

    /// Counters of refused and lost traffic.
    pub fn stats(&self) -> &TransportStats {
        &self.inner.stats
    }

    /// Sends one message without waiting. UDP sends at once; a stream message is queued
    /// on its connection (a full queue or a closed connection is a send failure, counted:
    /// the transaction layer's timers deal with loss like they do on UDP).
    pub fn send(&self, peer: &PeerAddr, bytes: Bytes) -> Result<(), crate::Error> {
        let result = match peer.transport {
            TransportKind::Udp => match self.inner.udp.try_send_to(&bytes, peer.addr) {
                Ok(_) => Ok(()),
                Err(e) => Err(crate::Error::Io(e)),
            },
            TransportKind::Tcp | TransportKind::Tls => self.send_stream(peer, bytes),
        };
        if result.is_err() {
            self.inner
                .stats
                .send_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn send_stream(&self, peer: &PeerAddr, bytes: Bytes) -> Result<(), crate::Error> {
        let tx = {
            let connections = self
                .inner
                .connections
                .lock()
                .map_err(|_| crate::Error::Transport("connection table poisoned".into()))?;
            // The connection the peer used, else any open one to the same address and
            // protocol (RFC 3261 §18.2.2: reuse the connection if it is still open).
            let by_id = peer
                .connection
                .and_then(|id| connections.get(&id))
                .map(|c| c.tx.clone());
            by_id.or_else(|| {
                connections
                    .values()
                    .find(|c| c.addr == peer.addr && c.protocol == peer.transport)
                    .map(|c| c.tx.clone())
            })
        };
        match tx {
            Some(tx) => tx.try_send(bytes).map_err(|_| {
                crate::Error::Transport(format!("connection to {} is full or closed", peer.addr))
            }),
            None => Err(crate::Error::Transport(format!(
                "no open {:?} connection to {}",
                peer.transport, peer.addr
            ))),
        }
    }

    fn register(
        &self,
        addr: SocketAddr,
        protocol: TransportKind,
        tx: mpsc::Sender<Bytes>,
    ) -> Option<ConnectionId> {
        let mut connections = self.inner.connections.lock().ok()?;
        if connections.len() >= self.inner.config.max_connections {
            return None;
        }
        let id = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        connections.insert(id, Connection { addr, protocol, tx });
        Some(id)
    }

    fn unregister(&self, id: ConnectionId) {
        if let Ok(mut connections) = self.inner.connections.lock() {
            connections.remove(&id);
        }
    }
}
