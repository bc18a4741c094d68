//! The transports on real loopback sockets: what arrives, what goes back, what is
//! refused (RFC 3261 §18, RFC 5626 keepalives, the 64 KiB limit).
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dialbridge_sip::transport::{
    Listeners, PeerAddr, Received, TransportConfig, TransportKind, Transports, load_tls_acceptor,
};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

const OPTIONS: &str = "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/TCP 127.0.0.20:5060;branch=z9hG4bKtest1\r\n\
From: <sip:ping@127.0.0.20>;tag=1\r\n\
To: <sip:127.0.0.1>\r\n\
Call-ID: transport-test\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

async fn start(tls: bool) -> (Transports, mpsc::Receiver<Received>) {
    start_asking(tls, None).await
}

/// [`start`], the TLS listener asking for client certificates under `client_ca`.
async fn start_asking(
    tls: bool,
    client_ca: Option<&std::path::Path>,
) -> (Transports, mpsc::Receiver<Received>) {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = if tls {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tls");
        let acceptor = load_tls_acceptor(
            &fixtures.join("cert.pem"),
            &fixtures.join("key.pem"),
            client_ca,
        )
        .unwrap();
        Some((TcpListener::bind("127.0.0.1:0").await.unwrap(), acceptor))
    } else {
        None
    };
    let (tx, rx) = mpsc::channel(64);
    let transports = Transports::start(
        Listeners {
            udp: vec![udp],
            tcp: vec![tcp],
            tls: tls.into_iter().collect(),
        },
        TransportConfig::default(),
        tx,
    )
    .unwrap();
    (transports, rx)
}

async fn next(rx: &mut mpsc::Receiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a message arrives")
        .expect("transports running")
}

#[tokio::test]
async fn tcp_messages_are_framed_however_they_are_split() {
    let (transports, mut rx) = start(false).await;
    let mut stream = TcpStream::connect(transports.tcp_addr().unwrap())
        .await
        .unwrap();
    let two = format!("{OPTIONS}{}", OPTIONS.replace("CSeq: 1", "CSeq: 2"));
    for chunk in two.as_bytes().chunks(7) {
        stream.write_all(chunk).await.unwrap();
        stream.flush().await.unwrap();
    }
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    assert_eq!(first.peer.transport, TransportKind::Tcp);
    assert_eq!(&first.bytes[..], OPTIONS.as_bytes());
    assert!(
        std::str::from_utf8(&second.bytes)
            .unwrap()
            .contains("CSeq: 2 OPTIONS")
    );
}

#[tokio::test]
async fn responses_go_back_on_the_same_connection() {
    let (transports, mut rx) = start(false).await;
    let mut stream = TcpStream::connect(transports.tcp_addr().unwrap())
        .await
        .unwrap();
    stream.write_all(OPTIONS.as_bytes()).await.unwrap();
    let received = next(&mut rx).await;
    transports
        .send(
            &received.peer,
            bytes::Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
        )
        .unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
}

