//! UDP, TCP and TLS transports (RFC 3261 §18, RFC 3581).
//!
//! Transports only move bytes: each received message is handed on as one [`Received`]
//! with the [`PeerAddr`] it came from, and [`Transports::send`] writes bytes to a peer. Stream
//! transports frame by Content-Length ([`crate::message::StreamFramer`]), answer CRLF
//! keepalive pings and refuse messages over 64 KiB with 513; UDP drops them. Which address
//! a response goes to (§18.2.2 with `rport`) is decided by [`response_peer`]. A message
//! over TLS carries the names of the client certificate verified on its connection, if
//! any ([`Received::certificate_names`]).

mod route;
mod stream;
mod tls;
mod udp;

pub use route::response_peer;
pub use tls::{certificate_names, load_tls_acceptor};

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// The largest SIP message we accept, on any transport.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

pub use crate::transaction::{PeerAddr, TransportKind};

const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Identifies one accepted stream connection for as long as it lives.
pub type ConnectionId = u64;

/// One message received from the network, not yet parsed.
#[derive(Debug)]
pub struct Received {
    pub peer: PeerAddr,
    pub bytes: Bytes,
    /// The DNS names of the client certificate verified on this message's TLS
    /// connection (see [`certificate_names`]); `None` on UDP and TCP, and over TLS
    /// without one. Shared by every message of the connection.
    pub certificate_names: Option<Arc<[String]>>,
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
///
/// Each transport may listen on several addresses, typically one IPv4 and one IPv6
/// (RFC 5118): the first UDP socket is the primary one, and a message to a peer leaves by
/// the first socket of the peer's address family.
pub struct Listeners {
    pub udp: Vec<UdpSocket>,
    pub tcp: Vec<TcpListener>,
    pub tls: Vec<(TcpListener, TlsAcceptor)>,
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addrs =
            |it: &mut dyn Iterator<Item = Option<SocketAddr>>| -> Vec<_> { it.flatten().collect() };
        f.debug_struct("Listeners")
            .field(
                "udp",
                &addrs(&mut self.udp.iter().map(|s| s.local_addr().ok())),
            )
            .field(
                "tcp",
                &addrs(&mut self.tcp.iter().map(|l| l.local_addr().ok())),
            )
            .field(
                "tls",
                &addrs(&mut self.tls.iter().map(|(l, _)| l.local_addr().ok())),
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
            .field("udp", &self.udp_addrs().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Every UDP socket with its address; never empty.
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
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
        if listeners.udp.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "SIP needs at least one UDP listener",
            ));
        }
        let mut udp = Vec::with_capacity(listeners.udp.len());
        for socket in listeners.udp {
            udp.push((socket.local_addr()?, Arc::new(socket)));
        }
        let tcp_addrs = listeners
            .tcp
            .iter()
            .map(TcpListener::local_addr)
            .collect::<std::io::Result<Vec<_>>>()?;
        let tls_addrs = listeners
            .tls
            .iter()
            .map(|(l, _)| l.local_addr())
            .collect::<std::io::Result<Vec<_>>>()?;
        let transports = Transports {
            inner: Arc::new(Inner {
                udp: udp.clone(),
                tcp_addrs,
                tls_addrs,
                connections: Mutex::new(HashMap::new()),
                next_connection: AtomicU64::new(1),
                stats: Arc::new(TransportStats::default()),
                config,
            }),
        };
        for (_, socket) in udp {
            tokio::spawn(udp::receive_loop(
                socket,
                inbound.clone(),
                transports.inner.stats.clone(),
            ));
        }
        for listener in listeners.tcp {
            tokio::spawn(stream::accept_loop(
                listener,
                None,
                transports.clone(),
                inbound.clone(),
            ));
        }
        for (listener, acceptor) in listeners.tls {
            tokio::spawn(stream::accept_loop(
                listener,
                Some(acceptor),
                transports.clone(),
                inbound.clone(),
            ));
        }
        Ok(transports)
    }

    /// The address of the primary UDP listener.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addrs().next().unwrap_or(UNSPECIFIED)
    }

    /// Every UDP listener's address.
    pub fn udp_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.inner.udp.iter().map(|(addr, _)| *addr)
    }

    /// The address of the primary TCP listener, if any.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.inner.tcp_addrs.first().copied()
    }

    /// The address of the primary TLS listener, if any.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.inner.tls_addrs.first().copied()
    }

    /// The local address to put in a Via or Contact for `protocol` towards `peer`: the
    /// listener of the peer's address family, else the primary one.
    pub fn local_addr(&self, protocol: TransportKind, peer: IpAddr) -> SocketAddr {
        let same_family = |addrs: &mut dyn Iterator<Item = SocketAddr>| {
            let mut first = None;
            for addr in addrs {
                if addr.is_ipv4() == peer.is_ipv4() {
                    return Some(addr);
                }
                first = first.or(Some(addr));
            }
            first
        };
        match protocol {
            TransportKind::Udp => same_family(&mut self.udp_addrs()),
            TransportKind::Tcp => same_family(&mut self.inner.tcp_addrs.iter().copied()),
            TransportKind::Tls => same_family(&mut self.inner.tls_addrs.iter().copied()),
        }
        .unwrap_or_else(|| self.udp_addr())
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
            TransportKind::Udp => {
                let socket = self
                    .inner
                    .udp
                    .iter()
                    .find(|(addr, _)| addr.is_ipv4() == peer.addr.is_ipv4())
                    .or(self.inner.udp.first());
                match socket.map(|(_, s)| s.try_send_to(&bytes, peer.addr)) {
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => Err(crate::Error::Io(e)),
                    None => Err(crate::Error::Transport("no UDP listener".into())),
                }
            }
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
