//! TCP and TLS connections: accept, frame by Content-Length, answer keepalives, write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::{PeerAddr, Received, TransportKind, Transports};
use crate::message::{Frame, StreamFramer};

pub(super) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    transports: Transports,
    inbound: mpsc::Sender<Received>,
) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if inbound.is_closed() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let transports = transports.clone();
        let inbound = inbound.clone();
        match tls.clone() {
            None => {
                tokio::spawn(serve(
                    stream,
                    addr,
                    (TransportKind::Tcp, None),
                    transports,
                    inbound,
                ));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            // Read once per connection; each message shares them.
                            let names = super::tls::verified_names(tls_stream.get_ref().1);
                            let kind = (TransportKind::Tls, names);
                            serve(tls_stream, addr, kind, transports, inbound).await
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// One connection until it closes; `kind` is its protocol and, over TLS, the names of
/// the client certificate verified on it.
async fn serve<S>(
    stream: S,
    addr: SocketAddr,
    kind: (TransportKind, Option<Arc<[String]>>),
    transports: Transports,
    inbound: mpsc::Sender<Received>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (protocol, certificate_names) = kind;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Bytes>(transports.inner.config.send_queue);
    let Some(id) = transports.register(addr, protocol, tx.clone()) else {
        transports
            .stats()
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%addr, "too many connections; closing a new one");
        return;
    };
    transports
        .stats()
        .connections_accepted
        .fetch_add(1, Ordering::Relaxed);
    let peer = PeerAddr {
        transport: protocol,
        addr,
        connection: Some(id),
    };
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });

    let idle = transports.inner.config.idle_timeout;
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match tokio::time::timeout(idle, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        let mut data = buf.get(..n).unwrap_or_default();
        // The framer takes at most its limit: push, drain, push the rest.
        loop {
            let taken = framer.push(data);
            data = data.get(taken..).unwrap_or_default();
            let mut framed = false;
            while let Some(frame) = framer.next_frame() {
                framed = true;
                match frame {
                    Ok(Frame::Message(bytes)) => {
                        let received = Received {
                            peer,
                            bytes,
                            certificate_names: certificate_names.clone(),
                        };
                        if inbound.send(received).await.is_err() {
                            break 'read;
                        }
                    }
                    Ok(Frame::KeepAlivePing) => {
                        // RFC 5626 §3.5.1: a double CRLF ping gets a single CRLF pong.
                        let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                    }
                    Err(crate::Error::TooLarge(len)) => {
                        transports
                            .stats()
                            .oversized_refused
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%addr, len, "oversized message on a stream; 513 and close");
                        let reply = framer.head().and_then(|head| {
                            crate::message::reject_malformed(head, 513, "Message Too Large")
                        });
                        if let Some(reply) = reply {
                            let _ = tx.send(Bytes::from(reply)).await;
                        }
                        break 'read;
                    }
                    Err(e) => {
                        // Framing is lost on a stream: nothing after this can be trusted.
                        tracing::debug!(%addr, error = %e, "unframeable stream; closing");
                        break 'read;
                    }
                }
            }
            if data.is_empty() {
                break;
            }
            if taken == 0 && !framed {
                // Full and still no message: cannot happen with a framer that refuses
                // what exceeds its limit, but never spin on it.
                break 'read;
            }
        }
    }
    transports.unregister(id);
    drop(tx);
    let _ = write_task.await;
}
