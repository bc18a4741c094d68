//! The signaling socket shared by every call of one sbc-sim process, as an SBC has one
//! SIP port per trunk: one UDP socket, or one TCP connection, bound to the chosen
//! source address (RFC 3261 §18), with incoming messages handed to their call by
//! Call-ID.
//!
//! Why one shared socket rather than one per call: the bridge sees what a real trunk
//! sends (one source port, one TCP connection carrying every call, as operator SBCs
//! do), and a thousand-call load needs no thousand extra sockets or connections. The
//! cost is the Call-ID table, which is bounded ([`Signaling::connect`]'s `max_calls`);
//! each call's queue is bounded too and drops when full (UDP semantics: the peer's
//! transaction layer retransmits).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use dialbridge_sip::message::{self, Frame, StreamFramer, fields};
use dialbridge_sip::rsip::{Method, SipMessage};
use dialbridge_sip::transaction::{PeerAddr, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::mpsc;

use crate::Error;

/// Messages queued towards one call before more are dropped.
pub const CALL_QUEUE: usize = 64;
/// Messages queued towards the TCP connection before more are dropped.
const WRITE_QUEUE: usize = 4096;
/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The SIP transport a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (one connection for all calls).
    Tcp,
    /// TLS over TCP (one connection for all calls), as Direct-Routing-style trunks use.
    Tls,
}

impl Transport {
    /// As written in Via (`UDP`) and in a `transport=` URI parameter (`udp`).
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

/// A cloneable handle on the shared signaling socket.
#[derive(Debug, Clone)]
pub struct Signaling {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    transport: Transport,
    local: SocketAddr,
    bridge: SocketAddr,
    calls: Mutex<HashMap<String, mpsc::Sender<SipMessage>>>,
    max_calls: usize,
    udp: Option<Arc<UdpSocket>>,
    tcp: Option<mpsc::Sender<Bytes>>,
}

/// A call's place in the Call-ID table; dropping it frees the place.
#[derive(Debug)]
pub struct Registration {
    /// Messages for this Call-ID.
    pub inbound: mpsc::Receiver<SipMessage>,
    call_id: String,
    signaling: Signaling,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.signaling.calls().remove(&self.call_id);
    }
}

impl Signaling {
    /// Binds on `local_ip` (port 0) and, for TCP, connects to `bridge`. At most
    /// `max_calls` calls may be registered at once.
    pub async fn connect(
        transport: Transport,
        local_ip: IpAddr,
        bridge: SocketAddr,
        max_calls: usize,
    ) -> Result<Signaling, Error> {
        Self::connect_with_ca(transport, local_ip, bridge, max_calls, None).await
    }

    /// [`Signaling::connect`], trusting the CA in `tls_ca` (PEM) for [`Transport::Tls`].
    pub async fn connect_with_ca(
        transport: Transport,
        local_ip: IpAddr,
        bridge: SocketAddr,
        max_calls: usize,
        tls_ca: Option<&std::path::Path>,
    ) -> Result<Signaling, Error> {
        let (udp, tcp, local) = match transport {
            Transport::Udp => {
                let socket = Arc::new(UdpSocket::bind((local_ip, 0)).await?);
                // tokio learns a new socket is writable from the reactor; until then
                // `try_send_to` says WouldBlock and the first INVITE would be lost.
                socket.writable().await?;
                let local = socket.local_addr()?;
                (Some(socket), None, local)
            }
            Transport::Tcp | Transport::Tls => {
                let socket = match local_ip {
                    IpAddr::V4(_) => TcpSocket::new_v4()?,
                    IpAddr::V6(_) => TcpSocket::new_v6()?,
                };
                socket.bind(SocketAddr::new(local_ip, 0))?;
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(bridge))
                    .await
                    .map_err(|_| Error::ConnectTimeout(bridge))??;
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr()?;
                let (reader, writer): (BoxedRead, BoxedWrite) = if transport == Transport::Tls {
                    let tls = tls_connect(stream, bridge, tls_ca).await?;
                    let (r, w) = tokio::io::split(tls);
                    (Box::new(r), Box::new(w))
                } else {
                    let (r, w) = stream.into_split();
                    (Box::new(r), Box::new(w))
                };
                let mut writer = writer;
                let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
                tokio::spawn(async move {
                    while let Some(bytes) = rx.recv().await {
                        if writer.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    let _ = writer.shutdown().await;
                });
                (None, Some((tx, reader)), local)
            }
        };
        let (tcp_tx, tcp_reader) = match tcp {
            Some((tx, reader)) => (Some(tx), Some(reader)),
            None => (None, None),
        };
        let signaling = Signaling {
            inner: Arc::new(Inner {
                transport,
                local,
                bridge,
                calls: Mutex::new(HashMap::new()),
                max_calls,
                udp: udp.clone(),
                tcp: tcp_tx,
            }),
        };
        // The receive tasks hold a weak handle so that they end with the last Signaling.
        let weak = Arc::downgrade(&signaling.inner);
        if let Some(socket) = udp {
            tokio::spawn(udp_receive(socket, weak));
        } else if let Some(reader) = tcp_reader {
            tokio::spawn(tcp_receive(reader, weak));
        }
        Ok(signaling)
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.inner.transport
    }