#[tokio::test]
async fn double_crlf_ping_gets_a_crlf_pong() {
    let (transports, _rx) = start(false).await;
    let mut stream = TcpStream::connect(transports.tcp_addr().unwrap())
        .await
        .unwrap();
    stream.write_all(b"\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"\r\n");
}

#[tokio::test]
async fn oversized_stream_message_gets_513_and_the_connection_closes() {
    let (transports, mut rx) = start(false).await;
    let mut stream = TcpStream::connect(transports.tcp_addr().unwrap())
        .await
        .unwrap();
    let body = "x".repeat(70 * 1024);
    let big = OPTIONS.replace(
        "Content-Length: 0",
        &format!("Content-Length: {}", body.len()),
    ) + &body;
    // The bridge may close while we still write: that is the point.
    let _ = stream.write_all(big.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("SIP/2.0 513"), "got {text:?}");
    assert!(text.contains("Call-ID: transport-test"), "{text}");
    assert!(
        rx.try_recv().is_err(),
        "nothing reached the transaction layer"
    );
    assert_eq!(
        transports
            .stats()
            .oversized_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn udp_datagrams_arrive_with_their_source() {
    let (transports, mut rx) = start(false).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let msg = OPTIONS.replace("SIP/2.0/TCP", "SIP/2.0/UDP");
    client
        .send_to(msg.as_bytes(), transports.udp_addr())
        .await
        .unwrap();
    let received = next(&mut rx).await;
    assert_eq!(received.peer.transport, TransportKind::Udp);
    assert_eq!(received.peer.addr, client.local_addr().unwrap());
    // And a reply reaches the client.
    transports
        .send(
            &PeerAddr {
                transport: TransportKind::Udp,
                addr: client.local_addr().unwrap(),
                connection: None,
            },
            bytes::Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
        )
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
}

#[tokio::test]
async fn udp_keepalives_are_not_messages() {
    let (transports, mut rx) = start(false).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(b"\r\n\r\n", transports.udp_addr())
        .await
        .unwrap();
    let msg = OPTIONS.replace("SIP/2.0/TCP", "SIP/2.0/UDP");
    client
        .send_to(msg.as_bytes(), transports.udp_addr())
        .await
        .unwrap();
    let received = next(&mut rx).await;
    assert!(received.bytes.starts_with(b"OPTIONS"));
}

#[tokio::test]
async fn tls_connections_carry_sip() {
    let (transports, mut rx) = start(true).await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tls");
    let pem = std::fs::read(fixtures.join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(transports.tls_addr().unwrap())
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(OPTIONS.replace("SIP/2.0/TCP", "SIP/2.0/TLS").as_bytes())
        .await
        .unwrap();
    let received = next(&mut rx).await;
    assert_eq!(received.peer.transport, TransportKind::Tls);
    transports
        .send(
            &received.peer,
            bytes::Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
        )
        .unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
}

/// A CA made for the test, and a client certificate it issues for `names`.
struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    fn client(
        &self,
        names: &[&str],
    ) -> (
        rustls_pki_types::CertificateDer<'static>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (cert.der().clone(), key)
    }
}

/// A TLS connection to `transports`' listener, presenting `client` if given, that sends
/// one OPTIONS.
async fn tls_options(
    transports: &Transports,
    client: Option<(
        rustls_pki_types::CertificateDer<'static>,
        rustls_pki_types::PrivateKeyDer<'static>,
    )>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tls");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(fixtures.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(transports.tls_addr().unwrap())
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    // A failed client certificate shows here at the latest (TLS 1.3 sends the server's
    // refusal after the client thinks it is done): the write or the flush fails, or the
    // connection is closed unread.
    let _ = tls
        .write_all(OPTIONS.replace("SIP/2.0/TCP", "SIP/2.0/TLS").as_bytes())
        .await;
    let _ = tls.flush().await;
    tls
}

#[tokio::test]
async fn a_verified_client_certificate_names_travel_with_each_message() {
    let ca = TestCa::new();
    let dir = std::env::temp_dir().join(format!("dialbridge-sip-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("clients.pem");
    std::fs::write(&bundle, ca.cert.pem()).unwrap();
    let (transports, mut rx) = start_asking(true, Some(&bundle)).await;

    let _with = tls_options(&transports, Some(ca.client(&["SBC1.example.com"]))).await;
    let received = next(&mut rx).await;
    assert_eq!(received.peer.transport, TransportKind::Tls);
    assert_eq!(
        received.certificate_names.as_deref(),
        Some(&["sbc1.example.com".to_string()][..])
    );

    // Asked, not demanded: without a certificate the connection carries SIP, unnamed.
    let _without = tls_options(&transports, None).await;
    let received = next(&mut rx).await;
    assert_eq!(received.certificate_names, None);

    // A certificate from another CA fails the handshake: nothing arrives.
    let other = TestCa::new();
    let _other = tls_options(&transports, Some(other.client(&["sbc1.example.com"]))).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "no message from a certificate the bundle did not issue"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_a_client_ca_no_certificate_is_asked_for() {
    let (transports, mut rx) = start(true).await;
    let ca = TestCa::new();
    // The client has one, but is not asked: the message comes unnamed.
    let _tls = tls_options(&transports, Some(ca.client(&["sbc1.example.com"]))).await;
    let received = next(&mut rx).await;
    assert_eq!(received.certificate_names, None);
}