    /// Our address (for Via and Contact).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// The bridge's address.
    pub fn bridge(&self) -> SocketAddr {
        self.inner.bridge
    }

    /// The peer handle for the transaction layer.
    pub fn peer(&self) -> PeerAddr {
        PeerAddr {
            transport: match self.inner.transport {
                Transport::Udp => TransportKind::Udp,
                Transport::Tcp => TransportKind::Tcp,
                Transport::Tls => TransportKind::Tls,
            },
            addr: self.inner.bridge,
            connection: None,
        }
    }

    /// Takes a place in the Call-ID table.
    pub fn register(&self, call_id: &str) -> Result<Registration, Error> {
        let (tx, inbound) = mpsc::channel(CALL_QUEUE);
        {
            let mut calls = self.calls();
            if calls.len() >= self.inner.max_calls {
                return Err(Error::TooManyCalls(self.inner.max_calls));
            }
            calls.insert(call_id.to_owned(), tx);
        }
        Ok(Registration {
            inbound,
            call_id: call_id.to_owned(),
            signaling: self.clone(),
        })
    }

    /// Sends a message to the bridge without waiting (a full buffer or queue is a loss,
    /// as on UDP).
    pub fn send(&self, msg: &SipMessage) -> Result<(), Error> {
        let bytes = message::encode(msg);
        if let Some(udp) = &self.inner.udp {
            udp.try_send_to(&bytes, self.inner.bridge)?;
            return Ok(());
        }
        match &self.inner.tcp {
            Some(tx) => tx.try_send(bytes).map_err(|_| Error::Closed),
            None => Err(Error::Closed),
        }
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<SipMessage>>> {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hands one received message to its call; a request for a Call-ID we do not know gets
/// 481 (RFC 3261 §12.2.2), anything else unknown is dropped.
fn dispatch(inner: &Arc<Inner>, bytes: &[u8]) {
    let Ok(msg) = message::parse(bytes) else {
        return;
    };
    let signaling = Signaling {
        inner: inner.clone(),
    };
    let call_id = match &msg {
        SipMessage::Request(r) => fields::call_id(&r.headers),
        SipMessage::Response(r) => fields::call_id(&r.headers),
    };
    let sender = call_id.and_then(|id| signaling.calls().get(id).cloned());
    match (sender, msg) {
        // Full queue: dropped, the bridge retransmits (UDP) or the call times out.
        (Some(tx), msg) => {
            let _ = tx.try_send(msg);
        }
        (None, SipMessage::Request(req)) if req.method != Method::Ack => {
            let reply = fields::response_for(&req, 481, None, None);
            let _ = signaling.send(&reply.into());
        }
        (None, _) => {}
    }
}

async fn udp_receive(socket: Arc<UdpSocket>, inner: std::sync::Weak<Inner>) {
    let mut buf = vec![0u8; message::MAX_MESSAGE + 1];
    loop {
        let received =
            tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf)).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match received {
            Ok(Ok((len, from))) if from == inner.bridge || from.ip() == inner.bridge.ip() => {
                if let Some(bytes) = buf.get(..len) {
                    dispatch(&inner, bytes);
                }
            }
            // Idle second, a stranger's datagram, or an ICMP error from an earlier send.
            Ok(_) | Err(_) => {}
        }
    }
}

async fn tcp_receive(mut reader: BoxedRead, inner: std::sync::Weak<Inner>) {
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(1), reader.read(&mut buf)).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let n = match read {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        let mut data = buf.get(..n).unwrap_or_default();
        while !data.is_empty() {
            let took = framer.push(data);
            data = data.get(took..).unwrap_or_default();
            while let Some(frame) = framer.next_frame() {
                match frame {
                    Ok(Frame::Message(bytes)) => dispatch(&strong, &bytes),
                    Ok(Frame::KeepAlivePing) => {
                        if let Some(tx) = &strong.tcp {
                            let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                        }
                    }
                    // Framing lost: nothing after this can be trusted.
                    Err(_) => return,
                }
            }
            if took == 0 && !data.is_empty() {
                return;
            }
        }
    }
}

/// Either half of a TCP or TLS stream.
type BoxedRead = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type BoxedWrite = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// The TLS handshake with the bridge, trusting the CA in `ca` (PEM), checking the
/// bridge's certificate against its IP address.
async fn tls_connect(
    stream: tokio::net::TcpStream,
    bridge: SocketAddr,
    ca: Option<&std::path::Path>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Error> {
    use rustls_pki_types::pem::PemObject;
    let ca = ca.ok_or_else(|| Error::invalid("--tls-ca", "TLS needs the bridge's CA (PEM)"))?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| Error::invalid("--tls-ca", format!("{}: {e}", ca.display())))?;
    for cert in certs {
        let cert =
            cert.map_err(|e| Error::invalid("--tls-ca", format!("{}: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| Error::invalid("--tls-ca", format!("{}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("--tls-ca", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::IpAddress(bridge.ip().into());
    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream))
        .await
        .map_err(|_| Error::ConnectTimeout(bridge))?
        .map_err(Error::from)
}
